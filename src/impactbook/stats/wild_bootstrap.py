"""The wild cluster restricted bootstrap for one linear hypothesis R'beta = 0 in OLS with few clusters.

Why: with a handful of clusters, cluster-robust t tests over-reject even with the G/(G-1) correction and
t(G-1) reference; bootstrapping the t statistic with cluster-level sign flips of residuals estimated under
the null keeps the test's size close to nominal with as few as 6-10 clusters (Cameron, Gelbach & Miller
2008, "Bootstrap-Based Improvements for Inference with Clustered Errors", REStat 90:414-427; MacKinnon &
Webb 2017; Roodman, MacKinnon, Nielsen & Webb 2019, "Fast and wild", Stata Journal 19:4-60).

WCR11 as in `wildboottest` and `fwildclusterboot`: residuals from the restricted fit, Rademacher weights
(every one of the 2^G sign patterns when 2^G < the draws asked for, so the p-value is exact and needs no
seed), CR1 small-sample factor G/(G-1) (N-1)/(N-k), two-sided p = share of |t*| >= |t|. Ties are counted
as at least as extreme: the identity and the all-flipped sign patterns reproduce |t| exactly, and counting
them (rather than leaving it to floating-point noise, as a strict comparison does) errs on the safe side
by at most 2 / 2^G.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np


@dataclass(frozen=True)
class WildBootstrap:
    method: str
    t_statistic: float
    p_value: float
    draws: int
    full_enumeration: bool
    clusters: int
    bootstrap_statistics: np.ndarray


@dataclass(frozen=True)
class _Problem:
    """What every test of R'beta on one design shares: the projection, the score weights and the sign draws."""
    X: np.ndarray
    R: np.ndarray
    groups: np.ndarray
    xtx_inverse: np.ndarray
    a: np.ndarray
    weight: np.ndarray
    ssc: float
    signs: np.ndarray
    enumerated: bool


def _prepare(design: np.ndarray, clusters: np.ndarray, restriction: np.ndarray, draws: int, seed: int) -> _Problem:
    X, R = np.asarray(design, dtype=float), np.asarray(restriction, dtype=float)
    groups = np.unique(np.asarray(clusters), return_inverse=True)[1]
    G, (n, k) = int(groups.max()) + 1, X.shape
    xtx_inverse = np.linalg.pinv(X.T @ X)
    a = xtx_inverse @ R                       # R'beta = a'X'y, and each cluster's score enters through X a
    if 2**G < draws:
        signs, enumerated = np.array(list(product([-1.0, 1.0], repeat=G))).T, True
    else:
        signs, enumerated = np.random.default_rng(seed).choice([-1.0, 1.0], size=(G, draws)), False
    return _Problem(X, R, groups, xtx_inverse, a, X @ a, G / (G - 1) * (n - 1) / (n - k), signs, enumerated)


def _statistics(problem: _Problem, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(R'beta, its CR1 t statistic, the bootstrap t's) for the null R'beta = 0 on outcome y."""
    X, R, groups, a, weight = problem.X, problem.R, problem.groups, problem.a, problem.weight
    G = problem.signs.shape[0]
    beta = problem.xtx_inverse @ (X.T @ y)
    residual = y - X @ beta
    se = np.sqrt(problem.ssc * np.sum(np.bincount(groups, weights=weight * residual, minlength=G) ** 2))
    t = float(R @ beta / se)
    restricted = beta - a * (R @ beta) / (R @ a)   # the least-squares fit under R'beta = 0
    fitted, restricted_residual = X @ restricted, y - X @ restricted
    statistics = []
    for block in np.array_split(np.arange(problem.signs.shape[1]), max(1, problem.signs.shape[1] // 512)):
        y_star = fitted[:, None] + restricted_residual[:, None] * problem.signs[groups][:, block]
        beta_star = problem.xtx_inverse @ (X.T @ y_star)
        u_star = y_star - X @ beta_star
        scores = np.zeros((G, len(block)))
        np.add.at(scores, groups, weight[:, None] * u_star)
        statistics.append((R @ beta_star) / np.sqrt(problem.ssc * np.sum(scores**2, axis=0)))
    return float(R @ beta), t, np.concatenate(statistics)


def _p_value(t: float, t_star: np.ndarray) -> float:
    return float(np.mean(np.abs(t_star) >= np.abs(t) * (1 - 1e-9)))


def wild_cluster_bootstrap(design: np.ndarray, outcome: np.ndarray, clusters: np.ndarray, restriction: np.ndarray,
                           draws: int = 9999, seed: int = 0) -> WildBootstrap:
    """Test restriction' beta = 0. `clusters`: one code per row."""
    problem = _prepare(design, clusters, restriction, draws, seed)
    _, t, t_star = _statistics(problem, np.asarray(outcome, dtype=float))
    return WildBootstrap("wild cluster restricted bootstrap (WCR11, Rademacher"
                         + (", all 2^G sign patterns)" if problem.enumerated else f", {problem.signs.shape[1]} draws)"),
                         t, _p_value(t, t_star), int(problem.signs.shape[1]), problem.enumerated,
                         problem.signs.shape[0], t_star)


def wild_cluster_interval(design: np.ndarray, outcome: np.ndarray, clusters: np.ndarray, restriction: np.ndarray,
                          level: float = 0.95, draws: int = 9999, seed: int = 0,
                          tolerance: float = 1e-6) -> tuple[float, float]:
    """The interval of every value b that the wild cluster restricted bootstrap does not reject for
    R'beta = b at 1 - level (test inversion, as fwildclusterboot's confidence sets; Roodman et al. 2019,
    sec. 3.5). Testing R'beta = b on y is testing R'beta = 0 on y - b X c with R'c = 1, so every b reuses
    the same design and the same sign draws; each end is found by doubling out from the estimate until the
    test rejects, then bisecting to `tolerance` x the CR1 standard error."""
    problem = _prepare(design, clusters, restriction, draws, seed)
    y = np.asarray(outcome, dtype=float)
    shift = problem.X @ (problem.R / (problem.R @ problem.R))
    estimate, t, _ = _statistics(problem, y)
    scale = abs(estimate / t) if t != 0 else 1.0
    alpha = 1 - level

    def kept(value: float) -> bool:
        _, t_value, t_star = _statistics(problem, y - value * shift)
        return _p_value(t_value, t_star) >= alpha  # as the verdicts: significant only below alpha

    def end(direction: float) -> float:
        inner, step = estimate, scale
        while kept(estimate + direction * step):
            inner, step = estimate + direction * step, 2 * step
            if step > 1e6 * scale:
                return direction * float("inf")  # never rejected: the set is unbounded on this side
        outer = estimate + direction * step
        while abs(outer - inner) > tolerance * scale:
            middle = (inner + outer) / 2
            inner, outer = (middle, outer) if kept(middle) else (inner, middle)
        return (inner + outer) / 2

    return end(-1.0), end(1.0)
