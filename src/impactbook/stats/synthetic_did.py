"""Synthetic difference-in-differences (Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021, AER 111(12),
4088-4118): unit weights make the donors' pre-period path parallel to the treated units' (up to an
intercept, with a ridge penalty that spreads weight), time weights make the pre-period periods predict the
donors' post-period level, and the effect is the doubly weighted difference in differences (their eq. 1).
The standard error is their placebo variance (Algorithm 4), the one they use with a single treated unit.

Each weight problem is the regularised least squares on the simplex of their eqs. (2)-(4), solved exactly
(an NNLS active-set solver on the problem stacked with its ridge rows) where the authors' R package runs
Frank-Wolfe with a sparsifying restart; on Proposition 99 both give -15.6 (their Table 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy.stats import norm

from .synthetic_control import simplex_weights

TIME_RIDGE = 1e-6  # zeta_lambda / sigma: the authors' default, a tie-break for the time weights


def regularized_simplex_weights(donors: np.ndarray, target: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    """argmin over w on the simplex and an intercept w0 of ||w0 + donors @ w - target||^2 + ridge ||w||^2
    (donors: rows x columns). The intercept is profiled out by centring the rows' means; returns (w, w0)."""
    centred = donors - donors.mean(axis=0)
    k = donors.shape[1]
    weights = simplex_weights(np.concatenate([target - target.mean(), np.zeros(k)]),
                              np.vstack([centred, math.sqrt(ridge) * np.eye(k)]))
    return weights, float(target.mean() - donors.mean(axis=0) @ weights)


@dataclass(frozen=True)
class SyntheticDidWeights:
    unit_weights: np.ndarray  # omega over the donors
    unit_intercept: float  # omega_0: the level the parallel path is allowed to differ by
    time_weights: np.ndarray  # lambda over the pre-periods
    noise_level: float  # sigma: sd of the donors' first differences in the pre-period
    unit_ridge: float  # zeta_omega

    def estimate(self, outcomes: np.ndarray, treated: list[int], pre_periods: int) -> float:
        """tau = (treated post mean - lambda-weighted treated pre) - omega-weighted (donor post mean - lambda-weighted donor pre)."""
        donors = np.delete(outcomes, treated, axis=1)
        treated_path = outcomes[:, treated].mean(axis=1)
        synthetic = donors @ self.unit_weights
        difference = treated_path - synthetic
        return float(difference[pre_periods:].mean() - difference[:pre_periods] @ self.time_weights)


def synthetic_did_weights(outcomes: np.ndarray, treated: list[int], pre_periods: int) -> SyntheticDidWeights:
    """The unit and time weights of Arkhangelsky et al. (2021) for a periods x units matrix. Ridge on the
    unit weights: zeta = (N_tr T_post)^(1/4) sigma (their eq. 2), entering as T_pre zeta^2 ||omega||^2."""
    donors = np.delete(outcomes, treated, axis=1)
    n_treated, post = len(treated), outcomes.shape[0] - pre_periods
    if donors.shape[1] < 2 or pre_periods < 2:
        raise ValueError("synthetic DiD needs at least two donors and two pre-periods")
    sigma = float(np.std(np.diff(donors[:pre_periods], axis=0), ddof=1))
    zeta = (n_treated * post) ** 0.25 * sigma
    omega, omega0 = regularized_simplex_weights(donors[:pre_periods], outcomes[:pre_periods, treated].mean(axis=1),
                                                pre_periods * zeta ** 2)
    lam, _ = regularized_simplex_weights(donors[:pre_periods].T, donors[pre_periods:].mean(axis=0),
                                         donors.shape[1] * (TIME_RIDGE * sigma) ** 2)
    return SyntheticDidWeights(omega, omega0, lam, sigma, zeta)


@dataclass(frozen=True)
class SyntheticDidResult:
    """The SDID estimate with its placebo standard error, a normal interval and p-value (the authors'
    Algorithm 4 and sec. 5), the weights, and the treated path against its synthetic (intercept included).
    Shares the field names of a synthetic control result where the meaning is the same."""
    method: str
    estimate: float
    standard_error: float | None
    counterfactual_level: float
    p_value: float | None
    level: float
    interval_low: float | None
    interval_high: float | None
    weights: np.ndarray
    time_weights: np.ndarray
    unit_intercept: float
    gaps: np.ndarray  # treated - (omega_0 + donors @ omega), every period
    pre_rmspe: float
    treated_pre_level: float
    placebo_estimates: np.ndarray
    pre_periods: int
    placebo_draws: int = 0
    rmspe_ratio: float = float("nan")  # a synthetic-control statistic: not defined here
    placebo_gaps: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    placebo_ratios: np.ndarray = field(default_factory=lambda: np.empty(0))
    leave_one_out_estimates: dict[int, float] = field(default_factory=dict)

    def interval(self, level: float) -> tuple[float | None, float | None]:
        return normal_interval(self.estimate, self.standard_error, level)


def normal_interval(estimate: float, standard_error: float | None, level: float) -> tuple[float | None, float | None]:
    if standard_error is None:
        return None, None
    half = norm.ppf(0.5 + level / 2) * standard_error
    return estimate - half, estimate + half


def placebo_sets(donors: int, treated: int, draws: int, seed: int) -> list[tuple[int, ...]]:
    """Every set of `treated` donors when there are at most `draws` of them (no simulation noise), else a
    seeded sample of `draws` sets (Arkhangelsky et al. 2021, Algorithm 4, which samples)."""
    if math.comb(donors, treated) <= draws:
        return list(combinations(range(donors), treated))
    rng = np.random.default_rng(seed)
    return [tuple(sorted(rng.choice(donors, treated, replace=False))) for _ in range(draws)]


def synthetic_did(outcomes: np.ndarray, treated: list[int], pre_periods: int, level: float = 0.95,
                  draws: int = 500, seed: int = 0) -> SyntheticDidResult:
    """SDID on a periods x units matrix with `treated` column indices (the other columns are donors).

    Placebo variance (Algorithm 4): the donors alone, `len(treated)` of them relabelled treated, weights
    re-fitted, tau re-estimated; V = the mean squared deviation of those placebo taus. Needs more donors than
    treated units. Interval tau -/+ z se; p-value from the normal (their sec. 5 and Theorem 2)."""
    outcomes = np.asarray(outcomes, float)
    weights = synthetic_did_weights(outcomes, treated, pre_periods)
    estimate = weights.estimate(outcomes, treated, pre_periods)
    donors = np.delete(outcomes, treated, axis=1)
    placebos = []
    if donors.shape[1] > len(treated) + 1:
        for chosen in placebo_sets(donors.shape[1], len(treated), draws, seed):
            fake = list(chosen)
            placebos.append(synthetic_did_weights(donors, fake, pre_periods).estimate(donors, fake, pre_periods))
    placebo_estimates = np.array(placebos)
    se = float(np.sqrt(np.mean(np.square(placebo_estimates - placebo_estimates.mean())))) if placebos else None
    treated_path = outcomes[:, treated].mean(axis=1)
    synthetic = weights.unit_intercept + donors @ weights.unit_weights
    gaps = treated_path - synthetic
    p_value = float(2 * norm.sf(abs(estimate) / se)) if se else None
    return SyntheticDidResult(
        "synthetic difference-in-differences (Arkhangelsky et al. 2021), placebo standard error (their "
        "Algorithm 4), normal interval", estimate, se, float(treated_path[pre_periods:].mean() - estimate), p_value,
        level, *normal_interval(estimate, se, level), weights.unit_weights, weights.time_weights,
        weights.unit_intercept, gaps, float(np.sqrt(np.mean(np.square(gaps[:pre_periods])))),
        float(treated_path[:pre_periods].mean()), placebo_estimates, pre_periods, len(placebos))
