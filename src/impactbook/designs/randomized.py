"""The A/B analysis a template runs: plan + sufficient statistics -> typed results.

SRM (overall and per segment), each metric's effect (CUPED when the plan names a covariate,
delta method for ratios, capped sums when it declares winsorization), verdicts with the plan's
multiple-testing correction and non-inferiority margins, achieved power, segment effects with a
heterogeneity test, and the cumulative daily effect of the primary metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import stats
from .aggregate import Aggregates, Statistic, aggregate
from ..plan import Metric, Plan


@dataclass(frozen=True)
class MetricResult:
    metric: str
    role: str
    kind: str
    direction: str
    test: str
    effect: stats.Effect | None
    adjusted_p_value: float | None = None
    verdict: str | None = None
    non_inferiority: stats.NonInferiority | None = None
    power: stats.Power | None = None
    cap: float | None = None
    note: str | None = None
    arm: str | None = None

    def row(self) -> dict[str, Any]:
        ni = self.non_inferiority
        effect = self.effect.as_dict() if self.effect else {name: None for name in EFFECT_FIELDS}
        notes = [n for n in (self.note, effect.get("note"), ni.note if ni else None) if n]
        return {"metric": self.metric, **({"arm": self.arm} if self.arm else {}), "role": self.role,
                "kind": self.kind, "direction": self.direction,
                "test": self.test, **effect, "note": "; ".join(dict.fromkeys(notes)) or None,
                "adjusted_p_value": self.adjusted_p_value,
                "verdict": self.verdict, "margin": ni.margin if ni else None,
                "margin_type": ni.margin_type if ni else None, "ni_low": ni.low if ni else None,
                "ni_high": ni.high if ni else None, "ni_p_value": ni.p_value if ni else None, "cap": self.cap}


EFFECT_FIELDS = [f.name for f in __import__("dataclasses").fields(stats.Effect)]


@dataclass(frozen=True)
class SegmentResult:
    column: str
    value: str
    metric: str
    units: dict[str, int]
    suppressed: bool
    effect: stats.Effect | None = None
    adjusted_p_value: float | None = None
    arm: str | None = None

    def row(self) -> dict[str, Any]:
        base = {"column": self.column, "value": self.value, "metric": self.metric, "suppressed": self.suppressed,
                "units": self.units, **({"arm": self.arm} if self.arm else {})}
        if self.suppressed or self.effect is None:
            return base
        e = self.effect
        return {**base, "difference": e.difference, "difference_low": e.difference_low,
                "difference_high": e.difference_high, "relative": e.relative, "relative_low": e.relative_low,
                "relative_high": e.relative_high, "p_value": e.p_value, "adjusted_p_value": self.adjusted_p_value}


@dataclass(frozen=True)
class Analysis:
    srm: stats.SampleRatioMismatch
    segment_srm: dict[str, stats.SampleRatioMismatch]
    results: list[MetricResult]
    segments: list[SegmentResult] = field(default_factory=list)
    heterogeneity: list[dict[str, Any]] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)
    sql: str = ""
    data_quality: dict[str, Any] = field(default_factory=dict)

    @property
    def verdicts(self) -> dict[str, str]:
        """Each hypothesis's statistical verdict, keyed "metric" (or "metric:arm" with several arms)."""
        return {f"{r.metric}:{r.arm}" if r.arm else r.metric: r.verdict for r in self.results if r.verdict is not None}

    def scraps(self) -> dict[str, Any]:
        """Everything worth keeping, as JSON-ready values (the template glues these)."""
        return {
            "srm": {**self.srm.as_dict(), "segments": {k: v.as_dict() for k, v in self.segment_srm.items()}},
            "results": [r.row() for r in self.results],
            "verdicts": self.verdicts,
            "power": [{"metric": r.metric, **({"arm": r.arm} if r.arm else {}), **r.power.as_dict()}
                      for r in self.results if r.power],
            "cuped": [{"metric": r.metric, **({"arm": r.arm} if r.arm else {}), "theta": r.effect.theta,
                       "variance_reduction": r.effect.variance_reduction}
                      for r in self.results if r.effect is not None and r.effect.theta is not None],
            "segments": [s.row() for s in self.segments],
            "heterogeneity": self.heterogeneity,
            "daily": self.daily,
            "data_quality": self.data_quality,
        }


def effect_of(metric: Metric, control: Statistic, treatment: Statistic, alpha: float) -> stats.Effect:
    """The test a metric's kind and covariate call for."""
    if isinstance(control, stats.RatioStatistic):
        return stats.ratio_difference(control, treatment, alpha)
    if isinstance(control, stats.RegressionStatistic):
        return stats.cuped_difference(control, treatment, alpha)
    if metric.kind == "proportion":
        return stats.proportion_difference(control, treatment, alpha)
    return stats.welch_difference(control, treatment, alpha)


def arm_estimates(metric: Metric, control: Statistic, treatment: Statistic) -> tuple[stats.ArmEstimate,
                                                                                  stats.ArmEstimate]:
    """Each arm's mean and per-unit variance exactly as effect_of's test would use them, without the test."""
    if isinstance(control, stats.RatioStatistic):
        return control.estimate(), treatment.estimate()
    if isinstance(control, stats.RegressionStatistic):
        (adjusted_control, _), (adjusted_treatment, _), _ = stats.cuped_arms(control, treatment)
        return adjusted_control, adjusted_treatment
    if metric.kind == "proportion":
        return control.proportion_estimate(), treatment.proportion_estimate()
    return control.estimate(), treatment.estimate()


def estimate(metric: Metric, control: Statistic, treatment: Statistic, alpha: float) -> tuple[stats.Effect | None,
                                                                                           str | None]:
    """The effect, or None and the reason the data cannot give it."""
    try:
        return effect_of(metric, control, treatment, alpha), None
    except stats.NotEstimable as reason:
        return None, str(reason)


def analyse(plan: Plan, aggregates: Aggregates) -> Analysis:
    """One metric that cannot be estimated is that metric's problem: it ends INCONCLUSIVE with its reason
    (an exploratory one is shown as not estimable) and every other metric is analysed as planned. With
    several treatment arms, every metric is compared for each arm against the control."""
    design = plan.design
    control, arms = design.control, design.treatment_arms
    shown_arm = (lambda arm: arm) if design.multi_arm else (lambda arm: None)
    srm = stats.srm_test(aggregates.units, design.expected_split, plan.srm_threshold)
    segment_srm = {f"{c}={v}": stats.srm_test(units, design.expected_split, plan.srm_threshold)
                   for (c, v), units in aggregates.segment_units.items()}
    estimates = {(m.id, arm): estimate(m, aggregates.overall[control][m.id], aggregates.overall[arm][m.id], plan.alpha)
                 for m in plan.metrics for arm in arms}
    adjusted = _adjusted(plan, estimates)
    results = []
    for metric in plan.metrics:
        for arm in arms:
            effect, reason = estimates[(metric.id, arm)]
            ni, verdict, power = None, None, None
            if metric.role == "guardrail":
                test = f"non-inferiority ({metric.margin_type} margin)"
                if effect is not None:
                    ni = stats.non_inferiority(effect, metric.direction, metric.margin, plan.alpha, metric.margin_type)
                else:  # not estimable (no variation, no units): the preregistered margin is still the plan's
                    ni = stats.NonInferiority("INCONCLUSIVE", metric.margin, metric.margin_type, None, None, None)
                verdict = ni.verdict if ni else "INCONCLUSIVE"
            elif metric.role == "exploratory":
                test = "exploratory (no verdict)"
            else:
                test = "superiority" + (f", {plan.correction.method}-adjusted" if metric.id in plan.family else "")
                verdict = stats.superiority_verdict(effect, metric.direction, plan.alpha,
                                                    adjusted.get((metric.id, arm))) if effect is not None else "INCONCLUSIVE"
            units_per_arm = (aggregates.units.get(control, 0) + aggregates.units.get(arm, 0)) / 2
            if metric.minimum_detectable_effect and effect is not None and effect.control_mean:
                power = stats.achieved_power(effect.control_mean, effect.standard_error, units_per_arm,
                                             metric.minimum_detectable_effect, plan.alpha, plan.target_power)
            if reason and metric.role == "exploratory":
                reason = f"not estimable: {reason}"
            results.append(MetricResult(metric.id, metric.role, metric.kind, metric.direction, test, effect,
                                        adjusted.get((metric.id, arm)), verdict, ni, power,
                                        aggregates.caps.get(metric.id), reason, shown_arm(arm)))
    segments, heterogeneity = _segments(plan, aggregates)
    return Analysis(srm, segment_srm, results, segments, heterogeneity, _daily(plan, aggregates), aggregates.sql,
                    aggregates.data_quality(plan))


def _adjusted(plan: Plan, estimates: dict[tuple[str, str], tuple[stats.Effect | None, str | None]]
              ) -> dict[tuple[str, str], float]:
    """Multiplicity-adjusted p-values of the family's estimable comparisons: Holm or BH across metrics x
    arms, or Dunnett across the arms of each metric."""
    keys = [(m, arm) for m in plan.family for arm in plan.design.treatment_arms if estimates[(m, arm)][0] is not None]
    if plan.correction.method != "dunnett":
        return dict(zip(keys, stats.adjust_p_values([estimates[k][0].p_value for k in keys], plan.correction.method)))
    adjusted = {}
    for metric in plan.family:
        mine = [k for k in keys if k[0] == metric]
        effects = [estimates[k][0] for k in mine]
        if not effects:
            continue
        shared = sum(e.control_variance_of_mean for e in effects) / len(effects)
        adjusted.update(zip(mine, stats.dunnett_adjust([e.statistic for e in effects],
                                                       [e.standard_error for e in effects], shared)))
    return adjusted


def _segments(plan: Plan, aggregates: Aggregates) -> tuple[list[SegmentResult], list[dict[str, Any]]]:
    """Per segment, metric and arm: the effect, corrected across the segments of a column; segments with
    fewer than `segments.min_size` units in an arm are suppressed (privacy) and left out of the tests."""
    design = plan.design
    control = design.control
    results: list[SegmentResult] = []
    heterogeneity: list[dict[str, Any]] = []
    for column in plan.segments.columns:
        keys = [k for k in aggregates.segments if k[0] == column]
        for metric in plan.metrics:
            for arm in design.treatment_arms:
                shown_arm = arm if design.multi_arm else None
                shown: list[SegmentResult] = []
                for key in keys:
                    units = aggregates.segment_units[key]
                    if min(units.get(control, 0), units.get(arm, 0)) < plan.segments.min_size:
                        results.append(SegmentResult(column, key[1], metric.id, units, True, arm=shown_arm))
                        continue
                    cell = aggregates.segments[key]
                    effect, _ = estimate(metric, cell[control][metric.id], cell[arm][metric.id], plan.alpha)
                    if effect is None:  # e.g. no variation within this segment: shown without a test
                        results.append(SegmentResult(column, key[1], metric.id, units, False, arm=shown_arm))
                        continue
                    shown.append(SegmentResult(column, key[1], metric.id, units, False, effect, arm=shown_arm))
                adjusted = stats.adjust_p_values([s.effect.p_value for s in shown], plan.segments.correction)
                results += [SegmentResult(s.column, s.value, s.metric, s.units, False, s.effect, p, shown_arm)
                            for s, p in zip(shown, adjusted)]
                if len(shown) >= 2:
                    q = stats.cochran_q([s.effect.difference for s in shown], [s.effect.standard_error for s in shown])
                    heterogeneity.append({"column": column, "metric": metric.id, "segments": len(shown),
                                          **({"arm": shown_arm} if shown_arm else {}), **q.as_dict()})
    return results, heterogeneity


def _daily(plan: Plan, aggregates: Aggregates) -> list[dict[str, Any]]:
    """The primary metric's effect on all data up to and including each day (sums add up), per arm."""
    design = plan.design
    primary = next(m for m in plan.metrics if m.role == "primary")
    rows = []
    for arm in design.treatment_arms:
        for day, running in aggregates.cumulative((design.control, arm)):
            c, t = running[design.control][primary.id], running[arm][primary.id]
            effect, _ = estimate(primary, c, t, plan.alpha)
            if effect is not None:
                rows.append({"date": day, "metric": primary.id, **({"arm": arm} if design.multi_arm else {}),
                             "relative": effect.relative, "relative_low": effect.relative_low,
                             "relative_high": effect.relative_high, "difference": effect.difference,
                             "p_value": effect.p_value})
    return rows


def analyse_file(plan: Plan, path: Path, format: str = "csv") -> Analysis:
    return analyse(plan, aggregate(plan, path, format))
