"""Covariate balance between treated and untreated units, before and after weighting or matching.

Method: the standardized mean difference with the unweighted pooled standard deviation as denominator,
sqrt((s1^2 + s0^2) / 2), kept the same after adjustment so only the means move (Austin 2009, Stat Med
28:3083; Austin & Stuart 2015, Stat Med 34:3661, who suggest |SMD| < 0.1), and the variance ratio
s1^2 / s0^2 (Rubin 2001; near 1, within 0.5..2). Weighted variances use the reliability-weights
correction sum(w) / (sum(w)^2 - sum(w^2)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CovariateBalance:
    covariate: str
    smd_before: float
    smd_after: float
    variance_ratio_before: float
    variance_ratio_after: float


def weighted_mean_variance(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    total = weights.sum()
    mean = float(weights @ values / total)
    variance = float(weights @ (values - mean) ** 2 * total / (total ** 2 - weights @ weights))
    return mean, variance


def balance_table(covariates: np.ndarray, names: list[str], treated: np.ndarray,
                  weights: np.ndarray) -> tuple[CovariateBalance, ...]:
    """One row per covariate column: SMD and variance ratio unweighted (before) and with `weights` (after;
    zero drops a unit, e.g. trimmed or unmatched)."""
    x = np.asarray(covariates, dtype=float)
    d = np.asarray(treated).astype(bool)
    w = np.asarray(weights, dtype=float)
    rows = []
    for j, name in enumerate(names):
        column = x[:, j]
        ones = np.ones(len(column))
        (m1, v1), (m0, v0) = weighted_mean_variance(column[d], ones[d]), weighted_mean_variance(column[~d], ones[~d])
        (a1, u1), (a0, u0) = weighted_mean_variance(column[d], w[d]), weighted_mean_variance(column[~d], w[~d])
        scale = np.sqrt((v1 + v0) / 2)
        ratio = (lambda top, bottom: top / bottom if bottom > 0 else float("nan"))
        rows.append(CovariateBalance(name, float((m1 - m0) / scale) if scale > 0 else 0.0,
                                     float((a1 - a0) / scale) if scale > 0 else 0.0, ratio(v1, v0), ratio(u1, u0)))
    return tuple(rows)
