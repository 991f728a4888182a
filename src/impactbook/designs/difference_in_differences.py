"""The difference-in-differences design: the plan's panel aggregated to one row per unit and period in
DuckDB (only those means leave the database), an event study per metric (impactbook.stats.event_study),
the preregistered diagnostics, and the verdicts in the standard result contract.

A failed diagnostic (pre-trends, too few clusters) makes every verdict INCONCLUSIVE with the reason:
parallel trends is the design's identifying assumption, and a rejected pre-trend test says it fails.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..plan import Metric, Plan
from ..sqlengine import quote
from ..stats.callaway_santanna import callaway_santanna
from ..stats.event_study import EventStudy, EventTimeEffect, event_study, static_did
from .quasi_experimental import (Diagnostic, Grouping, aggregate_file, bounded, corrected, dated, flag_sql, judge,
                                 period_number, period_sql, several_rows)


@dataclass(frozen=True)
class MetricEventStudy:
    metric: Metric
    study: EventStudy
    diagnostics: list[Diagnostic]
    verdict: str
    note: str | None
    adjusted_p_value: float | None = None  # the plan's multiple-testing correction over its family


@dataclass(frozen=True)
class DifferenceInDifferencesAnalysis:
    plan: Plan
    metrics: list[MetricEventStudy]
    panel_rows: int
    dropped_rows: int
    adoption_periods: dict[str, int] = field(default_factory=dict)
    raw_means: list[dict[str, Any]] = field(default_factory=list)
    units: int = 0
    unit_periods_with_several_rows: int = 0  # averaged (repeated cross-sections, or duplicated rows)

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
                "p_value": study.average_p_value, "adjusted_p_value": item.adjusted_p_value,
                "verdict": item.verdict if metric.role != "exploratory" else None,
                "note": item.note, "treated_units": study.treated_units, "units": study.units,
                "periods": study.periods, "clusters": study.clusters, "pretrend_p_value": study.pretrend_p_value,
                "counterfactual_level": level})
        return rows

    def left_out(self) -> list[dict[str, Any]]:
        """Per metric, the unit-periods and units its estimator did not use: missing the value or a covariate
        (twfe, two_by_two); for Callaway & Sant'Anna, whole units outside its balanced panel (every period
        observed) or adopting in the panel's first period (no base period)."""
        return [{"metric": item.metric.id, "unit_periods": self.panel_rows - item.study.observations,
                 "units": self.units - item.study.units} for item in self.metrics]

    def verdicts(self) -> dict[str, str]:
        return {item.metric.id: item.verdict for item in self.metrics if item.metric.role != "exploratory"}

    def scraps(self) -> dict[str, Any]:
        return {
            "results": self.results(), "verdicts": self.verdicts(),
            "event_study": [{"metric": item.metric.id, "relative_period": e.relative_period, "estimate": e.estimate,
                             "standard_error": e.standard_error, "low": e.low, "high": e.high}
                            for item in self.metrics for e in item.study.effects],
            "diagnostics": [d.scrap(item.metric.id) for item in self.metrics for d in item.diagnostics],
            "raw_means": self.raw_means,
            "data_quality": {"panel_rows": self.panel_rows, "rows_without_unit_or_period": self.dropped_rows,
                             "adoption_periods": self.adoption_periods,
                             "unit_periods_with_several_rows": self.unit_periods_with_several_rows,
                             "left_out": self.left_out()},
        }


def panel_grouping(plan: Plan, kinds: dict[str, str]) -> Grouping:
    """One row per unit and period: each metric's and covariate's mean, the unit's adoption period (from the
    adoption column, or `start` where the treated flag is set) and cluster."""
    spec = plan.design
    in_dates = dated(kinds[spec.time], plan, spec.time)
    if spec.adoption:  # (periods on the time column's scale)
        adoption = period_sql(quote(spec.adoption), kinds[spec.adoption], in_dates)
    else:
        if in_dates != isinstance(spec.start, dt.date):
            raise ValueError(f"design.start: {spec.start} must be {'a date' if in_dates else 'a period number'}, as "
                             f"the time column {spec.time!r} is")
        flag = flag_sql(spec.treated, spec.treated_value, kinds[spec.treated])
        adoption = f"CASE WHEN {flag} THEN {period_number(spec.start)} END"
    cluster = quote(spec.cluster or spec.unit)
    means = [f"AVG(CAST({quote(m.column)} AS DOUBLE)) AS {quote('m_' + m.id)}" for m in plan.metrics]
    means += [f"AVG(CAST({quote(c)} AS DOUBLE)) AS x_{i}" for i, c in enumerate(spec.covariates)]
    period = period_sql(quote(spec.time), kinds[spec.time], in_dates)
    return ({"unit": f"CAST({quote(spec.unit)} AS VARCHAR)", "period": period},
            f"MIN({adoption}) AS adoption, MAX({adoption}) AS adoption_last, COUNT({adoption}) AS adopting_rows, "
            f"COUNT({quote(spec.adoption or spec.treated)}) AS marked_rows, COUNT(*) AS unit_period_rows, "
            f"MIN(CAST({cluster} AS VARCHAR)) AS cluster, {', '.join(means)}",
            f"{quote(spec.unit)} IS NOT NULL AND {quote(spec.time)} IS NOT NULL")


def _check_adoption(plan: Plan, frame) -> None:
    """Each unit's treatment must be unambiguous: one adoption period in the adoption column; a flag set on
    every row, on none, or exactly on the rows from `start` on (blank ones aside). The grouping took the
    earliest, so a comparison unit flagged on one stray day became a treated one. And some unit must be left to
    compare with: every unit adopting in one period leaves the effect unidentified (a 2x2 CONFIRMED it anyway)."""
    spec = plan.design
    field, column = ("adoption", spec.adoption) if spec.adoption else ("treated", spec.treated)
    units = frame.groupby("unit")
    if spec.adoption:
        span = units.agg(first=("adoption", "min"), last=("adoption_last", "max"))
        ambiguous = span.index[span["first"].notna() & (span["first"] != span["last"])]
        what = f"more than one adoption period in {column!r}"
    else:
        flagged, rows = frame["adopting_rows"], frame["marked_rows"]  # (a blank flag says nothing either way)
        after = frame["period"].to_numpy() >= period_number(spec.start)
        shape = frame.assign(everywhere=flagged == rows, nowhere=flagged == 0,
                             from_start=np.where(after, flagged == rows, flagged == 0))
        consistent = shape.groupby("unit")[["everywhere", "nowhere", "from_start"]].all().any(axis=1)
        ambiguous = consistent.index[~consistent]
        what = (f"{column!r} = {spec.treated_value!r} on some rows and not on others (neither on every row, on "
                f"none, nor exactly from design.start {spec.start} on)")
    if len(ambiguous):
        examples = ", ".join(map(str, sorted(ambiguous)[:5]))
        raise ValueError(f"design.{field}: {len(ambiguous)} unit(s) have {what}, e.g. {examples}: a unit's treatment "
                         "must be unambiguous")
    adoption = units["adoption"].min()
    if adoption.notna().all() and adoption.nunique() == 1:
        raise ValueError(f"design.{field}: every unit in the panel ({len(adoption)}) adopts in the same period, so "
                         "none is left to compare with; the design needs units that never adopt (or adopt later)")
    if not (adoption <= frame["period"].max()).any():
        raise ValueError(f"design.{field}: every adopting unit adopts after the panel's last period, so no period "
                         "under the candidate is observed")
    before = frame[frame["period"] < frame["unit"].map(adoption)]
    if before.groupby("unit")["period"].nunique().max() < 2 or before.empty:
        raise ValueError(f"design.{field}: no adopting unit is observed in two periods before it adopts, so beside "
                         "the reference period (-1) there is no lead to test pre-trends with; the panel needs "
                         "periods before adoption")


def analyse_file(plan: Plan, path: Path, format: str = "csv") -> DifferenceInDifferencesAnalysis:
    """Aggregate the pinned panel in DuckDB (locked to that file) and analyse it."""
    return analyse_panel(plan, *aggregate_file(path, format, lambda kinds: panel_grouping(plan, kinds)))


def analyse_panel(plan: Plan, frame, dropped_rows: int = 0) -> DifferenceInDifferencesAnalysis:
    """The event study of each metric on the unit x period panel (a DataFrame as `panel_grouping` groups it)."""
    spec = plan.design
    if frame["adoption"].isna().all():
        field = "adoption" if spec.adoption else "treated"
        raise ValueError(f"design.{field}: no unit adopts the change in the panel ({getattr(spec, field)!r} "
                         f"{'is empty in every row' if spec.adoption else f'never equals {spec.treated_value!r}'})")
    _check_adoption(plan, frame)
    clusters = np.unique(frame["cluster"].astype(str).to_numpy(), return_inverse=True)[1]
    adoption = frame.groupby("unit")["adoption"].transform("min").to_numpy(dtype=float)
    studies = []
    panel = frame.assign(adoption=adoption, cluster_code=clusters)
    for metric in plan.metrics:
        study = _estimate(plan, panel.assign(value=frame[f"m_{metric.id}"].to_numpy(dtype=float)), spec.leads,
                          spec.lags)
        placebo = None
        if spec.diagnostics.placebo_shift is not None:
            placebo = _placebo(plan, panel.assign(value=frame[f"m_{metric.id}"].to_numpy(dtype=float)))
        studies.append(_judge(plan, metric, study, placebo))
    studies = corrected(plan, studies, lambda item: item.study.average_p_value)
    cohorts = frame.dropna(subset=["adoption"]).groupby("adoption")["unit"].nunique()
    return DifferenceInDifferencesAnalysis(plan, studies, len(frame), dropped_rows,
                                           {str(int(k)): int(v) for k, v in cohorts.items()}, raw_means(plan, panel),
                                           int(frame["unit"].nunique()), several_rows(frame))


def raw_means(plan: Plan, panel) -> list[dict[str, Any]]:
    """Each metric's mean over the units of each adoption cohort (or never adopting), period by period."""
    cohort = panel["adoption"].map(lambda a: "never" if np.isnan(a) else str(int(a)))
    columns = {f"m_{m.id}": m.id for m in plan.metrics}
    means = panel.assign(cohort=cohort).groupby(["cohort", "period"])[list(columns)].mean().reset_index()
    long = means.melt(id_vars=["cohort", "period"], var_name="metric", value_name="mean")
    long = long.assign(metric=long["metric"].map(columns), period=long["period"].astype(int))
    return long.astype(object).where(long.notna(), None).to_dict("records")


def _estimate(plan: Plan, panel, leads: int, lags: int) -> EventStudy:
    """The plan's estimator on a panel with columns unit, period, adoption, cluster_code, value (and x_<i>
    for the covariates). Rows missing the value or a covariate are left out."""
    spec = plan.design
    if spec.estimator == "callaway_santanna":
        return group_time_study(panel, leads, lags, plan.alpha)
    names = [f"x_{i}" for i in range(len(spec.covariates))]
    present = panel.dropna(subset=["value", *names])
    draws = spec.bootstrap_draws if spec.inference == "wild_cluster_bootstrap" else None
    arrays = (present["value"].to_numpy(dtype=float), present["unit"].astype(str).to_numpy(),
              present["period"].to_numpy(), present["adoption"].to_numpy(dtype=float),
              present["cluster_code"].to_numpy())
    covariates = present[names].to_numpy(dtype=float) if names else None
    study = event_study(*arrays, leads, lags, plan.alpha, draws, plan.seed, covariates)
    if spec.estimator != "two_by_two":
        return study
    adopted = np.unique(arrays[3][~np.isnan(arrays[3])])
    if len(adopted) != 1:
        raise ValueError(f"design.estimator: two_by_two needs one adoption period for every treated unit; the panel "
                         f"has {len(adopted)} (use twfe or callaway_santanna for staggered adoption)")
    static = static_did(*arrays, plan.alpha, covariates, draws, plan.seed)
    treated_post = ~np.isnan(arrays[3]) & (arrays[2] >= adopted[0])
    return dataclasses.replace(study, method=static.method, average_effect=static.estimate,
                               average_standard_error=static.standard_error, average_low=static.low,
                               average_high=static.high, average_p_value=static.p_value,
                               counterfactual_level=float(arrays[0][treated_post].mean() - static.estimate))


@dataclass(frozen=True)
class Placebo:
    """The same estimator with every adopter moved to one fake adoption `shift` periods before the first
    real one, on the periods before any real adoption: its average effect should be nothing."""

    shift: int
    adoption_period: float | None
    study: EventStudy | None
    reason: str | None = None


def _placebo(plan: Plan, panel) -> Placebo:
    shift = plan.design.diagnostics.placebo_shift
    periods = np.sort(panel["period"].unique())
    first = np.nanmin(panel["adoption"].to_numpy(dtype=float))
    before = periods[periods < first]
    index = len(before) - shift
    lags = min(plan.design.lags, shift - 1)
    leads = min(plan.design.leads, index - 1)
    if leads < 2:
        return Placebo(shift, None, None, f"a placebo {shift} periods before the first adoption leaves "
                                          f"{max(index, 0)} earlier periods; it needs at least 3")
    fake = float(before[index])
    pre = panel[panel["period"] < first]
    pre = pre.assign(adoption=np.where(np.isnan(pre["adoption"].to_numpy(dtype=float)), np.nan, fake))
    return Placebo(shift, fake, _estimate(plan, pre, leads, lags))


def group_time_study(frame, leads: int, lags: int, alpha: float) -> EventStudy:
    """Callaway & Sant'Anna on the balanced part of the panel (units observed in every period with a value),
    in the event-study shape the rest of the design reads: event-time effects, the average of effects
    0..lags, the joint pre-trend test, and the treated units' counterfactual level after adoption."""
    wide = frame.pivot_table(index="unit", columns="period", values="value", aggfunc="first").dropna()
    periods = wide.columns.to_numpy()
    per_unit = frame.groupby("unit").agg(adoption=("adoption", "min"), cluster=("cluster_code", "first")).loc[wide.index]
    adoption = per_unit["adoption"].to_numpy(dtype=float)
    cohorts = np.where(np.isnan(adoption), np.nan, np.searchsorted(periods, np.nan_to_num(adoption)))
    outcomes = wide.to_numpy()
    result = callaway_santanna(outcomes, cohorts, per_unit["cluster"].to_numpy(), leads, lags, alpha)
    effects = tuple(EventTimeEffect(e, a.estimate, a.standard_error, a.low, a.high)
                    for e, a in sorted(result.event_time.items()))
    since = np.arange(len(periods))[None, :] - cohorts[:, None]
    after = (since >= 0) & (since <= lags)
    post = result.post_average
    level = float(outcomes[after].mean() - post.estimate) if after.any() else None
    return EventStudy(result.method, result.level, effects, post.estimate, post.standard_error, post.low, post.high,
                      post.p_value, level, result.pretrend_statistic, result.pretrend_p_value, result.clusters,
                      result.units, result.treated_units, len(periods), result.units * len(periods), t_df=None)


def _judge(plan: Plan, metric: Metric, study: EventStudy, placebo: Placebo | None = None) -> MetricEventStudy:
    thresholds = plan.design.diagnostics
    diagnostics = [
        bounded("pre-trends (joint test that every lead is zero)", study.pretrend_p_value, thresholds.pretrend_p_min,
                at_least=True, failure=lambda p: f"pre-trend test p = {p:.3g} < {thresholds.pretrend_p_min}: treated "
                "and comparison units did not move in parallel before adoption",
                undefined="the pre-trend test has no p-value on this panel: parallel trends before adoption "
                          "is untested"),
        Diagnostic("clusters", study.clusters, thresholds.min_clusters, study.clusters >= thresholds.min_clusters,
                   f"{study.clusters} clusters < {thresholds.min_clusters}: cluster-robust errors are unreliable"),
    ]
    if placebo is not None:
        name = f"placebo adoption {placebo.shift} periods before the first real one (pre-adoption data only)"
        if placebo.study is None:
            diagnostics.append(Diagnostic(name, 0.0, thresholds.placebo_p_min, False, placebo.reason))
        else:
            effect = placebo.study.average_effect
            diagnostics.append(bounded(
                name, placebo.study.average_p_value, thresholds.placebo_p_min, at_least=True,
                failure=lambda p: f"placebo effect {effect:.4g} with p = {p:.3g} < {thresholds.placebo_p_min}: "
                                  "an 'effect' appears where there was no change",
                undefined="the placebo adoption's effect has no p-value on the pre-adoption data: the placebo "
                          "check is not passed"))
    verdict, note = judge(plan, metric, study.average_effect, study.average_standard_error, study.average_p_value,
                          study.t_df, study.counterfactual_level, diagnostics)
    return MetricEventStudy(metric, study, diagnostics, verdict, note)
