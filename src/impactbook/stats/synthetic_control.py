"""Synthetic control (Abadie, Diamond & Hainmueller 2010, JASA 105:493-505): the treated unit's
counterfactual is a convex combination of donors fitted on pre-period outcomes; inference by in-space
placebos ranked on the post/pre RMSPE ratio (ADH 2010, sec. 2.4 and 3.3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls


def simplex_weights(treated: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """argmin_w ||treated - donors @ w||^2 subject to w >= 0, sum(w) = 1: Lawson-Hanson active-set NNLS
    (Lawson & Hanson 1974, ch. 23) with the sum-to-one constraint as a heavily weighted extra row
    (the weighting method for equality constraints, Lawson & Hanson 1974, ch. 22)."""
    scale = 1e4 * max(float(np.abs(donors).max()), 1.0)
    design = np.vstack([donors, np.full((1, donors.shape[1]), scale)])
    target = np.append(treated, scale)
    weights, _ = nnls(design, target, maxiter=50 * donors.shape[1])
    return weights / weights.sum()


def rmspe(gaps: np.ndarray) -> float:
    """Root mean squared prediction error of a gap series."""
    return float(np.sqrt(np.mean(np.square(gaps))))


@dataclass(frozen=True)
class SyntheticControlFit:
    """One synthetic control: weights, gaps (treated - synthetic) and the pre/post RMSPE."""
    weights: np.ndarray
    gaps: np.ndarray
    pre_rmspe: float
    post_rmspe: float

    @property
    def rmspe_ratio(self) -> float:
        return self.post_rmspe / self.pre_rmspe if self.pre_rmspe > 0 else float("inf")


def fit_synthetic_control(treated: np.ndarray, donors: np.ndarray, pre_periods: int) -> SyntheticControlFit:
    """Fit weights on the first `pre_periods` rows; `treated` is (periods,), `donors` (periods x donors)."""
    weights = simplex_weights(treated[:pre_periods], donors[:pre_periods])
    gaps = treated - donors @ weights
    return SyntheticControlFit(weights, gaps, rmspe(gaps[:pre_periods]), rmspe(gaps[pre_periods:]))


@dataclass(frozen=True)
class SyntheticControlResult:
    """Average post-period gap with its placebo rank p-value and the diagnostics."""
    method: str
    estimate: float
    counterfactual_level: float
    relative: float | None
    p_value: float
    level: float
    interval_low: float | None
    interval_high: float | None
    weights: np.ndarray
    gaps: np.ndarray
    pre_rmspe: float
    rmspe_ratio: float
    placebo_ratios: np.ndarray
    placebo_gaps: np.ndarray
    leave_one_out_estimates: dict[int, float]


def placebo_fits(donors: np.ndarray, pre_periods: int) -> list[SyntheticControlFit]:
    """In-space placebos: each donor in turn as treated, the other donors as its pool (ADH 2010, 3.3)."""
    fits = []
    for j in range(donors.shape[1]):
        others = np.delete(donors, j, axis=1)
        fits.append(fit_synthetic_control(donors[:, j], others, pre_periods))
    return fits


def synthetic_control(treated: np.ndarray, donors: np.ndarray, pre_periods: int, level: float = 0.95,
                      leave_one_out: bool = True) -> SyntheticControlResult:
    """Synthetic control estimate = mean post-period gap; p-value = rank of the treated unit's
    post/pre RMSPE ratio among it and all placebos, (1 + #placebos >= treated) / (J + 1) (ADH 2010).

    ADH 2010 define no confidence interval; we report none rather than invent one (interval fields
    are None). Leave-one-out re-estimates drop each donor with positive weight in turn (ADH 2015, AJPS)."""
    treated, donors = np.asarray(treated, float), np.asarray(donors, float)
    fit = fit_synthetic_control(treated, donors, pre_periods)
    placebos = placebo_fits(donors, pre_periods)
    ratios = np.array([p.rmspe_ratio for p in placebos])
    p_value = (1 + np.sum(ratios >= fit.rmspe_ratio)) / (ratios.size + 1)
    estimate = float(np.mean(fit.gaps[pre_periods:]))
    counterfactual = float(np.mean((donors @ fit.weights)[pre_periods:]))
    loo = {}
    if leave_one_out:
        for j in np.nonzero(fit.weights > 1e-6)[0]:
            refit = fit_synthetic_control(treated, np.delete(donors, j, axis=1), pre_periods)
            loo[int(j)] = float(np.mean(refit.gaps[pre_periods:]))
    return SyntheticControlResult(
        "synthetic control (Abadie, Diamond & Hainmueller 2010), placebo RMSPE-ratio rank p-value",
        estimate, counterfactual, estimate / counterfactual if counterfactual != 0 else None,
        float(p_value), level, None, None, fit.weights, fit.gaps, fit.pre_rmspe, fit.rmspe_ratio,
        ratios, np.array([p.gaps for p in placebos]), loo)
