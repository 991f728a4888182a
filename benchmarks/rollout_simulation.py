"""Operating characteristics of the staged-rollout monitor (issue 15), by simulation of the demo's
schedule (5% for 4 days, 25% for 5, 50% for 5; 20,000 users a day): false advances and false
rollbacks when the candidate does nothing — also with a baseline moving in both arms — false rollbacks
with the true effect exactly at the stop-loss threshold, and detection of drops starting mid-rollout,
for each monitoring method the plan can declare, beside the pooled comparison used before issue 15
(the reference, on the same simulated data). Rates carry Clopper-Pearson 95% intervals.

    python benchmarks/rollout_simulation.py [--null-rollouts 2000] [--drop-rollouts 1000]
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

from impactbook import stats
from impactbook.demo import ROLLOUT_SCHEDULE
from impactbook.designs.randomized import arm_estimates
from impactbook.designs.rollout import monitor
from impactbook.designs.rollout_simulation import REVENUE_MEAN, REVENUE_SD, Outcome, Scenario, outcome_of, \
    simulate_aggregates
from impactbook.plan import Plan, Sequential, load_plan

PLAN = Path(__file__).resolve().parents[1] / "plans/rollout.yaml"
UNITS_PER_DAY = 20_000
DROP_DAY = 6
LATE_DROP_DAY = 9  # the first day of the last stage


def methods(plan: Plan) -> dict[str, Plan]:
    rollout = plan.rollout
    grouped = Sequential(method="group_sequential", looks=5, planned_units=UNITS_PER_DAY * 14)
    return {"mSPRT + recent window (the demo plan)": plan,
            "mSPRT, all data only": plan.model_copy(update={"rollout": rollout.model_copy(update={"recent": None})}),
            "group-sequential OBF, 5 looks in information time + recent window": plan.model_copy(
                update={"rollout": rollout.model_copy(update={"sequential": grouped})}),
            "group-sequential OBF, 5 looks in information time, all data only": plan.model_copy(
                update={"rollout": rollout.model_copy(update={"sequential": grouped, "recent": None})})}


def pooled_outcome(plan: Plan, aggregates) -> Outcome:
    """Before issue 15: all days pooled into one comparison, one mSPRT per metric at the full alpha."""
    acceptance, guard = plan.rollout.acceptance[0], plan.rollout.stop_loss[0]
    metrics = {m.id: m for m in plan.metrics}
    running: dict = {}
    gain = breach = None
    p_values = {acceptance: 1.0, guard.metric: 1.0}
    for index, cell in enumerate(aggregates.daily.values()):
        for arm, values in cell.items():
            running[arm] = {k: running[arm][k] + v for k, v in values.items()} if arm in running else dict(values)
        for name in (acceptance, guard.metric):
            arms = arm_estimates(metrics[name], running["control"][name], running["treatment"][name])
            effect = stats.stratified_effect([stats.Stratum(*arms)])
            sequence = stats.msprt(effect.relative, effect.relative_se**2, plan.rollout.mixing_sd**2, plan.alpha,
                                   p_values[name])
            p_values[name] = sequence.p_value
            sign = 1 if metrics[name].direction == "increase" else -1
            low, high = sorted((sign * sequence.low, sign * sequence.high))
            if name == acceptance and gain is None and low > 0:
                gain = index
            if name == guard.metric and breach is None and high < guard.threshold:
                breach = index
    return Outcome(gain, breach, "pooled" if breach is not None else None)


def rate(hits: int, total: int) -> str:
    interval = sps.binomtest(hits, total).proportion_ci(0.95, method="exact")
    return f"{hits / total:.2%} [{interval.low:.2%}, {interval.high:.2%}]"


def oracle_power(drop: float, threshold: float, first: int) -> float:
    """Power of a fixed-horizon one-sided 2.5% test of 'effect >= threshold' on exactly the days the drop
    lasts (an oracle that knows when it starts): no valid monitor can beat it by much."""
    effective = sum(UNITS_PER_DAY * e * (1 - e) for _, e, days in _days_from(first) for _ in range(days))
    se = REVENUE_SD / REVENUE_MEAN / math.sqrt(effective)
    return float(sps.norm.cdf((drop - abs(threshold)) / se - sps.norm.ppf(0.975)))


def _days_from(first: int):
    day = 0
    for name, exposure, days in ROLLOUT_SCHEDULE:
        kept = max(0, min(days, day + days - first))
        day += days
        if kept:
            yield name, exposure, kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--null-rollouts", type=int, default=2000)
    parser.add_argument("--drop-rollouts", type=int, default=1000)
    args = parser.parse_args()
    plan = load_plan(PLAN)
    threshold = plan.rollout.stop_loss[0].threshold
    cases = [(Scenario("A/A: no effect"), args.null_rollouts),
             (Scenario("A/A, conversion +0.1 pp a day in both arms", conversion_trend=0.001), args.null_rollouts),
             (Scenario("A/A, revenue -15% in both arms from day 8", dip=0.15, dip_day=8), args.null_rollouts),
             (Scenario("revenue exactly at the -5% threshold from day 0", revenue_effect=threshold), args.null_rollouts)]
    cases += [(Scenario(f"revenue -{d:.0%} from day {DROP_DAY}", revenue_effect=-d, effect_day=DROP_DAY),
               args.drop_rollouts) for d in (0.06, 0.10, 0.15)]
    cases += [(Scenario(f"revenue -{d:.0%} from day {LATE_DROP_DAY}", revenue_effect=-d, effect_day=LATE_DROP_DAY),
               args.drop_rollouts) for d in (0.10, 0.15)]
    print(f"# rollout_simulation, {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, "
          f"Python {platform.python_version()}\n")
    print("| scenario | method | rollouts | false advance | rollback | detected by the last day | median delay (days) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    started = time.perf_counter()
    for scenario, rollouts in cases:
        variants = methods(plan)
        outcomes: dict[str, list[Outcome]] = {name: [] for name in [*variants, "pooled (before issue 15)"]}
        rng = np.random.default_rng(2026)
        for _ in range(rollouts):
            aggregates, stages = simulate_aggregates(plan, scenario, ROLLOUT_SCHEDULE, UNITS_PER_DAY, rng)
            for name, variant in variants.items():
                outcomes[name].append(outcome_of(variant, monitor(variant, aggregates, stages)))
            outcomes["pooled (before issue 15)"].append(pooled_outcome(plan, aggregates))
        drop = scenario.revenue_effect < threshold and scenario.effect_day > 0
        for name, found in outcomes.items():
            gains = sum(o.confident_gain_day is not None for o in found)
            breaches = [o.breach_day for o in found if o.breach_day is not None]
            delays = [b - scenario.effect_day for b in breaches if b >= scenario.effect_day]
            print(f"| {scenario.name} | {name} | {rollouts} | {rate(gains, rollouts)} | "
                  f"{rate(len(breaches), rollouts)} | {rate(len(delays), rollouts) if drop else ''} | "
                  f"{f'{statistics.median(delays):g}' if drop and delays else ''} |")
    for first in (DROP_DAY, LATE_DROP_DAY):
        print(f"\nOracle power (fixed horizon, one-sided 2.5%, knows the drop starts on day {first}): "
              + ", ".join(f"-{d:.0%}: {oracle_power(d, threshold, first):.1%}" for d in (0.06, 0.10, 0.15)))
    print(f"Simulated in {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
