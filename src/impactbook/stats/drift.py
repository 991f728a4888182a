"""Drift between a reference and a current sample, from binned counts or ECDF steps (sufficient statistics
a SQL engine can produce), so a million rows never need to reach Python.

Numeric features: population stability index, two-sample Kolmogorov–Smirnov, Jensen–Shannon distance.
Categorical features: chi-square test of homogeneity. Each result names its method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Drift:
    method: str
    statistic: float
    p_value: float | None = None
    df: int | None = None


def _shares(counts: Sequence[float]) -> np.ndarray:
    array = np.asarray(counts, dtype=float)
    if array.ndim != 1 or array.size < 2 or (array < 0).any() or array.sum() <= 0:
        raise ValueError("counts must be at least two non-negative bins with a positive total")
    return array / array.sum()


def psi(reference: Sequence[float], current: Sequence[float], floor: float = 1e-4) -> Drift:
    """Population stability index, sum (c - r) ln(c / r) over bins, with bin shares floored at `floor` so an
    empty bin stays finite (Siddiqi 2006, *Credit Risk Scorecards*, ch. 8; Yurdakul 2018, WMU thesis)."""
    r, c = np.maximum(_shares(reference), floor), np.maximum(_shares(current), floor)
    return Drift("population stability index", float(np.sum((c - r) * np.log(c / r))))


def jensen_shannon(reference: Sequence[float], current: Sequence[float]) -> Drift:
    """Jensen–Shannon distance in bits (the square root of the JS divergence, in [0, 1]) between the binned
    distributions (Lin 1991, IEEE Trans. Inf. Theory 37(1); Endres & Schindelin 2003)."""
    r, c = _shares(reference), _shares(current)
    m = (r + c) / 2

    def kl(p: np.ndarray) -> float:
        mask = p > 0
        return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))

    return Drift("Jensen-Shannon distance (base 2)", math.sqrt(max(0.0, (kl(r) + kl(c)) / 2)))


def chi_square(reference: Sequence[float], current: Sequence[float]) -> Drift:
    """Pearson's chi-square test of homogeneity on the 2 x K table of category counts (categories empty in
    both samples dropped); Agresti 2013, *Categorical Data Analysis*, §3.2."""
    table = np.vstack([np.asarray(reference, dtype=float), np.asarray(current, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) <= 0).any():
        return Drift("Pearson chi-square test of homogeneity", 0.0, 1.0, 0)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    df = table.shape[1] - 1
    return Drift("Pearson chi-square test of homogeneity", statistic, float(sps.chi2.sf(statistic, df)), df)


def kolmogorov_smirnov(reference_cumulative: Sequence[float], current_cumulative: Sequence[float]) -> Drift:
    """Two-sample Kolmogorov–Smirnov from the cumulative counts of both samples at every distinct value (in
    increasing order; the last entries are the sample sizes): D = max |F_ref - F_cur|, two-sided p-value
    from the Smirnov distribution at n_eff = round(m n / (m + n)) as scipy's `ks_2samp(method="asymp")`
    (Smirnov 1939; Hodges 1958)."""
    r, c = np.asarray(reference_cumulative, dtype=float), np.asarray(current_cumulative, dtype=float)
    if r.shape != c.shape or r.size == 0 or r[-1] <= 0 or c[-1] <= 0:
        raise ValueError("cumulative counts must have the same positive length and positive totals")
    return ks_from_statistic(float(np.max(np.abs(r / r[-1] - c / c[-1]))), int(r[-1]), int(c[-1]))


def ks_samples(reference: np.ndarray, current: np.ndarray) -> Drift:
    """Two-sample KS from the raw samples: both sorted once, each ECDF evaluated at every pooled value with a
    binary search (right-continuous, so ties count together); same statistic and p-value as above."""
    r, c = np.sort(np.asarray(reference, dtype=float)), np.sort(np.asarray(current, dtype=float))
    if r.size == 0 or c.size == 0:
        raise ValueError("both samples must be non-empty")
    pooled = np.concatenate([r, c])
    gap = np.searchsorted(r, pooled, side="right") / r.size - np.searchsorted(c, pooled, side="right") / c.size
    return ks_from_statistic(float(np.max(np.abs(gap))), r.size, c.size)


def ks_from_statistic(d: float, n_reference: int, n_current: int) -> Drift:
    """The KS result for a D computed elsewhere (e.g. by a SQL window over both samples' ECDFs)."""
    m, n = sorted([float(n_reference), float(n_current)], reverse=True)
    p = float(np.clip(sps.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
    return Drift("two-sample Kolmogorov-Smirnov (asymptotic)", float(d), p)


def binned_counts(values: Sequence[float], edges: Sequence[float]) -> np.ndarray:
    """Counts in bins (-inf, e1], (e1, e2], ..., (ek, inf) for interior `edges`, the layout the SQL produces."""
    return np.bincount(np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), side="left"),
                       minlength=len(edges) + 1)
