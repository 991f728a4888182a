"""Monitoring a staged rollout (inside the rollout_monitor template): for each day, every acceptance and
stop-loss metric's relative effect on all data so far — compared within each day and combined, so that
a baseline moving over time cannot pass for an effect while exposure ramps — with its anytime-valid
interval (mSPRT confidence sequence) or its group-sequential interval at looks placed in information
time; for stop-loss metrics also the effect in the recent window (since the stage began); each stage's
arm sizes against its exposure; then one decision — advance, continue, or roll back — with its reason.

Anytime-valid intervals can be looked at every day without inflating false alarms, which is what
makes a daily automatic stop-loss honest.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import stats
from .aggregate import Aggregates, aggregate, window_condition
from .randomized import arm_estimates
from ..plan import Metric, Plan
from ..sqlengine import literal, locked_connection, quote, source_sql

ADVANCE, CONTINUE, ROLLBACK = "advance", "continue", "rollback"


@dataclass(frozen=True)
class StageProgress:
    name: str
    exposure: float
    first_day: str
    last_day: str
    days: int
    units: int
    arm_units: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Monitor:
    stage: StageProgress
    next_stage: str | None
    decision: str
    reason: str
    breaches: list[dict[str, Any]]
    series: list[dict[str, Any]] = field(default_factory=list)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    feedback: dict[str, Any] | None = None
    score: dict[str, Any] | None = None
    recent_series: list[dict[str, Any]] = field(default_factory=list)
    recent: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_srm: list[dict[str, Any]] = field(default_factory=list)
    alphas: dict[str, Any] = field(default_factory=dict)
    drift: list[dict[str, Any]] = field(default_factory=list)

    def verdicts(self, plan: Plan) -> dict[str, str]:
        """Acceptance metrics: CONFIRMED when confidently good; stop-loss guardrails: REFUTED on a breach
        (on all data or in the recent window), CONFIRMED when confidently above their threshold; otherwise
        INCONCLUSIVE — and never CONFIRMED while a stage's arm sizes do not match its exposure."""
        verdicts = {}
        breached = {b["metric"] for b in self.breaches}
        mismatch = any(s["mismatch"] for s in self.stage_srm)
        for metric in plan.hypotheses:
            row = self.latest.get(metric.id)
            if metric.id in breached:
                verdicts[metric.id] = "REFUTED"
            elif row is None or mismatch:
                verdicts[metric.id] = "INCONCLUSIVE"
            elif row.get("breach"):
                verdicts[metric.id] = "REFUTED"
            elif row["good_low"] > row.get("threshold", 0.0):
                verdicts[metric.id] = "CONFIRMED"
            else:
                verdicts[metric.id] = "INCONCLUSIVE"
        return verdicts

    def scraps(self, plan: Plan) -> dict[str, Any]:
        return {"rollout": {"stage": self.stage.__dict__, "next_stage": self.next_stage, "decision": self.decision,
                            "reason": self.reason, "breaches": self.breaches, "latest": self.latest,
                            "feedback": self.feedback, "score": self.score, "recent": self.recent,
                            "stage_srm": self.stage_srm, "alphas": self.alphas, "drift": self.drift},
                "series": self.series, "recent_series": self.recent_series, "verdicts": self.verdicts(plan)}


def stage_progress(plan: Plan, path: Path, format: str, connection=None) -> list[StageProgress]:
    """Each stage in the data (in the outcome window), in order of its first day: its days, units and
    units per arm."""
    rollout, time_column = plan.rollout, quote(plan.window.time_column)
    connection = connection or locked_connection([path])
    source, stage = source_sql(path, format), quote(rollout.stage_column)
    rows = connection.execute(
        f"SELECT CAST({stage} AS VARCHAR), CAST(MIN({time_column}) AS VARCHAR), "
        f"CAST(MAX({time_column}) AS VARCHAR), COUNT(DISTINCT {time_column}), COUNT(*) "
        f"FROM {source} WHERE {window_condition(plan)} GROUP BY 1 ORDER BY 2, 3").fetchall()
    arms = connection.execute(
        f"SELECT CAST({stage} AS VARCHAR), CAST({quote(plan.design.variant_column)} AS VARCHAR), COUNT(*) "
        f"FROM {source} WHERE {window_condition(plan)} GROUP BY 1, 2").fetchall()
    exposures = {s.name: s.exposure for s in rollout.stages}
    return [StageProgress(name, exposures.get(name, float("nan")), first[:10], last[:10], int(days), int(units),
                          {arm: int(n) for s, arm, n in arms if s == name and arm is not None})
            for name, first, last, days, units in rows]


def feedback_summary(plan: Plan, path: Path, format: str, connection=None, top: int = 3) -> dict[str, Any]:
    """Per arm: responses, mean rating, and the most frequent reason codes with their shares; plus the
    relative difference in mean rating (treatment vs control)."""
    spec, design = plan.rollout.feedback, plan.design
    connection = connection or locked_connection([path])
    source, arm = source_sql(path, format), quote(design.variant_column)
    ratings = connection.execute(
        f"SELECT CAST({arm} AS VARCHAR), COUNT(*), AVG(CAST({quote(spec.rating_column)} AS DOUBLE)) "
        f"FROM {source} GROUP BY 1").fetchall()
    reasons = connection.execute(
        f"SELECT CAST({arm} AS VARCHAR), CAST({quote(spec.reason_column)} AS VARCHAR), COUNT(*) "
        f"FROM {source} GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2").fetchall()
    arms = {name: {"responses": int(n), "mean_rating": float(mean), "top_reasons": []} for name, n, mean in ratings}
    for name, reason, count in reasons:
        if len(arms[name]["top_reasons"]) < top:
            arms[name]["top_reasons"].append({"reason": reason, "share": count / arms[name]["responses"]})
    control, treatment = arms.get(design.control), arms.get(design.treatment)
    relative = treatment["mean_rating"] / control["mean_rating"] - 1 if control and treatment else None
    return {"arms": arms, "relative_rating": relative}


def composite_score(plan: Plan, latest: dict[str, dict[str, Any]], feedback: dict[str, Any] | None) -> dict[str, Any]:
    """Weighted mean of relative effects in their good direction (ratings: higher is better)."""
    spec = plan.rollout.score
    directions = {m.id: (1 if m.direction == "increase" else -1) for m in plan.metrics}
    parts = {}
    for name, weight in spec.weights.items():
        if name == "feedback":
            value = feedback.get("relative_rating") if feedback else None
        else:
            value = directions[name] * latest[name]["relative"] if name in latest else None
        parts[name] = {"weight": weight, "good_direction_effect": value}
    known = {k: v for k, v in parts.items() if v["good_direction_effect"] is not None}
    total = sum(v["weight"] for v in known.values())
    score = sum(v["weight"] * v["good_direction_effect"] for v in known.values()) / total if total else None
    return {"score": score, "min_score": spec.min_score, "parts": parts,
            "passes": score is not None and score >= spec.min_score and len(known) == len(parts)}


def daily_strata(metric: Metric, aggregates: Aggregates, control: str, treatment: str
                 ) -> list[tuple[str, stats.Stratum | None]]:
    """(day, the day's two arms as a stratum), or None for a day that cannot be compared (an arm missing
    or with fewer than 2 units, an undefined mean): such a day adds nothing rather than stopping the monitor."""
    days = []
    for day, cell in aggregates.daily.items():
        stratum = None
        if control in cell and treatment in cell:
            arms = arm_estimates(metric, cell[control][metric.id], cell[treatment][metric.id])
            if all(arm.n >= 2 and math.isfinite(arm.mean) and math.isfinite(arm.variance) for arm in arms):
                stratum = stats.Stratum(*arms)
        days.append((day, stratum))
    return days


@dataclass(frozen=True)
class RecentWindows:
    """Where each recent window starts, and how many windows the rollout can have (they split the alpha)."""

    starts: list[str]
    count: int

    def start_of(self, day: str) -> str:
        return max(s for s in self.starts if s <= day)


def recent_windows(plan: Plan, stages: list[StageProgress], days: list[str]) -> RecentWindows | None:
    recent = plan.rollout.recent
    if recent is None or not days:
        return None
    if recent.window == "stage":
        starts = sorted({days[0], *(s.first_day for s in stages)})
        return RecentWindows([s for s in starts if s <= days[-1]], len(plan.rollout.stages))
    first = plan.window.start
    length = (plan.window.end - first).days + 1
    count = math.ceil(length / recent.window)
    starts = [(first + dt.timedelta(days=k * recent.window)).isoformat() for k in range(count)]
    return RecentWindows([s for s in starts if s <= days[-1]] or [days[0]], count)


def planned_effective_units(plan: Plan) -> float:
    """Effective units (4 n_c n_t / n per stage) of the planned units split across the stages in
    proportion to their min_units (equally when none is set), each at its exposure."""
    rollout = plan.rollout
    shares = [s.min_units for s in rollout.stages]
    shares = shares if sum(shares) else [1] * len(shares)
    return sum(rollout.sequential.planned_units * share / sum(shares) * 4 * s.exposure * (1 - s.exposure)
               for share, s in zip(shares, rollout.stages))


def information_fraction(plan: Plan, effect: stats.StratifiedEffect) -> float:
    sequential = plan.rollout.sequential
    if sequential.planned_information is not None:
        return effect.information / sequential.planned_information
    return effect.effective_units / planned_effective_units(plan)


def current_stage(plan: Plan, stages: list[StageProgress]) -> StageProgress:
    """The latest stage the plan declares (by first day); an undeclared label (a typo, blank rows) that first
    appears on the last day became the current stage, and its rows' hold was never reached."""
    declared = [s for s in stages if s.name in {spec.name for spec in plan.rollout.stages}]
    return (declared or stages)[-1]


def stage_sample_ratios(plan: Plan, stages: list[StageProgress]) -> list[dict[str, Any]]:
    """Each declared stage's arm sizes against its exposure (Pearson chi-square, the plan's SRM threshold)."""
    design, declared = plan.design, {s.name: s for s in plan.rollout.stages}
    checks = []
    for stage in stages:
        if stage.name not in declared:
            continue
        exposure = declared[stage.name].exposure
        if exposure >= 1:
            continue
        srm = stats.srm_test(stage.arm_units, {design.control: 1 - exposure, design.treatment: exposure},
                             plan.srm_threshold)
        checks.append({"stage": stage.name, "exposure": exposure, "units": srm.observed, "expected": srm.expected,
                       "p_value": srm.p_value, "mismatch": srm.mismatch})
    return checks


def stage_drift(plan: Plan, path: Path, format: str, reference: tuple[Path, str], stage: str,
                connection=None) -> list[dict[str, Any]]:
    """Each declared drift check: the candidate's units in `stage` (in the outcome window) against the
    pinned reference dataset, ranked by statistic over threshold."""
    drift, design = plan.rollout.drift, plan.design
    connection = connection or locked_connection([path, reference[0]])
    columns = ", ".join(sorted({quote(c.column) for c in drift.checks}))
    current = connection.execute(
        f"SELECT {columns} FROM {source_sql(path, format)} WHERE {window_condition(plan)} AND "
        f"CAST({quote(plan.rollout.stage_column)} AS VARCHAR) = {literal(stage)} AND "
        f"CAST({quote(design.variant_column)} AS VARCHAR) = {literal(design.treatment)}").df()
    baseline = connection.execute(f"SELECT {columns} FROM {source_sql(*reference)}").df()
    from .pipeline_validation.drift_tables import drift_rows  # (scipy.stats: only for a plan with drift checks)

    rows = drift_rows(baseline, current, drift.checks, connection)
    return [{"stage": stage, "column": r.column, "statistic": r.statistic, "method": r.method, "value": r.value,
             "p_value": r.p_value, "threshold": r.threshold, "breached": r.breached} for r in rows]


def _interval_row(day: str, metric: Metric, effect: stats.StratifiedEffect, low: float, high: float) -> dict[str, Any]:
    sign = 1 if metric.direction == "increase" else -1
    good_low, good_high = sorted((sign * low, sign * high))
    return {"date": day, "metric": metric.id, "role": metric.role, "relative": effect.relative, "low": low,
            "high": high, "good_low": good_low, "good_high": good_high, "strata": effect.strata,
            "effective_units": effect.effective_units}


def monitor(plan: Plan, aggregates: Aggregates, stages: list[StageProgress],
            feedback: dict[str, Any] | None = None, drift: list[dict[str, Any]] | None = None) -> Monitor:
    rollout = plan.rollout
    if rollout is None:
        raise ValueError(f"plan {plan.id!r} has no rollout section")
    control, treatment = plan.design.control, plan.design.treatment
    thresholds = {s.metric: s.threshold for s in rollout.stop_loss}
    watched = [m for m in plan.metrics if m.id in rollout.acceptance or m.id in thresholds]
    tau2 = rollout.mixing_sd ** 2
    sequential = rollout.sequential
    grouped = sequential.method == "group_sequential"
    strata = {m.id: daily_strata(m, aggregates, control, treatment) for m in watched}
    days = list(aggregates.daily)
    windows = recent_windows(plan, stages, days) if thresholds else None
    share = rollout.recent.alpha_share if windows else 0.0
    alpha_of = {m.id: plan.alpha * (1 - share) if m.id in thresholds else plan.alpha for m in watched}
    window_alpha = plan.alpha * share / windows.count if windows else None
    alphas = {"cumulative": alpha_of, "recent_window": window_alpha,
              "recent_windows": windows.count if windows else 0}
    previous_p = {m.id: 1.0 for m in watched}
    looks: dict[str, tuple[list[float], list[float]]] = {m.id: ([], []) for m in watched}  # fractions, bounds
    recent_p: dict[tuple[str, str], float] = {}
    reached_look: dict[str, int] = {}
    last_day = plan.window.end.isoformat() if plan.window.end else None
    series, recent_series, breaches, latest, recent = [], [], [], {}, {}
    for index, day in enumerate(days):
        for metric in watched:
            so_far = [s for _, s in strata[metric.id][:index + 1] if s is not None]
            try:
                effect = stats.stratified_effect(so_far)
            except stats.NotEstimable:
                continue
            alpha = alpha_of[metric.id]
            if not grouped:
                sequence = stats.msprt(effect.relative, effect.relative_se ** 2, tau2, alpha, previous_p[metric.id])
                previous_p[metric.id] = sequence.p_value
                row = _interval_row(day, metric, effect, sequence.low, sequence.high)
                row.update(always_valid_p=sequence.p_value, look=None, alpha=alpha)
            else:
                fractions, bounds = looks[metric.id]
                fraction = information_fraction(plan, effect)
                reached = min(math.floor(fraction * sequential.looks + 1e-9), sequential.looks)
                if day == last_day:
                    reached = sequential.looks  # the window's last day is the final analysis
                if reached <= reached_look.get(metric.id, 0):
                    continue  # a look only when the information reaches the next k/looks; none after the last
                reached_look[metric.id] = reached
                fractions.append(min(fraction, 1.0))
                bounds.append(stats.next_bound(bounds, fractions, alpha, sequential.spending,
                                               final=reached == sequential.looks))
                radius = bounds[-1] * effect.relative_se
                row = _interval_row(day, metric, effect, effect.relative - radius, effect.relative + radius)
                row.update(always_valid_p=None, look=len(fractions), information_fraction=fractions[-1],
                           boundary_z=bounds[-1], alpha=alpha)
            if metric.id in thresholds:
                row["threshold"] = thresholds[metric.id]
                row["breach"] = row["good_high"] < thresholds[metric.id]
                if row["breach"] and not any(b["metric"] == metric.id for b in breaches):
                    breaches.append({"metric": metric.id, "date": day, "threshold": thresholds[metric.id],
                                     "interval": [row["low"], row["high"]], "scope": "all data so far", "alpha": alpha})
            series.append(row)
            latest[metric.id] = row
        if windows is None:
            continue
        start = windows.start_of(day)
        for metric in watched:
            if metric.id not in thresholds:
                continue
            window = [s for d, s in strata[metric.id][:index + 1] if s is not None and d >= start]
            try:
                effect = stats.stratified_effect(window)
            except stats.NotEstimable:
                continue
            key = (metric.id, start)
            sequence = stats.msprt(effect.relative, effect.relative_se ** 2, tau2, window_alpha, recent_p.get(key, 1.0))
            recent_p[key] = sequence.p_value
            row = _interval_row(day, metric, effect, sequence.low, sequence.high)
            row.update(window_start=start, always_valid_p=sequence.p_value, alpha=window_alpha,
                       threshold=thresholds[metric.id], breach=None)
            row["breach"] = row["good_high"] < thresholds[metric.id]
            if row["breach"] and not any(b["metric"] == metric.id for b in breaches):
                breaches.append({"metric": metric.id, "date": day, "threshold": thresholds[metric.id],
                                 "interval": [row["low"], row["high"]], "scope": f"the recent window from {start}",
                                 "alpha": window_alpha})
            recent_series.append(row)
            recent[metric.id] = row
    score = composite_score(plan, latest, feedback) if rollout.score else None
    stage_srm = stage_sample_ratios(plan, stages)
    current = current_stage(plan, stages)
    names = [s.name for s in rollout.stages]
    spec = rollout.stages[names.index(current.name)] if current.name in names else None
    next_stage = names[names.index(current.name) + 1] if current.name in names[:-1] else None
    if breaches:
        first = breaches[0]
        kind = ("anytime-valid confidence sequence" if first["scope"] != "all data so far" or not grouped else
                f"group-sequential ({sequential.spending.replace('_', '-')}) confidence interval")
        decision = ROLLBACK
        reason = (f"stop-loss: {first['metric']} is worse than its {first['threshold']:+.1%} threshold with "
                  f"{100 * (1 - first['alpha']):.4g}% {kind} on {first['scope']}, first on {first['date']}: "
                  f"roll back and pause exposure")
    elif spec is None:
        decision, reason = CONTINUE, f"the data's current stage {current.name!r} is not one the plan declares"
    else:
        waiting = []
        if current.days < spec.min_days:
            waiting.append(f"stage {spec.name} has run {current.days} of at least {spec.min_days} days")
        if current.units < spec.min_units:
            waiting.append(f"stage {spec.name} has {current.units:,} of at least {spec.min_units:,} units")
        undeclared = [s for s in stages if s.name not in names]
        if undeclared:  # their exposure is unknown, so no sample-ratio check covers their rows
            shown = ", ".join(f"{'no label' if s.name is None else repr(s.name)} ({s.units:,} rows, {s.first_day} to "
                              f"{s.last_day})" for s in undeclared)
            waiting.append(f"rows under stage labels the plan does not declare: {shown}; their exposure is unknown")
        for check in stage_srm:
            if check["mismatch"]:
                waiting.append(f"sample ratio mismatch in stage {check['stage']}: arms {check['units']} do not match "
                               f"its exposure {check['exposure']:.0%} (p = {check['p_value']:.2g}); investigate the "
                               f"assignment before trusting any effect")
        for check in drift or []:
            if check["breached"]:
                waiting.append(f"drift in stage {check['stage']}: {check['column']} {check['statistic']} "
                               f"{check['value']:.3g} > {check['threshold']:g} against the reference")
        unproven = [m for m in rollout.acceptance if not (m in latest and latest[m]["good_low"] > 0)]
        if unproven:
            waiting.append(f"not yet confidently better: {', '.join(unproven)}")
        if score is not None and not score["passes"]:
            shown = "missing" if score["score"] is None else f"{score['score']:+.2%}"
            waiting.append(f"composite acceptance score {shown} is below {score['min_score']:+.2%}")
        if waiting:
            decision, reason = CONTINUE, "hold at this stage: " + "; ".join(waiting)
        elif next_stage is None:
            decision, reason = ADVANCE, f"final stage {spec.name} passed every exit criterion: complete the rollout"
        else:
            decision, reason = ADVANCE, f"every exit criterion of stage {spec.name} is met: advance to {next_stage}"
    return Monitor(current, next_stage, decision, reason, breaches, series, latest, feedback, score, recent_series,
                   recent, stage_srm, alphas, drift or [])


def monitor_file(plan: Plan, path: Path, format: str = "csv",
                 feedback: tuple[Path, str] | None = None, reference: tuple[Path, str] | None = None) -> Monitor:
    """`feedback`: the (file, format) of the feedback dataset when the plan declares one; `reference`: that
    of the drift reference dataset when the plan declares drift checks."""
    extra = [f[0] for f in (feedback, reference) if f]
    connection = locked_connection([path, *extra])
    summary = feedback_summary(plan, *feedback, connection) if feedback and plan.rollout.feedback else None
    stages = stage_progress(plan, path, format, connection)
    drift = (stage_drift(plan, path, format, reference, current_stage(plan, stages).name, connection)
             if reference and plan.rollout.drift and stages else None)
    return monitor(plan, aggregate(plan, path, format), stages, summary, drift)  # its own connection: exact sums
