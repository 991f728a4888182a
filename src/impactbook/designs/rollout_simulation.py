"""Simulated staged rollouts: what the monitor decides on rollouts whose truth is known — no effect at
all, a baseline that moves in both arms, a drop that starts mid-rollout — so its false-alarm rates and
detection delays can be measured before a plan is trusted with real traffic.

Each day's arms are drawn as sufficient statistics, not rows: a conversion count from the binomial
distribution, and for revenue per user the sum and sum of squares of normal outcomes with the demo's
mean and variance (exact for normal data; at thousands of units a day the means are normal anyway).
The candidate's share of each day's units is exactly its stage's exposure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from ..plan import Plan
from ..stats import SampleMean
from .aggregate import Aggregates
from .rollout import Monitor, StageProgress, monitor

CONVERSION, REVENUE_MEAN, REVENUE_SD = 0.10, 8.15, 14.5  # the demo's per-user conversion and revenue


@dataclass(frozen=True)
class Scenario:
    """The truth of one simulated rollout. Days count from the rollout's first day."""

    name: str
    conversion_lift: float = 0.0          # the candidate's absolute lift in conversion
    conversion_trend: float = 0.0         # absolute change in conversion per day, both arms
    dip: float = 0.0                      # relative fall of revenue in both arms ...
    dip_day: int = 0                      # ... from this day on
    revenue_effect: float = 0.0           # the candidate's relative revenue effect ...
    effect_day: int = 0                   # ... from this day on


@dataclass(frozen=True)
class Outcome:
    """One simulated rollout: the first day the acceptance metric was confidently better (a would-be
    advance) and the first day of a stop-loss breach, counted from day 0, or None."""

    confident_gain_day: int | None
    breach_day: int | None
    breach_scope: str | None


def simulate_day(rng: np.random.Generator, scenario: Scenario, day: int, units: int, exposure: float,
                 metrics: tuple[str, str]) -> dict[str, dict[str, SampleMean]]:
    conversion_id, revenue_id = metrics
    treated = round(units * exposure)
    cell = {}
    for arm, n in (("control", units - treated), ("treatment", treated)):
        is_treated = arm == "treatment"
        p = CONVERSION + scenario.conversion_trend * day + scenario.conversion_lift * is_treated
        conversions = float(rng.binomial(n, min(max(p, 0.0), 1.0)))
        scale = 1 - (scenario.dip if day >= scenario.dip_day else 0.0)
        if is_treated and day >= scenario.effect_day:
            scale *= 1 + scenario.revenue_effect
        mean, sd = REVENUE_MEAN * scale, REVENUE_SD * scale
        total = rng.normal(n * mean, sd * np.sqrt(n))
        squares = total * total / n + sd * sd * rng.chisquare(n - 1)
        cell[arm] = {conversion_id: SampleMean(n, conversions, conversions), revenue_id: SampleMean(n, total, squares)}
    return cell


def simulate_aggregates(plan: Plan, scenario: Scenario, schedule: tuple[tuple[str, float, int], ...],
                        units_per_day: int, rng: np.random.Generator) -> tuple[Aggregates, list[StageProgress]]:
    """One simulated rollout's daily sufficient statistics and its stages, as the monitor reads them."""
    conversion_id, revenue_id = plan.rollout.acceptance[0], plan.rollout.stop_loss[0].metric
    start = plan.window.start
    daily, stages, day = {}, [], 0
    for name, exposure, days in schedule:
        first = day
        for _ in range(days):
            daily[(start + dt.timedelta(days=day)).isoformat()] = simulate_day(
                rng, scenario, day, units_per_day, exposure, (conversion_id, revenue_id))
            day += 1
        treated = round(units_per_day * exposure) * days
        stages.append(StageProgress(name, exposure, (start + dt.timedelta(days=first)).isoformat(),
                                    (start + dt.timedelta(days=day - 1)).isoformat(), days, units_per_day * days,
                                    {"control": units_per_day * days - treated, "treatment": treated}))
    return Aggregates(units={}, overall={}, daily=daily), stages


def simulate_rollout(plan: Plan, scenario: Scenario, schedule: tuple[tuple[str, float, int], ...],
                     units_per_day: int, rng: np.random.Generator) -> Monitor:
    """The monitor over a whole simulated rollout; its day-by-day series uses only data up to each day."""
    return monitor(plan, *simulate_aggregates(plan, scenario, schedule, units_per_day, rng))


def outcome_of(plan: Plan, result: Monitor) -> Outcome:
    start = plan.window.start
    acceptance = plan.rollout.acceptance[0]

    def day_of(row: dict) -> int:
        return (dt.date.fromisoformat(row["date"]) - start).days

    gains = [day_of(r) for r in result.series if r["metric"] == acceptance and r["good_low"] > 0]
    breach = result.breaches[0] if result.breaches else None
    return Outcome(min(gains) if gains else None, day_of(breach) if breach else None,
                   breach["scope"] if breach else None)
