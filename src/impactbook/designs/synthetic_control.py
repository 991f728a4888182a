"""The synthetic control design: the plan's panel aggregated to one row per unit and period in DuckDB
(only those means leave the database), pivoted to a periods x units matrix per metric, the synthetic
control with in-space placebos and leave-one-out donors (impactbook.stats.synthetic_control) or, with
`estimator: synthetic_did`, synthetic difference-in-differences (impactbook.stats.synthetic_did), the
preregistered diagnostics, and the verdicts in the standard result contract.

A failed diagnostic (a poor pre-period fit, too few donors, too few placebos for the test to reach alpha)
makes every verdict INCONCLUSIVE with the reason: a synthetic control that does not track the treated
unit before the change says nothing about the gap after it (Abadie, Diamond & Hainmueller 2010, sec. 3.3).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..plan import Metric, Plan
from ..sqlengine import quote
from ..stats.synthetic_control import SyntheticControlResult, scaled_predictors, synthetic_control_panel
from ..stats.synthetic_did import SyntheticDidResult, synthetic_did
from .difference_in_differences import Diagnostic
from .quasi_experimental import (Grouping, aggregate_file, bounded, corrected, dated, interval_non_inferiority,
                                 period_number, period_sql, several_rows)

PARALLEL_FROM_DONORS = 200  # placebo fits go to a process pool from this many donors (start-up costs ~0.1 s)


@dataclass(frozen=True)
class MetricSyntheticControl:
    metric: Metric
    result: SyntheticControlResult | SyntheticDidResult
    treated_path: np.ndarray  # the treated unit's series (the treated units' mean)
    diagnostics: list[Diagnostic]
    verdict: str
    note: str | None
    adjusted_p_value: float | None = None  # the plan's multiple-testing correction over its family


@dataclass(frozen=True)
class SyntheticControlAnalysis:
    plan: Plan
    metrics: list[MetricSyntheticControl]
    units: list[str]
    donors: list[str]
    periods: list[int]
    pre_periods: int
    panel_rows: int
    dropped_rows: int
    incomplete_donors: list[str] = field(default_factory=list)
    unit_periods_with_several_rows: int = 0  # averaged (repeated cross-sections, or duplicated rows)

    def results(self) -> list[dict[str, Any]]:
        """The standard `results` rows: the average post-period gap in the metric's units and relative to
        the synthetic (counterfactual) level, its placebo p-value and test-inversion interval."""
        rows = []
        for item in self.metrics:
            result, metric = item.result, item.metric
            level = result.counterfactual_level
            relative = (lambda value: value / level if value is not None and level != 0 else None)
            loo = list(result.leave_one_out_estimates.values())
            rows.append({
                "metric": metric.id, "role": metric.role, "kind": metric.kind, "direction": metric.direction,
                "method": result.method, "level": result.level,
                "difference": result.estimate, "difference_low": result.interval_low,
                "difference_high": result.interval_high, "relative": relative(result.estimate),
                "relative_low": relative(result.interval_low), "relative_high": relative(result.interval_high),
                "p_value": result.p_value, "adjusted_p_value": item.adjusted_p_value,
                "verdict": item.verdict if metric.role != "exploratory" else None,
                "note": item.note, "treated_units": len(self.plan.design.treated), "donors": len(self.donors),
                "periods": len(self.periods), "pre_periods": self.pre_periods, "placebos": result.placebo_draws,
                "standard_error": getattr(result, "standard_error", None),
                "pre_rmspe": result.pre_rmspe, "pre_rmspe_relative": _relative_fit(result),
                "rmspe_ratio": _finite(result.rmspe_ratio), "counterfactual_level": level,
                "leave_one_out_low": min(loo) if loo else None, "leave_one_out_high": max(loo) if loo else None})
        return rows

    def period_label(self, period: int) -> str | int:
        """A period as the plan writes it: an ISO date for a date column, else the number."""
        if isinstance(self.plan.design.intervention, dt.date):
            return (dt.date(1970, 1, 1) + dt.timedelta(days=period)).isoformat()
        return period

    def verdicts(self) -> dict[str, str]:
        return {item.metric.id: item.verdict for item in self.metrics if item.metric.role != "exploratory"}

    def scraps(self) -> dict[str, Any]:
        labels = [self.plan.design.treated[0] if len(self.plan.design.treated) == 1 else "treated (average)"]
        return {
            "results": self.results(), "verdicts": self.verdicts(),
            "weights": [{"metric": item.metric.id, "donor": donor, "weight": float(weight)}
                        for item in self.metrics for donor, weight in zip(self.donors, item.result.weights)
                        if weight > 1e-6],
            "paths": [{"metric": item.metric.id, "period": self.period_label(period), "treated": float(treated),
                       "synthetic": float(treated - gap), "gap": float(gap)}
                      for item in self.metrics
                      for period, treated, gap in zip(self.periods, item.treated_path, item.result.gaps)],
            "placebo_gaps": [{"metric": item.metric.id, "placebo": index, "gaps": [float(g) for g in gaps],
                              "rmspe_ratio": _finite(ratio)}
                             for item in self.metrics
                             for index, (gaps, ratio) in enumerate(zip(item.result.placebo_gaps,
                                                                       item.result.placebo_ratios))
                             if index < 200],
            "time_weights": [{"metric": item.metric.id, "period": self.period_label(period), "weight": float(weight)}
                             for item in self.metrics for period, weight in
                             zip(self.periods, getattr(item.result, "time_weights", [])) if weight > 1e-6],
            "leave_one_out": [{"metric": item.metric.id, "dropped_donor": self.donors[j], "estimate": estimate}
                              for item in self.metrics for j, estimate in item.result.leave_one_out_estimates.items()],
            "diagnostics": [d.scrap(item.metric.id) for item in self.metrics for d in item.diagnostics],
            "data_quality": {"panel_rows": self.panel_rows, "rows_without_unit_or_period": self.dropped_rows,
                             "treated": labels + list(self.plan.design.treated[1:] if len(labels) > 1 else []),
                             "donors": len(self.donors), "incomplete_donors_dropped": self.incomplete_donors,
                             "unit_periods_with_several_rows": self.unit_periods_with_several_rows},
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _relative_fit(result: SyntheticControlResult) -> float | None:
    level = abs(result.treated_pre_level)
    return result.pre_rmspe / level if level > 0 else None


def panel_grouping(plan: Plan, kinds: dict[str, str]) -> Grouping:
    """One row per unit and period: each metric's mean (m_<id>) and each predictor column's (p_<index>);
    dated periods up to the end of the outcome window (later rows are left out and counted, as in ITS)."""
    spec = plan.design
    means = [f"AVG(CAST({quote(m.column)} AS DOUBLE)) AS {quote('m_' + m.id)}" for m in plan.metrics]
    means += [f"AVG(CAST({quote(p.column)} AS DOUBLE)) AS p_{i}" for i, p in enumerate(spec.predictors)]
    period = period_sql(quote(spec.time), kinds[spec.time], dated(kinds[spec.time], plan, spec.time))
    kept = f"{quote(spec.unit)} IS NOT NULL AND {quote(spec.time)} IS NOT NULL"
    if isinstance(spec.intervention, dt.date):
        kept += f" AND {period} <= {period_number(plan.window.end)}"
    return {"unit": f"CAST({quote(spec.unit)} AS VARCHAR)", "period": period}, \
        ", ".join(["COUNT(*) AS unit_period_rows", *means]), kept


def analyse_file(plan: Plan, path: Path, format: str = "csv") -> SyntheticControlAnalysis:
    """Aggregate the pinned panel in DuckDB (locked to that file, one scan) and analyse it."""
    return analyse_panel(plan, *aggregate_file(path, format, lambda kinds: panel_grouping(plan, kinds)))


def _matrix(frame, column: str, units: list[str], periods: list[int]) -> np.ndarray:
    """periods x units, NaN where a unit has no row for a period."""
    table = frame.pivot(index="period", columns="unit", values=column)
    return table.reindex(index=periods, columns=units).to_numpy(dtype=float)


def analyse_panel(plan: Plan, frame, dropped_rows: int = 0, workers: int | None = None) -> SyntheticControlAnalysis:
    """The synthetic control of each metric on the unit x period panel (a DataFrame as `panel_grouping` groups
    it). Donors missing any period of any metric or predictor are dropped (listed in data_quality)."""
    spec = plan.design
    frame = frame.assign(unit=frame["unit"].astype(str))
    periods = sorted(int(p) for p in frame["period"].unique())
    start = period_number(spec.intervention)
    pre = sum(p < start for p in periods)
    if pre < 2 or pre == len(periods):
        raise ValueError(f"design.intervention: {spec.intervention} leaves {pre} of {len(periods)} periods before "
                         "it; a synthetic control needs at least two pre-periods and one after")
    present = set(frame["unit"])
    missing = [u for u in spec.treated if u not in present]
    if missing:
        raise ValueError(f"design.treated: units {missing} have no rows in the panel")
    candidates = sorted(present - set(spec.treated) - set(spec.exclude))
    units = list(spec.treated) + candidates
    outcomes = {m.id: _matrix(frame, f"m_{m.id}", units, periods) for m in plan.metrics}
    predictors = [_predictor_row(frame, i, p, units, periods, pre) for i, p in enumerate(spec.predictors)]
    blocks = [*outcomes.values(), *(row[None, :] for row in predictors)]
    complete = ~np.isnan(np.vstack(blocks)).any(axis=0)
    gaps = [u for u, ok in zip(spec.treated, complete) if not ok]
    if gaps:
        raise ValueError(f"design.treated: units {gaps} miss a period or a predictor value; the synthetic control "
                         "needs every period of the treated units")
    keep = np.flatnonzero(complete)
    donors = [units[j] for j in keep[len(spec.treated):]]
    incomplete = [units[j] for j in np.flatnonzero(~complete)]
    if len(donors) < 2:  # no convex combination to fit, no placebo to rank
        raise ValueError(f"design: {len(donors)} donor units with every period ({len(candidates)} untreated, not "
                         f"excluded; {len(incomplete)} dropped as missing a period or predictor value); a "
                         "synthetic control needs at least two")
    fit_rows = None
    if predictors:
        weights = [p.weight for p in spec.predictors]
        fit_rows = scaled_predictors(np.array(predictors)[:, keep], None if weights[0] is None else weights)
    treated = list(range(len(spec.treated)))
    workers = workers if workers is not None else (min(2, os.cpu_count() or 1)
                                                   if len(donors) >= PARALLEL_FROM_DONORS else 1)
    studies = []
    for metric in plan.metrics:
        matrix = outcomes[metric.id][:, keep]
        if spec.estimator == "synthetic_did":
            result = synthetic_did(matrix, treated, pre, level=1 - plan.alpha, seed=plan.seed or 0)
        else:
            result = synthetic_control_panel(matrix, treated, pre, fit_rows, level=1 - plan.alpha, workers=workers,
                                             seed=plan.seed or 0)
        studies.append(MetricSyntheticControl(metric, result, matrix[:, treated].mean(axis=1),
                                              *_judge(plan, result, len(donors), metric)))
    # a placebo rank p-value is significant at p <= alpha (ADH 2010); the correction keeps that rule
    studies = corrected(plan, studies, lambda item: item.result.p_value, lambda p: p <= plan.alpha)
    return SyntheticControlAnalysis(plan, studies, units, donors, periods, pre, len(frame), dropped_rows, incomplete,
                                    several_rows(frame))


def _predictor_row(frame, index: int, predictor, units: list[str], periods: list[int], pre: int) -> np.ndarray:
    """Each unit's mean of the predictor over its declared periods (default: every pre-period)."""
    values = _matrix(frame, f"p_{index}", units, periods)
    rows = list(range(pre)) if predictor.periods is None else \
        [periods.index(period_number(p)) for p in predictor.periods if period_number(p) in periods]
    if predictor.periods is not None and len(rows) != len(predictor.periods):
        raise ValueError(f"design.predictors[{index}].periods: some periods are not in the panel")
    return values[rows].mean(axis=0)


def _judge(plan: Plan, result: SyntheticControlResult | SyntheticDidResult, donors: int,
           metric: Metric) -> tuple[list[Diagnostic], str, str | None]:
    thresholds = plan.design.diagnostics
    fit = _relative_fit(result)
    needed = math.ceil(1 / plan.alpha - 1 - 1e-9)
    if isinstance(result, SyntheticDidResult):
        # the placebos estimate a variance here, not a rank: at least the minimum donors' worth of them
        needed = thresholds.min_donors
    diagnostics = [
        bounded("pre-period fit (RMSPE relative to the treated level)", fit, thresholds.max_pre_rmspe, at_least=False,
                failure=lambda share: f"pre-period RMSPE is {share:.1%} of the treated level > "
                                      f"{thresholds.max_pre_rmspe:.1%}: the synthetic control does not track the "
                                      "treated unit before the change",
                undefined=f"the treated unit's pre-period level is {result.treated_pre_level:.3g}, so its pre-period "
                          f"RMSPE ({result.pre_rmspe:.3g}) has no size relative to it: the fit before the change is "
                          "unchecked"),
        Diagnostic("donors", donors, thresholds.min_donors, donors >= thresholds.min_donors,
                   f"{donors} donors < {thresholds.min_donors}"),
        Diagnostic("placebos (the rank test can reach alpha)", result.placebo_draws, needed,
                   result.placebo_draws >= needed,
                   f"{result.placebo_draws} placebos < {needed}: the smallest placebo p-value, "
                   f"1/{result.placebo_draws + 1}, exceeds alpha {plan.alpha}")
        if isinstance(result, SyntheticControlResult) else
        Diagnostic("placebos (the standard error)", result.placebo_draws, needed, result.placebo_draws >= needed,
                   f"{result.placebo_draws} placebo estimates < {needed}: too few to estimate the variance"),
    ]
    failed = [d.reason for d in diagnostics if not d.passed]
    if failed:
        return diagnostics, "INCONCLUSIVE", "diagnostic failed: " + "; ".join(failed)
    if metric.role == "guardrail":
        return (diagnostics, *_non_inferiority(plan, metric, result))
    significant = result.p_value is not None and result.p_value <= plan.alpha
    good = result.estimate > 0 if metric.direction == "increase" else result.estimate < 0
    verdict = "INCONCLUSIVE" if not significant else ("CONFIRMED" if good else "REFUTED")
    return diagnostics, verdict, None


def _non_inferiority(plan: Plan, metric: Metric,
                     result: SyntheticControlResult | SyntheticDidResult) -> tuple[str, str | None]:
    """Non-inferiority at alpha by the (1 - 2 alpha) interval (Schuirmann 1987's two one-sided tests: for a
    synthetic control each a shifted placebo rank test, for synthetic DiD normal with the placebo standard
    error); a relative margin divides by the synthetic level, taken as known."""
    low, high = result.interval(1 - 2 * plan.alpha)
    if low is None or high is None:
        return "INCONCLUSIVE", (f"{result.placebo_draws} placebos cannot bound the effect at "
                                f"{1 - 2 * plan.alpha:.0%}: non-inferiority is untestable")
    return interval_non_inferiority(low, high, result.counterfactual_level, metric)
