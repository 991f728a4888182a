"""The plan schema of an `observational` design: units that chose (or were given) the candidate outside
any experiment, compared with units that were not, adjusting for declared covariates (selection on
observables) by propensity-score weighting, doubly robust AIPW or matching.

Only pydantic and the standard library are imported: the plan model validates it without the engine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ObservationalDiagnostics(_Spec):
    """Preregistered thresholds: a failed diagnostic makes every verdict INCONCLUSIVE, never CONFIRMED."""

    max_abs_smd: float = Field(0.1, gt=0, le=1, description="largest |standardized mean difference| of any covariate "
                                                            "after weighting or matching (Austin & Stuart 2015)")
    max_trimmed_share: float = Field(0.1, ge=0, lt=1, description="overlap: the largest share of units dropped by "
                                                                  "trimming (or treated units left unmatched)")
    min_e_value: float | None = Field(None, ge=1, description="if set, the E-value of the interval bound nearest the "
                                                              "null must reach it (robustness to unmeasured confounding)")


class Observational(_Spec):
    """One row per unit: `treatment` is the flag column (`treated_value` marks the candidate's units), the
    plan's metrics are outcome columns, `covariates` the pre-treatment columns the score adjusts for.
    The hypotheses are tested on `estimator`'s estimate of `estimand`; the other estimators are shown."""

    kind: Literal["observational"]
    unit: str | None = Field(None, min_length=1, description="the unit id column (unique per row), if any")
    treatment: str = Field(min_length=1, description="the treatment flag column")
    treated_value: bool | int | str = Field(1, description="the flag's value for treated units (others: comparison)")
    covariates: list[str] = Field(min_length=1, description="pre-treatment columns, numeric or 0/1")
    estimand: Literal["ATE", "ATT"] = "ATT"
    estimator: Literal["ipw", "aipw", "matching"] = Field(
        "ipw", description="ipw: normalized inverse-probability weights; aipw: doubly robust (ATE only); "
                           "matching: nearest neighbours on the logit score within a caliper (ATT only)")
    trim: float = Field(0.01, ge=0, lt=0.5, description="units whose score is outside [trim, 1 - trim] are dropped")
    caliper: float = Field(0.2, gt=0, le=10, description="matching: the largest distance, in SDs of the logit score")
    matches: int = Field(1, ge=1, le=20, description="matching: untreated neighbours per treated unit")
    assumptions: str = Field(min_length=20, description="the identifying assumptions, in words, shown in the report")
    diagnostics: ObservationalDiagnostics = ObservationalDiagnostics()

    @model_validator(mode="after")
    def _coherent(self) -> "Observational":
        if self.estimator == "aipw" and self.estimand != "ATE":
            raise ValueError("estimator aipw estimates the ATE: set estimand: ATE (or use ipw or matching for the ATT)")
        if self.estimator == "matching" and self.estimand != "ATT":
            raise ValueError("estimator matching estimates the ATT: set estimand: ATT (or use ipw or aipw for the ATE)")
        if len(set(self.covariates)) != len(self.covariates):
            raise ValueError(f"covariates must be distinct (got {self.covariates})")
        clash = sorted({self.treatment, self.unit} & set(self.covariates))
        if clash:
            raise ValueError(f"covariates may not include the treatment flag or the unit id (got {clash})")
        return self

    def columns(self) -> dict[str, str]:
        """Field -> column of every data column the design names."""
        named = {"treatment": self.treatment, **{f"covariates[{i}]": c for i, c in enumerate(self.covariates)}}
        if self.unit:
            named["unit"] = self.unit
        return named
