"""The plan schema of an `interrupted_time_series` design: one aggregate series (or a few) observed over
periods, a change at one intervention date, a counterfactual for the post-intervention period from the
pre-period (seasonality and control regressors declared up front), by two estimators, one of them primary.

Only pydantic and the standard library are imported: the plan model validates it without the engine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .dates import Day


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TimeSeriesDiagnostics(_Spec):
    """Preregistered thresholds, checked on the primary estimator: a failed diagnostic makes every verdict
    INCONCLUSIVE, never CONFIRMED."""

    ljung_box_p_min: float = Field(0.01, ge=0, lt=1, description="the pre-period residuals' Ljung-Box test must have "
                                                                 "at least this p-value (0: not required, e.g. for "
                                                                 "segmented regression, whose HAC errors allow "
                                                                 "autocorrelation)")
    ljung_box_lags: int = Field(14, ge=1, le=400, description="autocorrelation lags the Ljung-Box test pools")
    placebo_fpr_max: float = Field(0.25, ge=0, le=1, description="the share of placebo interventions in the "
                                                                 "pre-period found significant may not exceed this")
    pre_mape_max: float = Field(0.10, gt=0, description="the pre-period fit's mean absolute percentage error may "
                                                        "not exceed this")


class StructuralOptions(_Spec):
    """The structural time-series model: a local level (or, with `trend`, a local linear trend), and an
    AR(1) component for short-run persistence."""

    trend: bool = False
    autoregressive: bool = True


class SegmentedOptions(_Spec):
    hac_lags: int | None = Field(None, ge=0, le=400, description="Newey-West lags; default floor(4 (n/100)^(2/9))")


class InterruptedTimeSeries(_Spec):
    """Periods (`time`, dates or integers) of one series, or of a few (`series`: their pooled series is
    tested, each one is shown); the outcomes are the plan's metrics, aggregated per period (`aggregation`
    of the metric column over the rows of that period). The change happens at `intervention`: the
    outcome window (window.start .. window.end) is the post-intervention period; everything before it is
    the pre-period that fits the counterfactual. `seasonality` lists season lengths in periods (7 for a
    week of days; 7 and 365.25 adds the year); `regressors` are columns the change does not affect."""

    kind: Literal["interrupted_time_series"]
    time: str = Field(min_length=1, description="the period column (dates or integers), on a regular grid")
    series: str | None = Field(None, min_length=1, description="a column naming a few series (optional)")
    intervention: Day | int = Field(description="the first period under the candidate (= window.start for dates)")
    aggregation: Literal["mean", "sum"] = "mean"
    seasonality: list[float] = Field(default_factory=list, max_length=4,
                                     description="season lengths in periods, each above 2 (e.g. [7, 365.25])")
    harmonics: int = Field(3, ge=1, le=20, description="Fourier pairs per season (at most half its length)")
    regressors: list[str] = Field(default_factory=list, max_length=20,
                                  description="control columns the change cannot affect (e.g. marketing spend)")
    estimator: Literal["structural", "segmented"] = Field("structural", description="the primary estimator: its "
                                                                                    "effect carries the verdict")
    structural: StructuralOptions = StructuralOptions()
    segmented: SegmentedOptions = SegmentedOptions()
    placebos: int = Field(6, ge=0, le=50, description="placebo interventions in the pre-period")
    assumptions: str = Field(min_length=20, description="the identifying assumptions, in words, shown in the report")
    diagnostics: TimeSeriesDiagnostics = TimeSeriesDiagnostics()

    @model_validator(mode="after")
    def _sensible(self) -> "InterruptedTimeSeries":
        named = [self.time, *([self.series] if self.series else []), *self.regressors]
        if len(set(named)) != len(named):
            raise ValueError(f"time, series and regressors must be different columns (got {named})")
        short = [p for p in self.seasonality if not p > 2]
        if short:
            raise ValueError(f"seasonality: a season is longer than 2 periods (got {short})")
        if len(set(self.seasonality)) != len(self.seasonality):
            raise ValueError(f"seasonality: each season once (got {self.seasonality})")
        return self

    def columns(self) -> dict[str, str]:
        """Field -> column of every data column the design names."""
        named = {"time": self.time}
        if self.series:
            named["series"] = self.series
        named.update({f"regressors[{i}]": column for i, column in enumerate(self.regressors)})
        return named
