"""The plan schema of a `synthetic_control` design: a units x periods panel with one treated unit (or a
few, averaged) and a donor pool, the change taking effect at one intervention period.

Only pydantic and the standard library are imported: the plan model validates it without the engine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .dates import Day

Period = Day | int


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Predictor(_Spec):
    """A column averaged per unit over `periods` (default: every pre-intervention period); with `weight`
    its importance in the fit (ADH's diagonal V), else every predictor counts equally."""

    column: str = Field(min_length=1)
    periods: list[Period] | None = Field(None, min_length=1, description="the periods averaged (default: "
                                                                         "the whole pre-period)")
    weight: float | None = Field(None, gt=0)


class SyntheticControlDiagnostics(_Spec):
    """Preregistered thresholds: a failed diagnostic makes every verdict INCONCLUSIVE, never CONFIRMED. The
    placebo test also needs at least 1/alpha - 1 donors (else no p-value can reach alpha): checked always."""

    max_pre_rmspe: float = Field(0.05, gt=0, description="pre-period RMSPE relative to the treated units' mean "
                                                         "pre-period level: a worse fit makes the gap meaningless")
    min_donors: int = Field(10, ge=2, le=100_000, description="donors left after the filter and complete periods")


class SyntheticControl(_Spec):
    """Units (`unit`) observed over periods (`time`, dates or integers); `treated` names the unit(s) that
    run the candidate from `intervention` (the first treated period); every other unit not `exclude`d is
    a donor. Outcomes are the plan's metrics (one column each, averaged per unit and period). Donor
    weights fit the pre-period outcomes of each metric, or, with `predictors`, those predictors (one set
    of weights for every metric); the hypotheses are tested on the average post-period gap. With
    `estimator: synthetic_did` the weights let the synthetic path differ by a constant, pre-periods get
    weights too, and the effect is that doubly weighted difference in differences."""

    kind: Literal["synthetic_control"]
    estimator: Literal["synthetic_control", "synthetic_did"] = Field(
        "synthetic_control", description="synthetic_control: ADH weights, placebo rank test; synthetic_did: "
                                         "Arkhangelsky et al. (2021) unit and time weights, placebo standard error")
    unit: str = Field(min_length=1)
    time: str = Field(min_length=1, description="the period column (dates or integers)")
    treated: list[str] = Field(min_length=1, max_length=20, description="the treated unit, or a few (their gaps "
                                                                        "are averaged)")
    intervention: Period = Field(description="the first period under the candidate")
    predictors: list[Predictor] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list, description="units kept out of the donor pool")
    assumptions: str = Field(min_length=20, description="the identifying assumptions, in words, shown in the report")
    diagnostics: SyntheticControlDiagnostics = SyntheticControlDiagnostics()

    @field_validator("treated", "exclude", mode="before")
    @classmethod
    def _listed(cls, value):
        """A single unit may be written without brackets; unit ids are compared as text."""
        listed = value if isinstance(value, list) else [value]
        return [str(item) for item in listed]

    @model_validator(mode="after")
    def _consistent(self) -> "SyntheticControl":
        if self.unit == self.time:
            raise ValueError(f"unit and time must be different columns (got {self.unit!r} twice)")
        if len(set(self.treated)) != len(self.treated):
            raise ValueError(f"treated lists a unit twice ({self.treated})")
        both = sorted(set(self.treated) & set(self.exclude))
        if both:
            raise ValueError(f"exclude names treated units {both}: exclude is for donors")
        if self.estimator == "synthetic_did" and self.predictors:
            raise ValueError("predictors: synthetic_did fits its weights on the pre-period outcomes; remove the "
                             "predictors or use estimator: synthetic_control")
        declared = [p.weight is not None for p in self.predictors]
        if any(declared) and not all(declared):
            raise ValueError("predictors: give every predictor a weight, or none (equal weights)")
        for index, predictor in enumerate(self.predictors):
            if predictor.column in (self.unit, self.time):
                raise ValueError(f"predictors[{index}].column {predictor.column!r} is the unit or time column")
            late = [p for p in predictor.periods or [] if type(p) is type(self.intervention) and p >= self.intervention]
            if late:
                raise ValueError(f"predictors[{index}].periods {late} are not before the intervention "
                                 f"({self.intervention}): predictors describe the pre-period")
            if any(type(p) is not type(self.intervention) for p in predictor.periods or []):
                raise ValueError(f"predictors[{index}].periods must be of the intervention's type "
                                 f"({type(self.intervention).__name__})")
        return self

    def columns(self) -> dict[str, str]:
        """Field -> column of every data column the design names."""
        named = {"unit": self.unit, "time": self.time}
        named.update({f"predictors[{i}].column": p.column for i, p in enumerate(self.predictors)})
        return named
