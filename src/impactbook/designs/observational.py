"""The observational design (selection on observables): the plan's columns read from the pinned file in
DuckDB (only the flag, the covariates and the outcomes leave the database), one propensity score, then per
metric the plan's estimator beside the other two, balance and overlap diagnostics, sensitivity to
unmeasured confounding, and the verdicts in the standard result contract.

A failed diagnostic (covariates still imbalanced after adjustment, too many units trimmed or unmatched,
an E-value under the preregistered floor) makes every verdict INCONCLUSIVE with the reason: the design
rests on comparable groups, and the diagnostics say when it does not have them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..plan import Metric, Plan
from ..sqlengine import locked_connection, quote, source_sql
from ..stats.balance import CovariateBalance, balance_table
from ..stats.effects import Effect
from ..stats.matching import MatchedEstimate, match_att
from ..stats.observational import EffectEstimate, PropensityScore, aipw, ipw, propensity_score
from ..stats.sensitivity import EValue, RosenbaumSensitivity, e_value_difference, e_value_proportion, rosenbaum_bounds
from ..stats.verdicts import non_inferiority, superiority_verdict
from .aggregate import window_condition
from .quasi_experimental import Diagnostic, column_kinds, corrected, flag_sql


@dataclass(frozen=True)
class MetricObservational:
    metric: Metric
    primary: EffectEstimate | None  # the plan's estimator, tested by the hypotheses (None: it has no estimate)
    estimates: dict[str, EffectEstimate]  # every estimator that applies, by name
    e_value: EValue | None
    rosenbaum: RosenbaumSensitivity | None
    diagnostics: list[Diagnostic]
    verdict: str
    note: str | None
    adjusted_p_value: float | None = None  # the plan's multiple-testing correction over its family


@dataclass(frozen=True)
class ObservationalAnalysis:
    plan: Plan
    metrics: list[MetricObservational]
    balance: tuple[CovariateBalance, ...]
    score: np.ndarray
    treated: np.ndarray
    units: int
    dropped_rows: int
    notes: list[str] = field(default_factory=list)
    outside_window: int = 0

    def results(self) -> list[dict[str, Any]]:
        """The standard `results` rows: the plan's estimator's effect in the metric's units and relative to
        the comparison's (adjusted) mean, with the other estimates and the sensitivity figures."""
        rows = []
        for item in self.metrics:
            est, metric = item.primary, item.metric
            control = est.control_mean if est else None
            relative = (lambda value: value / control if control else None)
            numbers = {"method": est.method, "level": est.level, "estimand": est.estimand,
                       "difference": est.estimate, "difference_low": est.low, "difference_high": est.high,
                       "relative": relative(est.estimate), "relative_low": relative(est.low),
                       "relative_high": relative(est.high), "p_value": est.p_value, **_arm_sizes(est)} if est else \
                {"method": self.plan.design.estimator, "estimand": self.plan.design.estimand,
                 **dict.fromkeys(("level", "difference", "difference_low", "difference_high", "relative", "relative_low",
                                  "relative_high", "p_value", "treatment_n", "control_n"))}
            rows.append({
                "metric": metric.id, "role": metric.role, "kind": metric.kind, "direction": metric.direction,
                **numbers, "control_mean": control,
                "verdict": item.verdict if metric.role != "exploratory" else None, "note": item.note,
                "adjusted_p_value": item.adjusted_p_value,
                "units": self.units, "treated_units": int(self.treated.sum()),
                "e_value": item.e_value.estimate if item.e_value else None,
                "e_value_interval": item.e_value.interval if item.e_value else None,
                "rosenbaum_gamma": _finite(item.rosenbaum.critical_gamma) if item.rosenbaum else None,
                "max_abs_smd_after": max(abs(b.smd_after) for b in self.balance)})
        return rows

    def verdicts(self) -> dict[str, str]:
        return {item.metric.id: item.verdict for item in self.metrics if item.metric.role != "exploratory"}

    def scraps(self) -> dict[str, Any]:
        return {
            "results": self.results(), "verdicts": self.verdicts(),
            "estimates": [{"metric": item.metric.id, "estimator": name, "method": e.method, "estimand": e.estimand,
                           "estimate": e.estimate, "standard_error": e.standard_error, "low": e.low, "high": e.high,
                           "p_value": e.p_value} for item in self.metrics for name, e in item.estimates.items()],
            "balance": [{"covariate": b.covariate, "smd_before": b.smd_before, "smd_after": b.smd_after,
                         "variance_ratio_before": _finite(b.variance_ratio_before),
                         "variance_ratio_after": _finite(b.variance_ratio_after)} for b in self.balance],
            "diagnostics": [d.scrap(item.metric.id) for item in self.metrics for d in item.diagnostics],
            "sensitivity": [{"metric": item.metric.id, "e_value": item.e_value.estimate if item.e_value else None,
                             "e_value_interval": item.e_value.interval if item.e_value else None,
                             "rosenbaum_gamma": _finite(item.rosenbaum.critical_gamma) if item.rosenbaum else None,
                             "rosenbaum_pairs": item.rosenbaum.pairs if item.rosenbaum else 0,
                             "rosenbaum_bounds": [{"gamma": b.gamma, "upper_p_value": b.upper_p_value}
                                                  for b in item.rosenbaum.bounds] if item.rosenbaum else []}
                            for item in self.metrics],
            "data_quality": {"units": self.units, "treated_units": int(self.treated.sum()),
                             "rows_without_flag_or_covariates": self.dropped_rows,
                             "rows_outside_window": self.outside_window, "notes": self.notes},
        }


def _arm_sizes(estimate: EffectEstimate) -> dict[str, int]:
    """The units the estimate rests on: after trimming (weighting) or the matched treated and the distinct
    controls they use (matching)."""
    if isinstance(estimate, MatchedEstimate):
        return {"treatment_n": estimate.matched_treated, "control_n": estimate.distinct_controls}
    return {"treatment_n": estimate.treated_units, "control_n": estimate.units - estimate.treated_units}


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def units_sql(plan: Plan, source: str, kinds: dict[str, str]) -> str:
    """One row per unit with a flag and every covariate: the flag as 0/1, covariates and outcomes as doubles."""
    spec = plan.design
    flag = f"CASE WHEN {flag_sql(spec.treatment, spec.treated_value, kinds[spec.treatment])} THEN 1.0 ELSE 0.0 END AS treated"
    covariates = ", ".join(f"CAST({quote(c)} AS DOUBLE) AS {quote('x_' + c)}" for c in spec.covariates)
    outcomes = ", ".join(f"CAST({quote(m.column)} AS DOUBLE) AS {quote('m_' + m.id)}" for m in plan.metrics)
    return f"SELECT {flag}, {covariates}, {outcomes} FROM {source} WHERE {_kept(plan)}"


def _kept(plan: Plan) -> str:
    """The rows analysed: inside the window, with the flag and every covariate."""
    spec = plan.design
    return " AND ".join([f"({window_condition(plan)})",
                         *(f"{quote(c)} IS NOT NULL" for c in [spec.treatment, *spec.covariates])])


def comparison_values_sql(plan: Plan, source: str, kinds: dict[str, str]) -> str:
    """Each value of the flag column among the comparison's rows, with its count: every value but the
    treated one is untreated, so a stray 'yes' in a 0/1 column joins the comparison; said, not silent."""
    spec = plan.design
    flag = flag_sql(spec.treatment, spec.treated_value, kinds[spec.treatment])
    return (f"SELECT CAST({quote(spec.treatment)} AS VARCHAR) AS value, COUNT(*) AS rows FROM {source} "
            f"WHERE {_kept(plan)} AND NOT ({flag}) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 6")


def analyse_file(plan: Plan, path: Path, format: str = "csv") -> ObservationalAnalysis:
    """Read the plan's columns of the pinned file in DuckDB (locked to that file) and analyse them; rows dated
    outside the preregistered window are left out and counted, as in every other design."""
    connection = locked_connection([path])
    source = source_sql(path, format)
    inside = window_condition(plan)
    try:
        kinds = column_kinds(connection, source)
        frame = connection.execute(units_sql(plan, source, kinds)).df()
        total, outside = connection.execute(f"SELECT COUNT(*), COUNT(*) FILTER (WHERE NOT ({inside}) OR ({inside}) "
                                            f"IS NULL) FROM {source}").fetchone()
        comparison = dict(connection.execute(comparison_values_sql(plan, source, kinds)).fetchall())
    finally:
        connection.close()
    return analyse_units(plan, frame, int(total - outside - len(frame)), int(outside), comparison)


def analyse_units(plan: Plan, frame, dropped_rows: int = 0, outside_window: int = 0,
                  comparison_values: dict[str, int] | None = None) -> ObservationalAnalysis:
    """Every metric's estimates on the units (a DataFrame as `units_sql` returns it); `comparison_values`:
    the flag's values among the comparison's rows (the most frequent six) and their counts."""
    spec = plan.design
    treated = frame["treated"].to_numpy(dtype=float)
    covariates = frame[[f"x_{c}" for c in spec.covariates]].to_numpy(dtype=float)
    if treated.sum() < 2 or (1 - treated).sum() < 2:
        raise ValueError(f"the design needs treated and untreated units (got {int(treated.sum())} treated of "
                         f"{len(treated)})")
    # a covariate's scale does not change the score, but keeps the logit's Newton steps well conditioned
    scale = covariates.std(axis=0)
    score = propensity_score(treated, covariates / np.where(scale > 0, scale, 1))
    balance_weights, overlap = _balance_weights(plan, score)
    balance = balance_table(covariates, list(spec.covariates), treated, balance_weights)
    notes, judged = [], []
    for metric in plan.metrics:
        outcome = frame[f"m_{metric.id}"].to_numpy(dtype=float)
        present = ~np.isnan(outcome)
        if not present.all():
            notes.append(f"{metric.id}: {int((~present).sum())} units without a value are left out")
        metric_score = score if present.all() else propensity_score(treated[present], score.design[present, 1:])
        judged.append(_judge(plan, metric, outcome[present], metric_score, balance, overlap))
    judged = corrected(plan, judged, lambda item: item.primary.p_value if item.primary is not None else None)
    if len(comparison_values or {}) > 1:
        shown = ", ".join(f"{value!r} ({rows:,} rows)" for value, rows in list(comparison_values.items())[:5])
        notes.insert(0, f"the comparison group mixes values of {spec.treatment!r}: {shown}"
                        f"{' and more' if len(comparison_values) > 5 else ''}; every value but "
                        f"{spec.treated_value!r} counts as untreated")
    if outside_window:
        notes.insert(0, f"{outside_window:,} rows dated outside the window ({plan.window.start} to "
                        f"{plan.window.end}) are left out")
    return ObservationalAnalysis(plan, judged, balance, score.score, treated, len(treated), dropped_rows, notes,
                                 outside_window)


def _balance_weights(plan: Plan, score: PropensityScore) -> tuple[np.ndarray, Diagnostic]:
    """The weights the plan's estimator gives each unit (zero: trimmed or unmatched), and the overlap check."""
    spec, d, p = plan.design, score.treated, score.score
    if spec.estimator == "matching":
        what = "treated units without a match inside the caliper"
        try:
            matched = match_att(np.zeros(len(d)), d, score.logit, spec.caliper, spec.matches)
            share, weights = matched.unmatched_treated / d.sum(), matched.unit_weights(d)
        except ValueError:  # nothing matched: no adjustment to show balance after; overlap fails below
            share, weights = 1.0, np.ones(len(d))
    else:
        kept = (p >= spec.trim) & (p <= 1 - spec.trim)
        share, what = 1 - kept.mean(), f"units trimmed (score outside [{spec.trim:g}, {1 - spec.trim:g}])"
        odds = p / (1 - p)
        weights = kept * (np.where(d == 1, 1 / p, 1 / (1 - p)) if spec.estimand == "ATE" else np.where(d == 1, 1, odds))
    ceiling = spec.diagnostics.max_trimmed_share
    return weights, Diagnostic(f"overlap: share of {what}", float(share), ceiling, bool(share <= ceiling),
                               f"{share:.1%} of {what} > {ceiling:.0%}: the groups overlap too little")


def _estimates(plan: Plan, outcome: np.ndarray,
               score: PropensityScore) -> tuple[dict[str, EffectEstimate], MatchedEstimate | None]:
    """Every estimator; matching is left out (with Rosenbaum bounds) when no treated unit finds a match — as
    the plan's own estimator it then has no estimate, and the verdict is INCONCLUSIVE with that reason."""
    spec = plan.design
    estimates: dict[str, EffectEstimate] = {"ipw": ipw(outcome, score, spec.estimand, spec.trim, plan.alpha),
                                            "aipw": aipw(outcome, score, spec.trim, plan.alpha)}
    try:
        matched = match_att(outcome, score.treated, score.logit, spec.caliper, spec.matches, alpha=plan.alpha)
    except ValueError:
        return estimates, None
    estimates["matching"] = matched
    return estimates, matched


def _judge(plan: Plan, metric: Metric, outcome: np.ndarray, score: PropensityScore,
           balance: tuple[CovariateBalance, ...], overlap: Diagnostic) -> MetricObservational:
    spec, thresholds = plan.design, plan.design.diagnostics
    estimates, matched = _estimates(plan, outcome, score)
    primary = estimates.get(spec.estimator)
    if primary is None:
        return MetricObservational(metric, None, estimates, None, None, [overlap], "INCONCLUSIVE",
                                   f"the plan's estimator ({spec.estimator}) has no estimate: no treated unit could be "
                                   f"matched (caliper {spec.caliper} SD of the logit score)")
    sign = 1 if metric.direction == "increase" else -1
    rosenbaum = rosenbaum_bounds(sign * matched.pair_differences, alpha=plan.alpha) if matched else None
    sensitivity = _e_value(metric, outcome, score, primary)
    worst = max(balance, key=lambda b: abs(b.smd_after))
    diagnostics = [
        Diagnostic("balance: largest |standardized mean difference| after adjustment", abs(worst.smd_after),
                   thresholds.max_abs_smd, bool(abs(worst.smd_after) <= thresholds.max_abs_smd),
                   f"|SMD| of {worst.covariate} after adjustment is {abs(worst.smd_after):.3g} > "
                   f"{thresholds.max_abs_smd}: the groups still differ on it"),
        overlap,
    ]
    if thresholds.min_e_value is not None:
        diagnostics.append(Diagnostic(
            "sensitivity: E-value of the interval bound nearest the null", sensitivity.interval,
            thresholds.min_e_value, bool(sensitivity.interval >= thresholds.min_e_value),
            f"E-value {sensitivity.interval:.3g} < {thresholds.min_e_value}: a weak unmeasured confounder could "
            "explain the effect away"))
    failed = [d.reason for d in diagnostics if not d.passed]
    if failed:
        verdict, note = "INCONCLUSIVE", "diagnostic failed: " + "; ".join(failed)
    elif metric.role == "guardrail":
        result = non_inferiority(_as_effect(primary), metric.direction, metric.margin, plan.alpha, metric.margin_type)
        verdict, note = result.verdict, result.note
    else:
        verdict, note = superiority_verdict(_as_effect(primary), metric.direction, plan.alpha), None
    return MetricObservational(metric, primary, estimates, sensitivity, rosenbaum, diagnostics, verdict, note)


def _e_value(metric: Metric, outcome: np.ndarray, score: PropensityScore, estimate: EffectEstimate) -> EValue:
    """A proportion's E-value from its risk ratio (treated risk over the adjusted comparison risk); a mean's
    from the standardized difference (the comparison group's SD)."""
    control = estimate.control_mean
    if metric.kind == "proportion" and control is not None and 0 < control <= 1:
        return e_value_proportion(estimate.estimate, estimate.low, estimate.high, control, estimate.level)
    spread = float(np.std(outcome[score.treated == 0], ddof=1))
    return e_value_difference(estimate.estimate, estimate.low, estimate.high, spread if spread > 0 else 1.0,
                              estimate.level)


def _as_effect(estimate: EffectEstimate) -> Effect:
    """The estimate in the shape the verdict rules read (normal reference; the relative effect divides by the
    comparison's adjusted mean, taken as known, its own error ignored)."""
    from scipy import stats as sps

    control = estimate.control_mean
    relative = estimate.estimate / control if control else None
    relative_se = estimate.standard_error / abs(control) if control else None
    z = estimate.estimate / estimate.standard_error if estimate.standard_error > 0 else 0.0
    return Effect(estimate.method, estimate.level, 0, 0, control or 0.0, (control or 0.0) + estimate.estimate,
                  estimate.estimate, estimate.standard_error, estimate.low, estimate.high, relative, relative_se,
                  None, None, z, estimate.p_value, float(sps.norm.sf(z)), float(sps.norm.cdf(z)))
