"""Sensitivity to unmeasured confounding: the E-value and Rosenbaum bounds.

E-value (VanderWeele & Ding 2017, Ann Intern Med 167:268): the minimum strength of association, on the
risk-ratio scale, that an unmeasured confounder would need with both treatment and outcome to explain
away the estimate: RR + sqrt(RR (RR - 1)) for RR >= 1 (1/RR first if below 1). For a difference in means
the standardized difference d = effect / SD is mapped to RR ~ exp(0.91 d) (VanderWeele & Ding, Table 2;
the EValue R package's `evalues.MD`). For a binary outcome the risk ratio is estimated directly, as the
treated risk over the counterfactual risk (VanderWeele & Ding 2017: with both risks estimated the E-value
applies to their ratio, with no rare-outcome approximation), its bounds from the risk difference's bounds
with the counterfactual risk taken as known. The interval's E-value uses the bound nearest the null, and
is 1 when the interval covers the null.

Rosenbaum bounds (Rosenbaum 2002, Observational Studies, 2nd ed., §4.3): for matched pairs, the upper
bound on the one-sided p-value of Wilcoxon's signed-rank statistic when treatment odds within a pair may
differ by a factor Gamma, by the normal approximation with mean p+ sum(ranks) and variance
p+(1-p+) sum(ranks^2), p+ = Gamma / (1 + Gamma); and the Gamma at which that bound reaches alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

MD_TO_LOG_RR = 0.91


@dataclass(frozen=True)
class EValue:
    method: str
    level: float
    risk_ratio: float
    estimate: float  # E-value of the point estimate
    interval: float  # E-value of the interval bound nearest the null (1 if the interval covers it)


def e_value(risk_ratio: float) -> float:
    """VanderWeele & Ding (2017), eq. in §"The E-value": RR + sqrt(RR (RR - 1)), after inverting RR < 1."""
    rr = risk_ratio if risk_ratio >= 1 else 1 / risk_ratio
    return rr + math.sqrt(rr * (rr - 1))


def e_value_risk_ratio(estimate: float, low: float, high: float, level: float = 0.95) -> EValue:
    """E-values of a risk ratio and of its interval bound nearest 1."""
    nearest = 1.0 if low <= 1 <= high else (low if estimate > 1 else high)
    return EValue("E-value (VanderWeele & Ding 2017), risk ratio", level, estimate, e_value(estimate), e_value(nearest))


def e_value_difference(estimate: float, low: float, high: float, outcome_sd: float, level: float = 0.95) -> EValue:
    """E-values of a difference in means via RR ~ exp(0.91 d), d = difference / `outcome_sd`."""
    if not outcome_sd > 0:
        raise ValueError(f"the outcome's standard deviation must be positive (got {outcome_sd})")
    rr = (lambda value: math.exp(MD_TO_LOG_RR * value / outcome_sd))
    result = e_value_risk_ratio(rr(estimate), rr(low), rr(high), level)
    return EValue("E-value (VanderWeele & Ding 2017), difference in means via RR = exp(0.91 d)", level,
                  result.risk_ratio, result.estimate, result.interval)


def e_value_proportion(difference: float, low: float, high: float, control_risk: float,
                       level: float = 0.95) -> EValue:
    """E-values of a risk difference on a binary outcome through the risk ratio (control_risk + d) /
    control_risk; a ratio at or below 0 (a bound beyond every risk) is floored at a tiny positive ratio."""
    if not 0 < control_risk <= 1:
        raise ValueError(f"the counterfactual risk must be in (0, 1] (got {control_risk})")
    rr = (lambda value: max((control_risk + value) / control_risk, 1e-12))
    result = e_value_risk_ratio(rr(difference), rr(low), rr(high), level)
    return EValue("E-value (VanderWeele & Ding 2017), risk ratio of the binary outcome", level,
                  result.risk_ratio, result.estimate, result.interval)


@dataclass(frozen=True)
class RosenbaumBound:
    gamma: float
    upper_p_value: float


@dataclass(frozen=True)
class RosenbaumSensitivity:
    method: str
    alpha: float
    pairs: int
    statistic: float  # Wilcoxon's signed-rank statistic (sum of ranks of positive differences)
    bounds: tuple[RosenbaumBound, ...]
    critical_gamma: float  # the Gamma at which the upper bound reaches alpha (1 if already above at Gamma = 1)


def _signed_ranks(differences: np.ndarray) -> tuple[float, float, float]:
    """Ranks of |d| among all pairs (average ranks for ties); a zero difference keeps its rank slot but
    contributes to no sum, as in Rosenbaum (2002, §4.3.3)."""
    d = np.asarray(differences, dtype=float)
    ranks = sps.rankdata(np.abs(d))[d != 0]
    d = d[d != 0]
    return float(ranks[d > 0].sum()), float(ranks.sum()), float((ranks ** 2).sum())


def rosenbaum_upper_p_value(differences: np.ndarray, gamma: float) -> float:
    """One-sided (treated larger) upper-bound p-value of the signed-rank test under bias Gamma >= 1."""
    statistic, total, squares = _signed_ranks(differences)
    if squares == 0:
        return 1.0  # every pair tied: no evidence of an effect at any Gamma
    high = gamma / (1 + gamma)
    return float(sps.norm.sf((statistic - high * total) / math.sqrt(high * (1 - high) * squares)))


def rosenbaum_bounds(differences: np.ndarray, gammas=(1, 1.5, 2, 3, 4, 5), alpha: float = 0.05) -> RosenbaumSensitivity:
    """Upper-bound p-values over `gammas` and the critical Gamma, for treated-minus-control pair differences
    (negate them to test for a decrease)."""
    statistic, _, _ = _signed_ranks(differences)
    bounds = tuple(RosenbaumBound(float(g), rosenbaum_upper_p_value(differences, g)) for g in gammas)
    excess = (lambda log_gamma: rosenbaum_upper_p_value(differences, math.exp(log_gamma)) - alpha)
    if excess(0.0) >= 0:
        critical = 1.0
    else:
        top = 1.0
        while excess(top) < 0 and top < 20:
            top *= 2
        critical = math.exp(optimize.brentq(excess, 0.0, top, xtol=1e-10)) if excess(top) >= 0 else math.inf
    return RosenbaumSensitivity("Rosenbaum bounds, Wilcoxon signed-rank test (Rosenbaum 2002, §4.3)", alpha,
                                int(np.count_nonzero(np.asarray(differences) != 0)), statistic, bounds, critical)
