"""The difference-in-differences design: the plan's panel aggregated to one row per unit and period in
DuckDB (only those means leave the database), an event study per metric (impactbook.stats.event_study),
the preregistered diagnostics, and the verdicts in the standard result contract.

A failed diagnostic (pre-trends, too few clusters) makes every verdict INCONCLUSIVE with the reason:
parallel trends is the design's identifying assumption, and a rejected pre-trend test says it fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..plan import Metric, Plan
from ..sqlengine import quote
from ..stats.event_study import EventStudy, event_study
from .panel import interval_non_inferiority, period_sql as _period, read_panel


@dataclass(frozen=True)
class Diagnostic:
    name: str
    value: float
    threshold: float
    passed: bool
    reason: str


@dataclass(frozen=True)
class MetricEventStudy:
    metric: Metric
    study: EventStudy
    diagnostics: list[Diagnostic]
    verdict: str
    note: str | None


@dataclass(frozen=True)
class DifferenceInDifferencesAnalysis:
    plan: Plan
    metrics: list[MetricEventStudy]
    panel_rows: int
    dropped_rows: int
    adoption_periods: dict[str, int] = field(default_factory=dict)

    def results(self) -> list[dict[str, Any]]:
        """The standard `results` rows: the average effect over periods 0..lags, in the metric's units and
        relative to the treated units' counterfactual level."""
        rows = []
        for item in self.metrics:
            study, metric = item.study, item.metric
            level = study.counterfactual_level
            relative = (lambda value: value / level if level not in (None, 0) else None)
            rows.append({
                "metric": metric.id, "role": metric.role, "kind": metric.kind, "direction": metric.direction,
                "method": study.method, "level": study.level,
                "difference": study.average_effect, "difference_low": study.average_low,
                "difference_high": study.average_high, "relative": relative(study.average_effect),
                "relative_low": relative(study.average_low), "relative_high": relative(study.average_high),
                "p_value": study.average_p_value, "verdict": item.verdict if metric.role != "exploratory" else None,
                "note": item.note, "treated_units": study.treated_units, "units": study.units,
                "periods": study.periods, "clusters": study.clusters, "pretrend_p_value": study.pretrend_p_value,
                "counterfactual_level": level})
        return rows

    def verdicts(self) -> dict[str, str]:
        return {item.metric.id: item.verdict for item in self.metrics if item.metric.role != "exploratory"}

    def scraps(self) -> dict[str, Any]:
        return {
            "results": self.results(), "verdicts": self.verdicts(),
            "event_study": [{"metric": item.metric.id, "relative_period": e.relative_period, "estimate": e.estimate,
                             "standard_error": e.standard_error, "low": e.low, "high": e.high}
                            for item in self.metrics for e in item.study.effects],
            "diagnostics": [{"metric": item.metric.id, "name": d.name, "value": d.value, "threshold": d.threshold,
                             "passed": d.passed, "reason": d.reason} for item in self.metrics for d in item.diagnostics],
            "data_quality": {"panel_rows": self.panel_rows, "rows_without_unit_or_period": self.dropped_rows,
                             "adoption_periods": self.adoption_periods},
        }


def panel_sql(plan: Plan, source: str, kinds: dict[str, str]) -> str:
    """One row per unit and period: each metric's mean, the unit's adoption period and cluster."""
    spec = plan.design
    period = _period(quote(spec.time), kinds[spec.time])
    adoption = _period(quote(spec.adoption), kinds[spec.adoption])
    cluster = quote(spec.cluster or spec.unit)
    means = ", ".join(f"AVG(CAST({quote(m.column)} AS DOUBLE)) AS {quote('m_' + m.id)}" for m in plan.metrics)
    return (f"SELECT CAST({quote(spec.unit)} AS VARCHAR) AS unit, {period} AS period, MIN({adoption}) AS adoption, "
            f"MIN(CAST({cluster} AS VARCHAR)) AS cluster, {means} FROM {source} "
            f"WHERE {quote(spec.unit)} IS NOT NULL AND {quote(spec.time)} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2")


def analyse_file(plan: Plan, path: Path, format: str = "csv") -> DifferenceInDifferencesAnalysis:
    """Aggregate the pinned panel in DuckDB (locked to that file) and analyse it."""
    frame, dropped = read_panel(path, format, plan.design.unit, plan.design.time,
                                lambda source, kinds: panel_sql(plan, source, kinds))
    return analyse_panel(plan, frame, dropped)


def analyse_panel(plan: Plan, frame, dropped_rows: int = 0) -> DifferenceInDifferencesAnalysis:
    """The event study of each metric on the unit x period panel (a DataFrame as `panel_sql` returns it)."""
    spec = plan.design
    units = frame["unit"].astype(str).to_numpy()
    clusters = np.unique(frame["cluster"].astype(str).to_numpy(), return_inverse=True)[1]
    adoption = frame.groupby("unit")["adoption"].transform("min").to_numpy(dtype=float)
    studies = []
    for metric in plan.metrics:
        values = frame[f"m_{metric.id}"].to_numpy(dtype=float)
        present = ~np.isnan(values)
        study = event_study(values[present], units[present], frame["period"].to_numpy()[present], adoption[present],
                            clusters[present], spec.leads, spec.lags, plan.alpha)
        studies.append(_judge(plan, metric, study))
    cohorts = frame.dropna(subset=["adoption"]).groupby("adoption")["unit"].nunique()
    return DifferenceInDifferencesAnalysis(plan, studies, len(frame), dropped_rows,
                                           {str(int(k)): int(v) for k, v in cohorts.items()})


def _judge(plan: Plan, metric: Metric, study: EventStudy) -> MetricEventStudy:
    thresholds = plan.design.diagnostics
    diagnostics = [
        Diagnostic("pre-trends (joint test that every lead is zero)", study.pretrend_p_value,
                   thresholds.pretrend_p_min, study.pretrend_p_value >= thresholds.pretrend_p_min,
                   f"pre-trend test p = {study.pretrend_p_value:.3g} < {thresholds.pretrend_p_min}: treated and "
                   "comparison units did not move in parallel before adoption"),
        Diagnostic("clusters", study.clusters, thresholds.min_clusters, study.clusters >= thresholds.min_clusters,
                   f"{study.clusters} clusters < {thresholds.min_clusters}: cluster-robust errors are unreliable"),
    ]
    failed = [d.reason for d in diagnostics if not d.passed]
    if failed:
        return MetricEventStudy(metric, study, diagnostics, "INCONCLUSIVE", "diagnostic failed: " + "; ".join(failed))
    if metric.role == "guardrail":
        return MetricEventStudy(metric, study, diagnostics, *_non_inferiority(plan, metric, study))
    significant = study.average_p_value < plan.alpha
    good = study.average_effect > 0 if metric.direction == "increase" else study.average_effect < 0
    verdict = "INCONCLUSIVE" if not significant else ("CONFIRMED" if good else "REFUTED")
    return MetricEventStudy(metric, study, diagnostics, verdict, None)


def _non_inferiority(plan: Plan, metric: Metric, study: EventStudy) -> tuple[str, str | None]:
    """Non-inferiority at alpha by the (1 - 2 alpha) interval of the average effect (Schuirmann 1987); a
    relative margin divides by the counterfactual level, taken as known (its own error is ignored)."""
    from scipy import stats

    critical = stats.t.ppf(1 - plan.alpha, study.clusters - 1)
    low = study.average_effect - critical * study.average_standard_error
    high = study.average_effect + critical * study.average_standard_error
    return interval_non_inferiority(low, high, study.counterfactual_level, metric)
