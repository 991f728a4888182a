"""Monitoring a staged rollout (inside the rollout_monitor template): for each day, all data up to
that day, every acceptance and stop-loss metric's relative effect with its anytime-valid interval
(mSPRT confidence sequence), then one decision — advance, continue, or roll back — with its reason.

Anytime-valid intervals can be looked at every day without inflating false alarms, which is what
makes a daily automatic stop-loss honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import stats
from .aggregate import Aggregates, aggregate
from .randomized import effect_of
from ..plan import Plan
from ..sqlengine import locked_connection, quote, source_sql

ADVANCE, CONTINUE, ROLLBACK = "advance", "continue", "rollback"


@dataclass(frozen=True)
class StageProgress:
    name: str
    exposure: float
    first_day: str
    last_day: str
    days: int
    units: int


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

    def verdicts(self, plan: Plan) -> dict[str, str]:
        """Acceptance metrics: CONFIRMED when confidently good; stop-loss guardrails: REFUTED on a breach,
        CONFIRMED when confidently above their threshold; otherwise INCONCLUSIVE."""
        verdicts = {}
        for metric in plan.hypotheses:
            row = self.latest.get(metric.id)
            if row is None:
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
                            "feedback": self.feedback, "score": self.score},
                "series": self.series, "verdicts": self.verdicts(plan)}


def stage_progress(plan: Plan, path: Path, format: str, connection=None) -> list[StageProgress]:
    rollout, time_column = plan.rollout, quote(plan.window.time_column)
    connection = connection or locked_connection([path])
    rows = connection.execute(
        f"SELECT CAST({quote(rollout.stage_column)} AS VARCHAR), CAST(MIN({time_column}) AS VARCHAR), "
        f"CAST(MAX({time_column}) AS VARCHAR), COUNT(DISTINCT {time_column}), COUNT(*) "
        f"FROM {source_sql(path, format)} GROUP BY 1 ORDER BY 3").fetchall()
    exposures = {s.name: s.exposure for s in rollout.stages}
    return [StageProgress(name, exposures.get(name, float("nan")), first[:10], last[:10], int(days), int(units))
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


def monitor(plan: Plan, aggregates: Aggregates, stages: list[StageProgress],
            feedback: dict[str, Any] | None = None) -> Monitor:
    rollout = plan.rollout
    if rollout is None:
        raise ValueError(f"plan {plan.id!r} has no rollout section")
    control, treatment = plan.design.control, plan.design.treatment
    thresholds = {s.metric: s.threshold for s in rollout.stop_loss}
    watched = [m for m in plan.metrics if m.id in rollout.acceptance or m.id in thresholds]
    tau2 = rollout.mixing_sd ** 2
    looks, last_look = None, {}
    if rollout.sequential.method == "group_sequential":
        fractions = [(k + 1) / rollout.sequential.looks for k in range(rollout.sequential.looks)]
        looks = (fractions, stats.group_sequential_bounds(fractions, plan.alpha, rollout.sequential.spending))
    previous_p = {m.id: 1.0 for m in watched}
    series, breaches, latest = [], [], {}
    for day, running in aggregates.cumulative((control, treatment)):
        for metric in watched:
            c, t = running[control][metric.id], running[treatment][metric.id]
            if min(c.n, t.n) < 2:
                continue
            effect = effect_of(metric, c, t, plan.alpha)
            if looks is None:
                sequence = stats.msprt(effect.relative, effect.relative_se ** 2, tau2, plan.alpha, previous_p[metric.id])
                previous_p[metric.id] = sequence.p_value
                low, high, p_value, look = sequence.low, sequence.high, sequence.p_value, None
            else:
                look = sum(f <= (c.n + t.n) / rollout.sequential.planned_units + 1e-12 for f in looks[0])
                if look == last_look.get(metric.id, 0):
                    continue  # only the planned looks are tested; days between them add no test
                last_look[metric.id] = look
                bound = looks[1][look - 1]
                low, high = effect.relative - bound * effect.relative_se, effect.relative + bound * effect.relative_se
                p_value = None
            sign = 1 if metric.direction == "increase" else -1
            good_low, good_high = sorted((sign * low, sign * high))
            row = {"date": day, "metric": metric.id, "role": metric.role, "relative": effect.relative,
                   "low": low, "high": high, "good_low": good_low, "good_high": good_high,
                   "always_valid_p": p_value, "look": look, "units": c.n + t.n}
            if metric.id in thresholds:
                row["threshold"] = thresholds[metric.id]
                row["breach"] = good_high < thresholds[metric.id]
                if row["breach"] and not any(b["metric"] == metric.id for b in breaches):
                    breaches.append({"metric": metric.id, "date": day, "threshold": thresholds[metric.id],
                                     "interval": [low, high]})
            series.append(row)
            latest[metric.id] = row
    score = composite_score(plan, latest, feedback) if rollout.score else None
    current = stages[-1]
    names = [s.name for s in rollout.stages]
    spec = rollout.stages[names.index(current.name)] if current.name in names else None
    next_stage = names[names.index(current.name) + 1] if current.name in names[:-1] else None
    interval_kind = ("anytime-valid confidence" if looks is None else
                     f"group-sequential ({rollout.sequential.spending.replace('_', '-')}) confidence")
    if breaches:
        first = breaches[0]
        decision = ROLLBACK
        reason = (f"stop-loss: {first['metric']} is worse than its {first['threshold']:+.1%} threshold with "
                  f"{100 * (1 - plan.alpha):.0f}% {interval_kind} since {first['date']}: roll back and pause exposure")
    elif spec is None:
        decision, reason = CONTINUE, f"the data's current stage {current.name!r} is not one the plan declares"
    else:
        waiting = []
        if current.days < spec.min_days:
            waiting.append(f"stage {spec.name} has run {current.days} of at least {spec.min_days} days")
        if current.units < spec.min_units:
            waiting.append(f"stage {spec.name} has {current.units:,} of at least {spec.min_units:,} units")
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
    return Monitor(current, next_stage, decision, reason, breaches, series, latest, feedback, score)


def monitor_file(plan: Plan, path: Path, format: str = "csv",
                 feedback: tuple[Path, str] | None = None) -> Monitor:
    """`feedback`: the (file, format) of the feedback dataset when the plan declares one."""
    connection = locked_connection([path, *([feedback[0]] if feedback else [])])
    summary = feedback_summary(plan, *feedback, connection) if feedback and plan.rollout.feedback else None
    return monitor(plan, aggregate(plan, path, format, connection), stage_progress(plan, path, format, connection),
                   summary)


