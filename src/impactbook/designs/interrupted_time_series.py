"""The interrupted time series design: the plan's pinned file aggregated in DuckDB to one row per series
and period (sums and counts only leave the database), the pooled series of each metric analysed by both
estimators of impactbook.stats.interrupted_time_series, placebo interventions, the preregistered
diagnostics on the primary estimator, and the verdicts in the standard result contract.

A failed diagnostic (autocorrelated residuals, placebos found significant too often, a poor pre-period
fit, an optimizer that did not converge) makes the verdict INCONCLUSIVE with the reason: the
counterfactual is the design's only comparison, and a diagnostic that fails says it cannot be trusted.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from ..plan import Metric, Plan
from ..sqlengine import quote
from ..stats import interrupted_time_series as its
from .quasi_experimental import (Diagnostic, Grouping, aggregate_file, bounded, corrected, dated, judge,
                                 period_sql)

EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class Grid:
    """The regular grid of periods: period number (day number for dates) = first + step * position."""

    first: int
    step: int
    size: int
    dates: bool

    def label(self, position: int) -> str | int:
        period = self.first + self.step * position
        return (EPOCH + dt.timedelta(days=period)).isoformat() if self.dates else period

    def position(self, period: int) -> int:
        return (period - self.first) // self.step


@dataclass(frozen=True)
class SeriesTable:
    """Per period on the grid: each metric's sum and count and each regressor's sum and count, by series."""

    grid: Grid
    series: tuple[str, ...]
    sums: dict[str, np.ndarray]      # "m_<metric>" / "r_<i>" -> (series, positions)
    counts: dict[str, np.ndarray]

    def values(self, name: str, aggregation: str, series: int | None = None) -> np.ndarray:
        """The series (or the pooled series: all series' rows together) on the grid; NaN where empty."""
        pick = slice(None) if series is None else slice(series, series + 1)
        total, count = self.sums[name][pick].sum(axis=0), self.counts[name][pick].sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = total / count if aggregation == "mean" else np.where(count > 0, total, np.nan)
        return np.where(count > 0, value, np.nan)


@dataclass(frozen=True)
class MetricTimeSeries:
    metric: Metric
    estimates: dict[str, its.InterruptedTimeSeries]     # estimator name -> fit (primary first)
    placebos: dict[str, its.PlaceboSummary | str]  # or why they could not be estimated
    diagnostics: list[Diagnostic]
    verdict: str
    note: str | None
    by_series: dict[str, its.InterruptedTimeSeries | str] = field(default_factory=dict)  # or why not estimable
    unavailable: dict[str, str] = field(default_factory=dict)  # the other estimator, when it could not run
    adjusted_p_value: float | None = None  # the plan's multiple-testing correction over its family

    @property
    def primary(self) -> its.InterruptedTimeSeries | None:
        return next(iter(self.estimates.values()), None)


def _number(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _relative(value: float | None, level: float | None) -> float | None:
    return _number(value / level) if value is not None and level else None


@dataclass(frozen=True)
class InterruptedTimeSeriesAnalysis:
    plan: Plan
    metrics: list[MetricTimeSeries]
    table: SeriesTable
    data_quality: dict[str, Any]

    def results(self) -> list[dict[str, Any]]:
        """The standard `results` rows: the primary estimator's average effect per post period, in the
        metric's units and relative to the counterfactual level (= cumulative effect over the cumulative
        counterfactual); the other estimator's figures ride along."""
        rows = []
        for item in self.metrics:
            metric, fit = item.metric, item.primary
            row = {"metric": metric.id, "role": metric.role, "kind": metric.kind, "direction": metric.direction,
                   "verdict": item.verdict if metric.role != "exploratory" else None, "note": item.note,
                   "estimator": self.plan.design.estimator}
            if fit is not None:
                level = fit.counterfactual_level
                row.update({
                    "method": fit.method, "level": fit.level, "difference": _number(fit.average_effect),
                    "difference_low": _number(fit.average_low), "difference_high": _number(fit.average_high),
                    "relative": _relative(fit.average_effect, level), "relative_low": _relative(fit.average_low, level),
                    "relative_high": _relative(fit.average_high, level), "p_value": _number(fit.average_p_value),
                    "adjusted_p_value": _number(item.adjusted_p_value),
                    "cumulative_effect": _number(fit.cumulative[-1]), "cumulative_low": _number(fit.cumulative_low[-1]),
                    "cumulative_high": _number(fit.cumulative_high[-1]), "counterfactual_level": _number(level),
                    "pre_periods": fit.pre_periods, "post_periods": fit.post_periods})
            for name, other in list(item.estimates.items())[1:]:
                row.update({f"{name}_difference": _number(other.average_effect),
                            f"{name}_difference_low": _number(other.average_low),
                            f"{name}_difference_high": _number(other.average_high),
                            f"{name}_p_value": _number(other.average_p_value)})
            row.update({f"{name}_note": reason for name, reason in item.unavailable.items()})
            rows.append(row)
        return rows

    def verdicts(self) -> dict[str, str]:
        return {item.metric.id: item.verdict for item in self.metrics if item.metric.role != "exploratory"}

    def series_rows(self) -> list[dict[str, Any]]:
        """Columns per metric for the three panels, from the primary estimator (the other's figures are in
        the results rows): observed and counterfactual over every period, pointwise and cumulative effects
        (with their intervals) over the post-period."""
        grid = self.table.grid
        rows = []
        for item in self.metrics:
            for name, fit in list(item.estimates.items())[:1]:
                rows.append({"metric": item.metric.id, "estimator": name,
                             "periods": [grid.label(p) for p in range(grid.size)],
                             "intervention": grid.label(fit.intervention), "level": fit.level,
                             **{key: [_number(v) for v in getattr(fit, key)] for key in
                                ("observed", "counterfactual", "counterfactual_low", "counterfactual_high", "effect",
                                 "effect_low", "effect_high", "cumulative", "cumulative_low", "cumulative_high")}})
        return rows

    def scraps(self) -> dict[str, Any]:
        grid = self.table.grid
        return {
            "results": self.results(), "verdicts": self.verdicts(), "its_series": self.series_rows(),
            "placebos": [{"metric": item.metric.id, "estimator": name, "period": grid.label(p.intervention),
                          "post_periods": summary.post_periods, "average_effect": _number(p.average_effect),
                          "p_value": _number(p.p_value), "rejected": p.rejected}
                         for item in self.metrics for name, summary in item.placebos.items() if not isinstance(summary, str)
                         for p in summary.placebos],
            "diagnostics": [d.scrap(item.metric.id) for item in self.metrics for d in item.diagnostics],
            "series_effects": [_series_effect(item.metric.id, name, self.plan.design.estimator, fit)
                               for item in self.metrics for name, fit in item.by_series.items()],
            "data_quality": self.data_quality,
        }


def _series_effect(metric: str, series: str, estimator: str, fit: its.InterruptedTimeSeries | str) -> dict[str, Any]:
    """One series' own estimate (no verdict), or why it has none."""
    if isinstance(fit, str):
        return {"metric": metric, "series": series, "estimator": estimator, "note": fit}
    return {"metric": metric, "series": series, "estimator": estimator, "difference": _number(fit.average_effect),
            "difference_low": _number(fit.average_low), "difference_high": _number(fit.average_high),
            "relative": _relative(fit.average_effect, fit.counterfactual_level),
            "p_value": _number(fit.average_p_value), "note": None}


def series_grouping(plan: Plan, kinds: dict[str, str]) -> Grouping:
    """One row per series and period: each metric's and regressor's sum and count (sufficient statistics
    for the mean or the sum, per series and pooled), periods up to the end of the outcome window."""
    spec = plan.design
    period = period_sql(quote(spec.time), kinds[spec.time], dated(kinds[spec.time], plan, spec.time))
    columns = [(f"m_{m.id}", m.column) for m in plan.metrics] + [(f"r_{i}", c) for i, c in enumerate(spec.regressors)]
    stats = ", ".join(["COUNT(*) AS period_rows"] + [f"SUM(CAST({quote(column)} AS DOUBLE)) AS {quote('s_' + name)}, "
                                                     f"COUNT({quote(column)}) AS {quote('n_' + name)}"
                                                     for name, column in columns])
    kept = f"{quote(spec.time)} IS NOT NULL" + (f" AND {quote(spec.series)} IS NOT NULL" if spec.series else "")
    if isinstance(spec.intervention, dt.date):
        kept += f" AND {period} <= {(plan.window.end - EPOCH).days}"
    return {"series": f"CAST({quote(spec.series)} AS VARCHAR)" if spec.series else "''", "period": period}, stats, kept


def analyse_file(plan: Plan, path: Path, format: str = "csv") -> InterruptedTimeSeriesAnalysis:
    """Aggregate the pinned file in DuckDB (locked to that file) and analyse it."""
    return analyse_table(plan, *aggregate_file(path, format, lambda kinds: series_grouping(plan, kinds)))


def series_table(plan: Plan, frame) -> SeriesTable:
    """The aggregated rows placed on the grid of periods (the step is the periods' greatest common gap, and
    the intervention must be on it)."""
    periods = np.unique(frame["period"].to_numpy(dtype=np.int64))
    intervention = plan.design.intervention
    anchor = (intervention - EPOCH).days if isinstance(intervention, dt.date) else int(intervention)
    step = int(reduce(math.gcd, np.diff(periods).tolist(), 0)) or 1
    if len(periods) and (anchor - int(periods.min())) % step:
        shown = (EPOCH + dt.timedelta(days=int(periods.min()))).isoformat() if isinstance(intervention, dt.date) \
            else int(periods.min())
        raise ValueError(f"design.intervention {intervention} is not on the data's grid of periods (every {step} "
                         f"{'days' if isinstance(intervention, dt.date) else 'periods'} from {shown})")
    first = int(min(periods.min(), anchor)) if len(periods) else anchor
    grid = Grid(first, step, int((max(periods.max(), anchor) - first) // step) + 1 if len(periods) else 1,
                isinstance(intervention, dt.date))
    names = tuple(sorted(frame["series"].astype(str).unique()))
    row = np.searchsorted(names, frame["series"].astype(str).to_numpy())
    column = (frame["period"].to_numpy(dtype=np.int64) - first) // step
    sums, counts = {}, {}
    for name in [f"m_{m.id}" for m in plan.metrics] + [f"r_{i}" for i in range(len(plan.design.regressors))]:
        sums[name], counts[name] = np.zeros((len(names), grid.size)), np.zeros((len(names), grid.size))
        np.add.at(sums[name], (row, column), frame[f"s_{name}"].fillna(0).to_numpy(dtype=float))
        np.add.at(counts[name], (row, column), frame[f"n_{name}"].to_numpy(dtype=float))
    return SeriesTable(grid, names, sums, counts)


def analyse_table(plan: Plan, frame, dropped_rows: int = 0) -> InterruptedTimeSeriesAnalysis:
    """Both estimators, placebos and diagnostics for each metric's pooled series (a DataFrame as
    `series_grouping` groups it); the primary estimator also per series when there are several."""
    spec = plan.design
    table = series_table(plan, frame)
    anchor = spec.intervention
    intervention = table.grid.position((anchor - EPOCH).days if isinstance(anchor, dt.date) else int(anchor))
    regressors = (np.column_stack([table.values(f"r_{i}", "mean") for i in range(len(spec.regressors))])
                  if spec.regressors else None)
    metrics = corrected(plan, [_analyse_metric(plan, metric, table, intervention, regressors) for metric in plan.metrics],
                        lambda item: item.primary.average_p_value if item.primary is not None else None)
    observed = table.counts[f"m_{plan.metrics[0].id}"].sum(axis=0) > 0 if plan.metrics else np.zeros(0, bool)
    quality = {"series_rows": len(frame), "rows_excluded": dropped_rows, "series": list(table.series),
               "periods": table.grid.size, "period_step": table.grid.step, "pre_periods": intervention,
               "post_periods": table.grid.size - intervention, "first_period": table.grid.label(0),
               "intervention": table.grid.label(intervention),
               "last_period": table.grid.label(table.grid.size - 1),
               "periods_without_data": int((~observed).sum()),
               # blanks a period's mean or sum leaves out, and a declared series' periods made of several rows
               # (a duplicated row; one series pools every row of a period by design): nothing else shows them
               "missing_values": {m.id: int(frame["period_rows"].sum() - frame[f"n_m_{m.id}"].sum())
                                  for m in plan.metrics}}
    if spec.series:  # (shown in the report's data-quality table, every key a row)
        quality["series_periods_with_several_rows"] = int((frame["period_rows"] > 1).sum())
    return InterruptedTimeSeriesAnalysis(plan, metrics, table, quality)


ESTIMATORS = {"structural": its.structural_counterfactual, "segmented": its.segmented_regression}


def _options(plan: Plan, estimator: str) -> dict[str, Any]:
    """What the plan declares for this estimator: seasonality and its own settings."""
    spec = plan.design
    own = ({"trend": spec.structural.trend, "autoregressive": spec.structural.autoregressive}
           if estimator == "structural" else {"hac_lags": spec.segmented.hac_lags})
    return {"seasonal_periods": spec.seasonality, "harmonics": spec.harmonics, **own}


def _fits(plan: Plan, outcome: np.ndarray, intervention: int, regressors: np.ndarray | None, estimator: str,
          **extra) -> its.InterruptedTimeSeries:
    return ESTIMATORS[estimator](outcome, intervention, regressors=regressors, alpha=plan.alpha,
                                 ljung_box_lags=plan.design.diagnostics.ljung_box_lags,
                                 **_options(plan, estimator), **extra)


def _analyse_metric(plan: Plan, metric: Metric, table: SeriesTable, intervention: int,
                    regressors: np.ndarray | None) -> MetricTimeSeries:
    spec = plan.design
    outcome = table.values(f"m_{metric.id}", spec.aggregation)
    order = [spec.estimator] + [name for name in ESTIMATORS if name != spec.estimator]
    estimates, placebos, unavailable = {}, {}, {}
    for name in order:
        try:
            estimates[name] = _fits(plan, outcome, intervention, regressors, name)
        except (its.NotEstimable, np.linalg.LinAlgError) as reason:
            if name == spec.estimator:
                return MetricTimeSeries(metric, {}, {}, [], "INCONCLUSIVE", f"not estimable: {reason}")
            unavailable[name] = f"not estimable: {reason}"  # the other estimator: shown, no verdict rests on it
    for name, fit in estimates.items():
        placebos[name] = _placebos(plan, name, fit, outcome, intervention, regressors)
    by_series = {}
    start = {"start_params": estimates["structural"].parameters} if spec.estimator == "structural" else {}
    if len(table.series) > 1:
        for number, name in enumerate(table.series):
            try:
                by_series[name] = _fits(plan, table.values(f"m_{metric.id}", spec.aggregation, number),
                                        intervention, regressors, spec.estimator, **start)
            except (its.NotEstimable, np.linalg.LinAlgError) as reason:
                by_series[name] = f"not estimable: {reason}"
    primary = estimates[spec.estimator]
    diagnostics = _diagnostics(plan, primary, placebos[spec.estimator])
    verdict, note = judge(plan, metric, primary.average_effect, primary.average_standard_error,
                          primary.average_p_value, primary.degrees_of_freedom, primary.counterfactual_level,
                          diagnostics)
    return MetricTimeSeries(metric, estimates, placebos, diagnostics, verdict, note, by_series, unavailable)


def _placebos(plan: Plan, name: str, fit: its.InterruptedTimeSeries, outcome: np.ndarray, intervention: int,
              regressors: np.ndarray | None) -> its.PlaceboSummary | str:
    """The estimator's placebo interventions (structural ones start from the real fit's parameters), or
    why they could not be estimated."""
    options = {**_options(plan, name), "ljung_box_lags": min(plan.design.diagnostics.ljung_box_lags,
                                                              max(intervention // 8, 1))}
    if name == "structural":
        options["start_params"] = fit.parameters
    try:
        return its.placebo_interventions(ESTIMATORS[name], outcome, intervention, plan.design.placebos, regressors,
                                         plan.alpha, **options)
    except (its.NotEstimable, np.linalg.LinAlgError) as reason:
        return f"placebo interventions could not be estimated ({reason})"


def _diagnostics(plan: Plan, fit: its.InterruptedTimeSeries, placebos: its.PlaceboSummary | str) -> list[Diagnostic]:
    limits = plan.design.diagnostics
    found = [bounded(f"residual autocorrelation (Ljung-Box, {fit.ljung_box_lags} lags, pre-period)",
                     fit.ljung_box_p_value, limits.ljung_box_p_min, at_least=True,
                     failure=lambda p: f"Ljung-Box p = {p:.3g} < {limits.ljung_box_p_min}: the model leaves "
                                       "autocorrelation in its pre-period residuals, so its intervals are too narrow",
                     undefined="the Ljung-Box test has no p-value on the pre-period residuals (they do not vary): "
                               "their autocorrelation is untested")]
    rate = None if isinstance(placebos, str) else placebos.false_positive_rate
    if plan.design.placebos and rate is None:
        found.append(Diagnostic("placebo interventions", float("nan"), limits.placebo_fpr_max, False,
                                placebos if isinstance(placebos, str) else "no placebo intervention fits the pre-period"))
    elif rate is not None:
        found.append(Diagnostic(f"placebo interventions found significant ({len(placebos.placebos)} in the pre-period)",
                                rate, limits.placebo_fpr_max, rate <= limits.placebo_fpr_max,
                                f"{rate:.0%} of placebo interventions were significant > {limits.placebo_fpr_max:.0%}: "
                                "the model finds effects where there are none"))
    if fit.pre_mape is not None:
        found.append(bounded("pre-period fit (mean absolute percentage error)", fit.pre_mape, limits.pre_mape_max,
                             at_least=False,
                             failure=lambda mape: f"pre-period MAPE {mape:.3g} > {limits.pre_mape_max}: the model "
                                                  "does not track the series before the change",
                             undefined="the pre-period MAPE could not be computed: the fit before the change is "
                                       "unchecked"))
    if plan.design.estimator == "structural":
        found.append(Diagnostic("maximum-likelihood fit converged", float(fit.converged), 1.0, fit.converged,
                                "the optimizer did not converge: the counterfactual's parameters are unreliable"))
    return found
