"""Stratified two-arm comparison: the effect estimated within each stratum (a day of a staged rollout,
where the candidate's share of traffic is constant) and combined with weights fixed by the design.

Why: when exposure ramps (5% -> 25% -> 50%), later days weigh more in the treatment arm than in the
control arm, so a pooled comparison mistakes any change of the baseline over time for an effect
(Simpson's paradox). Comparing arms within each day and then averaging lets a common time trend cancel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .effects import NotEstimable
from .statistics import ArmEstimate


@dataclass(frozen=True)
class Stratum:
    """One stratum's arms: each a mean and the variance of that mean (any metric kind: a plain mean, a
    proportion, a delta-method ratio, a CUPED-adjusted mean)."""

    control: ArmEstimate
    treatment: ArmEstimate

    @property
    def precision_weight(self) -> float:
        """n_c n_t / (n_c + n_t): the inverse of the difference's variance per unit of outcome variance."""
        c, t = self.control.n, self.treatment.n
        return c * t / (c + t)


@dataclass(frozen=True)
class StratifiedEffect:
    method: str
    strata: int
    difference: float
    variance: float
    control_mean: float
    relative: float
    relative_se: float
    effective_units: float  # sum of 4 n_c n_t / (n_c + n_t): the units a 50/50 split would need

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.variance)

    @property
    def information(self) -> float:
        """Fisher information of the relative effect, 1 / se^2 (the clock of a group-sequential design)."""
        return 1 / self.relative_se**2


def stratified_effect(strata: Sequence[Stratum]) -> StratifiedEffect:
    """Treatment minus control within each stratum, combined with the precision weights
    w_s proportional to n_c n_t / (n_c + n_t) (Cochran 1954, "Some methods for strengthening the common
    chi-square tests", Biometrics 10:417-451; the Mantel-Haenszel weights for a risk difference).
    These are the inverse-variance weights when the outcome's variance is the same in both arms and all
    strata, and they depend on the counts only, so they are fixed by the allocation, not by outcomes; the
    combined difference equals the OLS coefficient on treatment in y ~ treatment + C(stratum).

    Var(sum w d) = sum w^2 (v_c + v_t) with each arm's own variance of the mean. The relative effect is the
    combined difference over the same-weighted control mean m_c = sum w c_s, with the delta method
    (Deng, Knoblich, Lu 2018, KDD, section 3.3):
    Var(D / m_c) = (sum w^2 v_t + (1 + D / m_c)^2 sum w^2 v_c) / m_c^2, which reduces to the two-sample
    relative lift's variance with one stratum.
    """
    strata = [s for s in strata if s.control.n and s.treatment.n]
    if not strata:
        raise NotEstimable("no stratum has units in both arms")
    total = sum(s.precision_weight for s in strata)
    weights = [s.precision_weight / total for s in strata]
    difference = sum(w * (s.treatment.mean - s.control.mean) for w, s in zip(weights, strata))
    control_mean = sum(w * s.control.mean for w, s in zip(weights, strata))
    control_variance = sum(w * w * s.control.variance_of_mean for w, s in zip(weights, strata))
    treatment_variance = sum(w * w * s.treatment.variance_of_mean for w, s in zip(weights, strata))
    variance = control_variance + treatment_variance
    if not variance > 0:
        raise NotEstimable("no variation within any stratum, so there is no standard error")
    if control_mean == 0:
        raise NotEstimable("the control mean is 0, so a relative effect is undefined")
    relative = difference / control_mean
    relative_variance = (treatment_variance + (1 + relative) ** 2 * control_variance) / control_mean**2
    return StratifiedEffect("stratified difference, precision (Cochran / Mantel-Haenszel) weights; relative "
                            "effect by the delta method", len(strata), difference, variance, control_mean, relative,
                            math.sqrt(relative_variance), 4 * total)
