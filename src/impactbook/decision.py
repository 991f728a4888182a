"""Verdicts and the decision: the statistics propose, the framework's gates can only demote.

Order of precedence per hypothesis: INADMISSIBLE (a gate failed, or the run did not complete)
> DEVIATED (the analysis departs from the frozen plan) > the statistical verdict.
"""

from __future__ import annotations

from typing import Any

from .plan import Plan
from .record import Action, DecisionRecord, HypothesisVerdict, Status, Verdict


def final_verdicts(plan: Plan, status: Status, statistical: dict[str, Any], inadmissible: list[str],
                   deviations: list[str], errors: list[str], labels: list[str] | None = None,
                   notes: list[str] | None = None) -> list[HypothesisVerdict]:
    """The one place a hypothesis's final verdict is decided; every artifact shows this value, and the
    statistical result beside it wherever the two differ."""
    interim = "INTERIM" in (labels or [])
    verdicts = []
    for metric, arm, key in plan.hypothesis_keys:
        proposed = _as_verdict(statistical.get(key))
        if status is Status.INADMISSIBLE:
            verdict, reason = Verdict.INADMISSIBLE, "; ".join(inadmissible)
        elif status is Status.FAILED:
            verdict, reason = Verdict.INADMISSIBLE, "the run failed: " + "; ".join(errors)
        elif proposed is None:
            verdict, reason = Verdict.INADMISSIBLE, f"the template glued no verdict for {key!r}"
        elif deviations:
            verdict, reason = Verdict.DEVIATED, "; ".join(deviations)
        elif interim:
            verdict = Verdict.INTERIM
            reason = next((n for n in notes or [] if n.startswith("interim")), "an interim look at a fixed-horizon test")
        else:
            verdict, reason = proposed, "from the preregistered test"
        verdicts.append(HypothesisVerdict(metric=metric.id, arm=arm if plan.multi_arm else None,
                                          role=metric.role, verdict=verdict, statistical_verdict=proposed,
                                          reason=reason))
    return verdicts


def _as_verdict(value: Any) -> Verdict | None:
    try:
        verdict = Verdict(value)
    except ValueError:
        return None
    return verdict if verdict in (Verdict.CONFIRMED, Verdict.REFUTED, Verdict.INCONCLUSIVE) else None


ROLLOUT_ACTIONS = {"advance": Action.SHIP, "continue": Action.HOLD, "rollback": Action.ROLLBACK}


def decide(plan: Plan, status: Status, verdicts: list[HypothesisVerdict],
           monitor: dict[str, Any] | None = None, labels: list[str] | None = None) -> DecisionRecord:
    """The plan's decision rule: roll back on any listed refutation, ship when all listed are confirmed, else hold.
    A rollout plan follows its monitor instead: advance -> ship (0), continue -> hold (10), roll back (20);
    a stop-loss breach rolls back even when the run deviated from its plan — harm is harm."""
    if plan.rollout is not None and status is Status.COMPLETED and isinstance(monitor, dict):
        action = ROLLOUT_ACTIONS.get(monitor.get("decision"))
        deviated = any(v.verdict is Verdict.DEVIATED for v in verdicts)
        if action is Action.ROLLBACK or (action is not None and not deviated):
            return DecisionRecord(action=action, reason=f"rollout monitor: {monitor.get('reason')}")
        if action is not None:
            return DecisionRecord(action=Action.HOLD, reason="rollout monitor says "
                                  f"{monitor.get('decision')}, but the run deviated from its plan")
    if status is not Status.COMPLETED:
        return DecisionRecord(action=Action.HOLD, reason=f"the run is {status.value}: no evidence to act on")
    if plan.multi_arm:
        return _decide_among_arms(plan, verdicts, labels)
    by_metric = {v.metric: v.verdict for v in verdicts}
    refuted = [m for m in plan.rollback_on if by_metric.get(m) is Verdict.REFUTED]
    if refuted:
        return DecisionRecord(action=Action.ROLLBACK, reason=f"refuted: {', '.join(refuted)}")
    unconfirmed = [f"{m} is {by_metric[m].value}" for m in plan.ship_requires if by_metric.get(m) is not Verdict.CONFIRMED]
    return _ship_or_hold(plan, unconfirmed, labels)


def _ship_or_hold(plan: Plan, unconfirmed: list[str], labels: list[str] | None, arm: str | None = None,
                  effect: str = "") -> DecisionRecord:
    if not unconfirmed and "RETROSPECTIVE" in (labels or []):
        return DecisionRecord(action=Action.HOLD, reason=f"confirmed: {', '.join(plan.ship_requires)}{effect}; a "
                              "retrospective analysis ships only on a recorded human decision (impactbook decide RUN "
                              "--action advance --by NAME --reason TEXT)", arm=arm)
    if not unconfirmed:
        return DecisionRecord(action=Action.SHIP, reason=f"confirmed: {', '.join(plan.ship_requires)}{effect}", arm=arm)
    return DecisionRecord(action=Action.HOLD, reason="not yet shippable: " + "; ".join(unconfirmed))


def _decide_among_arms(plan: Plan, verdicts: list[HypothesisVerdict], labels: list[str] | None) -> DecisionRecord:
    """Several treatment arms: ship the arm whose required hypotheses are all CONFIRMED (the first listed
    when several are; the report shows them all); roll back only when every arm refutes a rollback
    hypothesis; otherwise hold. The decision names its arm."""
    by_key = {v.key: v.verdict for v in verdicts}
    arms = plan.treatment_arms
    refuted = {arm: [m for m in plan.rollback_on if by_key.get(plan.hypothesis_key(m, arm)) is Verdict.REFUTED]
               for arm in arms}
    shippable = [arm for arm in arms if not refuted[arm] and all(
        by_key.get(plan.hypothesis_key(m, arm)) is Verdict.CONFIRMED for m in plan.ship_requires)]
    if shippable:
        others = f" (also shippable: {', '.join(shippable[1:])})" if len(shippable) > 1 else ""
        return _ship_or_hold(plan, [], labels, arm=shippable[0], effect=f" for arm {shippable[0]}{others}")
    if all(refuted.values()):
        return DecisionRecord(action=Action.ROLLBACK, reason="every arm refuted: " + "; ".join(
            f"{arm}: {', '.join(found)}" for arm, found in refuted.items()))
    return DecisionRecord(action=Action.HOLD, reason="no arm is shippable: " + "; ".join(
        f"{arm}: " + (f"refuted {', '.join(refuted[arm])}" if refuted[arm] else ", ".join(
            f"{m} is {by_key[plan.hypothesis_key(m, arm)].value}" for m in plan.ship_requires
            if by_key.get(plan.hypothesis_key(m, arm)) is not Verdict.CONFIRMED)) for arm in arms))
