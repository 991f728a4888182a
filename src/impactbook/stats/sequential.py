"""Continuous monitoring without inflated false positives: anytime-valid inference for a difference
estimated again at every look, and group-sequential boundaries for a fixed number of looks.

Both work from what each look already has — the estimate and its variance — so they sit on the
same sufficient statistics as the fixed-horizon tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np

from .distributions import NORMAL


@dataclass(frozen=True)
class AnytimeValid:
    method: str
    estimate: float
    variance: float
    mixing_variance: float
    alpha: float
    low: float
    high: float
    likelihood_ratio: float
    p_value: float

    @property
    def rejects(self) -> bool:
        return self.p_value <= self.alpha


def msprt(estimate: float, variance: float, mixing_variance: float, alpha: float = 0.05,
          previous_p_value: float = 1.0) -> AnytimeValid:
    """Mixture sequential probability ratio test with a normal mixing distribution N(0, tau^2) for an
    asymptotically normal estimate with variance v (Johari, Koomen, Pekelis, Walsh 2017/2022, "Always
    Valid Inference: Continuous Monitoring of A/B Tests", Operations Research, eq. 11-12):

        Lambda = sqrt(v / (v + tau^2)) * exp(tau^2 * estimate^2 / (2 v (v + tau^2)))

    The always-valid p-value is min over looks of 1 / Lambda (pass the previous look's as
    `previous_p_value`); inverting the test gives the confidence sequence
    estimate +- sqrt(v (v + tau^2) / tau^2 * (2 log(1/alpha) + log((v + tau^2) / v))),
    which covers the true difference at every look simultaneously with probability 1 - alpha
    (Howard, Ramdas, McAuliffe, Sekhon 2021, Ann. Statist. 49:1055-1080, normal mixture boundary).
    """
    v, tau2 = variance, mixing_variance
    log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * estimate**2 / (2 * v * (v + tau2))
    radius = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
    p_value = min(previous_p_value, 1.0, math.exp(-log_lr))
    return AnytimeValid("mSPRT, normal mixture (Johari et al. 2017); confidence sequence by inversion",
                        estimate, v, tau2, alpha, estimate - radius, estimate + radius,
                        math.exp(min(log_lr, 700.0)), p_value)


def spending(fraction: float, alpha: float, kind: Literal["obrien_fleming", "pocock"]) -> float:
    """Cumulative two-sided alpha spent by information fraction t, for symmetric boundaries that spend
    alpha/2 on each side with the Lan-DeMets functions (Lan & DeMets 1983, Biometrika 70:659-663), as
    gsDesign and ldbounds do: O'Brien-Fleming type, per side 2 - 2 Phi(z_{1-alpha/4} / sqrt(t));
    Pocock type, alpha log(1 + (e - 1) t) in all."""
    t = min(max(fraction, 0.0), 1.0)
    if t == 0:
        return 0.0
    if kind == "obrien_fleming":
        return float(2 * (2 - 2 * NORMAL.cdf(NORMAL.ppf(1 - alpha / 4) / math.sqrt(t))))
    return float(alpha * math.log(1 + (math.e - 1) * t))


def _correlation(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=float)
    return np.sqrt(np.minimum.outer(f, f) / np.maximum.outer(f, f))


def _continue_probability(bounds: Sequence[float], fractions: Sequence[float]) -> float:
    """P(|Z_1| < c_1, ..., |Z_k| < c_k) for the canonical joint distribution of sequential z statistics."""
    k = len(bounds)
    if k == 1:
        return float(1 - 2 * NORMAL.sf(bounds[0]))
    from scipy import stats as sps  # (Genz's integral: only with two looks or more)

    upper = np.asarray(bounds, dtype=float)
    mvn = sps.multivariate_normal(mean=np.zeros(k), cov=_correlation(fractions), allow_singular=True,
                                  seed=np.random.default_rng(0), maxpts=200_000 * k, abseps=1e-7, releps=1e-7)
    return float(mvn.cdf(upper, lower_limit=-upper))


def crossing_probability(bounds: Sequence[float], fractions: Sequence[float]) -> float:
    """The exact type I error of two-sided boundaries used at these information fractions: the
    probability under no effect that some |Z_k| reaches its c_k (Jennison & Turnbull 2000, section 3.4:
    Z_k ~ N(0, 1) with corr(Z_j, Z_k) = sqrt(t_j / t_k); multivariate normal integral by Genz's method)."""
    return 1 - _continue_probability(bounds, fractions)


@lru_cache(maxsize=4096)
def _next_bound(bounds: tuple[float, ...], fractions: tuple[float, ...], alpha: float, kind: str, final: bool) -> float:
    spent = alpha if final else spending(fractions[-1], alpha, kind)
    target = 1 - spent  # P(no rejection through this look)

    def gap(c: float) -> float:
        return _continue_probability([*bounds, c], fractions) - target

    from scipy import optimize

    return float(optimize.brentq(gap, 0.5, 12.0, xtol=1e-7))


def next_bound(bounds: Sequence[float], fractions: Sequence[float], alpha: float = 0.05,
               kind: Literal["obrien_fleming", "pocock"] = "obrien_fleming", final: bool = False) -> float:
    """The boundary of the newest look, given the boundaries already used at the earlier looks and the
    information fractions observed at all of them: the Lan-DeMets error-spending recursion, which needs
    neither the number nor the timing of looks in advance (Lan & DeMets 1983). `fractions` has one more
    entry than `bounds`. `final`: the planned last analysis, which spends all the alpha that is left even
    when the information falls short of the plan (the correlations still use the observed fractions;
    Jennison & Turnbull 2000, section 7.2.2)."""
    if len(fractions) != len(bounds) + 1:
        raise ValueError(f"{len(fractions)} fractions for {len(bounds)} earlier bounds; need exactly one more")
    return _next_bound(tuple(float(b) for b in bounds), tuple(float(f) for f in fractions), float(alpha), kind,
                       bool(final or fractions[-1] >= 1))


def group_sequential_bounds(fractions: Sequence[float], alpha: float = 0.05,
                            kind: Literal["obrien_fleming", "pocock"] = "obrien_fleming") -> list[float]:
    """Two-sided z boundaries at the given information fractions so that the cumulative type I error
    spent by look k equals the spending function at t_k (Lan & DeMets 1983; computed with the
    multivariate normal distribution of the sequential statistics, Jennison & Turnbull 2000,
    Group Sequential Methods, ch. 7)."""
    bounds: list[float] = []
    for k in range(1, len(fractions) + 1):
        bounds.append(next_bound(bounds, fractions[:k], alpha, kind))
    return bounds
