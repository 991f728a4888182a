"""The plan schema of a `difference_in_differences` design: a panel of units over periods, each unit
adopting the change at its own period (staggered) or never, analysed as an event study.

Only pydantic and the standard library are imported: the plan model validates it without the engine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .dates import Day


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EventStudyDiagnostics(_Spec):
    """Preregistered thresholds: a failed diagnostic makes every verdict INCONCLUSIVE, never CONFIRMED."""

    pretrend_p_min: float = Field(0.10, gt=0, lt=1, description="the joint test that every lead is zero must "
                                                                "have at least this p-value")
    min_clusters: int = Field(10, ge=2, le=10_000, description="fewer clusters make cluster-robust errors unreliable")
    placebo_shift: int | None = Field(None, ge=1, le=520, description="a placebo adoption this many periods before "
                                                                      "the first real one, on pre-adoption data only "
                                                                      "(none: no placebo test)")
    placebo_p_min: float = Field(0.05, gt=0, lt=1, description="the placebo's average effect must have at least this "
                                                               "p-value (an effect where there was none fails)")


class DifferenceInDifferences(_Spec):
    """Units (`unit`) observed over periods (`time`, dates or integers); `adoption` holds the period from which
    a unit runs the candidate (empty for units that never adopt) — or, when every treated unit starts at
    once, a `treated` flag column and the `start` period. A unit may be a group observed through repeated
    cross-sections (a market's users, sampled anew each period): rows are averaged per unit and period.
    Outcomes are the plan's metrics (one column each). The event study estimates one effect per period
    relative to adoption, from `-leads` to `lags` (periods beyond are binned into the end points), with
    period -1 as the reference; the hypotheses are tested on the average effect over periods 0..lags, or,
    with `estimator: two_by_two`, on the one post-adoption effect (the 2x2 difference in differences)."""

    kind: Literal["difference_in_differences"]
    unit: str = Field(min_length=1)
    time: str = Field(min_length=1, description="the period column (dates or integers)")
    adoption: str | None = Field(None, min_length=1, description="the column with each unit's first treated period; "
                                                                 "empty: never")
    treated: str | None = Field(None, min_length=1, description="instead of adoption: a flag column marking the units "
                                                                "that run the candidate from `start` (set on every "
                                                                "row of such a unit, or on its rows from `start` on)")
    treated_value: bool | int | str = Field(1, description="the flag's value for treated units (others: comparison)")
    start: Day | int | None = Field(None, description="with `treated`: the first period under the candidate")
    covariates: list[str] = Field(default_factory=list, max_length=20,
                                  description="time-varying controls (twfe, two_by_two): each averaged per unit and "
                                              "period and entered linearly beside the fixed effects")
    cluster: str | None = Field(None, description="cluster for robust standard errors (default: the unit)")
    leads: int = Field(4, ge=2, le=104, description="pre-adoption periods estimated (tested for pre-trends)")
    lags: int = Field(4, ge=0, le=104, description="post-adoption periods estimated after period 0")
    estimator: Literal["twfe", "callaway_santanna", "two_by_two"] = Field(
        "twfe", description="twfe: the two-way fixed-effects event study (assumes the effect is the same for every "
                            "cohort and period); callaway_santanna: group-time effects against never-treated "
                            "units, robust to effects that differ by cohort or grow over time (staggered adoption); "
                            "two_by_two: one adoption period, one post-adoption effect (the 2x2 difference in "
                            "differences), the event study kept for its pre-trend test")
    inference: Literal["cluster_robust", "wild_cluster_bootstrap"] = Field(
        "cluster_robust", description="twfe only: the average effect's p-value from cluster-robust t, or from the "
                                      "wild cluster restricted bootstrap (Cameron, Gelbach & Miller 2008) when "
                                      "clusters are few")
    bootstrap_draws: int = Field(9999, ge=99, le=99_999, description="wild bootstrap draws (all 2^G sign patterns "
                                                                     "when fewer)")
    assumptions: str = Field(min_length=20, description="the identifying assumptions, in words, shown in the report")
    diagnostics: EventStudyDiagnostics = EventStudyDiagnostics()

    @model_validator(mode="after")
    def _distinct_columns(self) -> "DifferenceInDifferences":
        if (self.adoption is None) == (self.treated is None):
            raise ValueError("give either adoption (each unit's first treated period) or treated and start (a flag "
                             "column and the one period every treated unit starts)")
        if (self.treated is None) != (self.start is None):
            raise ValueError("treated and start go together: the flag column and the period the flagged units start")
        named = [self.unit, self.time, self.adoption or self.treated]
        if len(set(named)) != len(named):
            raise ValueError(f"unit, time and adoption must be different columns (got {named})")
        if len(set(self.covariates)) != len(self.covariates) or set(self.covariates) & set(named):
            raise ValueError(f"covariates must be distinct and differ from the unit, time and adoption columns "
                             f"(got {self.covariates})")
        if self.covariates and self.estimator == "callaway_santanna":
            raise ValueError("covariates: callaway_santanna here compares outcomes without covariates (unconditional "
                             "parallel trends); use estimator twfe or two_by_two, or remove them")
        if self.inference == "wild_cluster_bootstrap" and self.estimator == "callaway_santanna":
            raise ValueError("inference wild_cluster_bootstrap applies to estimators twfe and two_by_two; "
                             "callaway_santanna uses its influence functions")
        return self

    def columns(self) -> dict[str, str]:
        """Field -> column of every data column the design names."""
        named = {"unit": self.unit, "time": self.time}
        named.update({"adoption": self.adoption} if self.adoption else {"treated": self.treated})
        named.update({f"covariates[{i}]": c for i, c in enumerate(self.covariates)})
        if self.cluster:
            named["cluster"] = self.cluster
        return named
