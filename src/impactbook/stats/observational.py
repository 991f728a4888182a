"""Selection on observables: the propensity score, inverse-probability weighting (ATE, ATT) and the
doubly robust AIPW estimate of the ATE, each with a standard error that accounts for the estimated score.

Methods: the propensity score (Rosenbaum & Rubin 1983) by logistic regression; normalized (Hajek,
"stabilized") inverse-probability weights (Hirano, Imbens & Ridder 2003; Lunceford & Davidian 2004, §3);
augmented IPW with one outcome regression per arm (Robins, Rotnitzky & Zhao 1994; Lunceford & Davidian
2004, §3.3). Standard errors are the M-estimation sandwich of the stacked estimating equations (score
equations of the logit and of the outcome regressions, then the effect's), written as influence
functions (Stefanski & Boos 2002, "The calculus of M-estimation"): the same HC0 sandwich that
`statsmodels.treatment.TreatmentEffect` obtains by GMM. Trimming drops units whose estimated score lies
outside [t, 1 - t] (Crump, Hotz, Imbens & Mitnik 2009); the logit is fitted on every unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

Estimand = Literal["ATE", "ATT"]


@dataclass(frozen=True)
class PropensityScore:
    """The fitted logit: coefficients (constant first), each unit's score, and the pieces the sandwich needs."""

    coefficients: np.ndarray
    score: np.ndarray
    design: np.ndarray  # covariates with a leading constant column
    treated: np.ndarray  # 0/1 floats

    @property
    def logit(self) -> np.ndarray:
        return self.design @ self.coefficients

    def influence_along(self, gradient: np.ndarray) -> np.ndarray:
        """Each unit's influence on the coefficients, H^-1 (d - p) x with H the mean Hessian p(1-p) x x',
        projected on `gradient` (a statistic's derivative in the coefficients): one number per unit."""
        p = self.score
        hessian = (self.design * (p * (1 - p))[:, None]).T @ self.design / len(p)
        return (self.design @ np.linalg.solve(hessian, gradient)) * (self.treated - p)


@dataclass(frozen=True)
class EffectEstimate:
    """An effect (treated minus untreated potential-outcome mean) on `estimand`, with its normal interval."""

    method: str
    estimand: str
    level: float
    estimate: float
    standard_error: float
    low: float
    high: float
    p_value: float
    treated_mean: float  # the treated units' (weighted) mean outcome
    control_mean: float  # the comparison's adjusted mean: the treated units' counterfactual under the estimand


def normal_inference(estimate: float, standard_error: float, alpha: float) -> tuple[float, float, float]:
    """The (1 - alpha) normal interval and two-sided p-value."""
    z = sps.norm.ppf(1 - alpha / 2)
    p_value = float(2 * sps.norm.sf(abs(estimate) / standard_error)) if standard_error > 0 else float("nan")
    return float(estimate - z * standard_error), float(estimate + z * standard_error), p_value


@dataclass(frozen=True)
class TreatmentEffectEstimate(EffectEstimate):
    """A weighting estimate, with the units kept and trimmed."""

    units: int
    treated_units: int
    trimmed_units: int


def propensity_score(treated: np.ndarray, covariates: np.ndarray, tolerance: float = 1e-10,
                     max_iterations: int = 100) -> PropensityScore:
    """Logistic regression of the treatment flag on the covariates plus a constant, by Newton-Raphson on the
    log-likelihood (McCullagh & Nelder 1989, §4.4: iteratively reweighted least squares) until no
    coefficient moves by more than `tolerance`; the same maximum-likelihood fit as statsmodels' Logit."""
    treated = np.asarray(treated, dtype=float)
    design = np.column_stack([np.ones(len(treated)), np.asarray(covariates, dtype=float)])
    coefficients = np.zeros(design.shape[1])
    for _ in range(max_iterations):
        p = 1 / (1 + np.exp(-design @ coefficients))
        hessian = (design * (p * (1 - p))[:, None]).T @ design
        try:
            step = np.linalg.solve(hessian, design.T @ (treated - p))
        except np.linalg.LinAlgError:
            break
        coefficients = coefficients + step
        if np.max(np.abs(step)) < tolerance:
            return PropensityScore(coefficients, 1 / (1 + np.exp(-design @ coefficients)), design, treated)
    raise ValueError("the propensity score's logit did not converge (perfect separation, or covariates that are "
                     "collinear): drop or coarsen the covariates that predict treatment exactly")


def _kept(score: np.ndarray, trim: float) -> np.ndarray:
    if not 0 <= trim < 0.5:
        raise ValueError(f"trimming must be in [0, 0.5) (got {trim})")
    return (score >= trim) & (score <= 1 - trim)


def _estimate(method: str, estimand: str, alpha: float, estimate: float, influence: np.ndarray, treated_mean: float,
              control_mean: float, ps: PropensityScore, kept: np.ndarray) -> TreatmentEffectEstimate:
    """Normal interval and two-sided p-value from the influence functions (variance = mean(IF^2) / n)."""
    n = len(influence)
    standard_error = float(np.sqrt(np.mean(influence ** 2) / n))
    return TreatmentEffectEstimate(method, estimand, 1 - alpha, float(estimate), standard_error,
                                   *normal_inference(float(estimate), standard_error, alpha), float(treated_mean), float(control_mean), int(kept.sum()),
                                   int(ps.treated[kept].sum()), int((~kept).sum()))


def ipw(outcome: np.ndarray, ps: PropensityScore, estimand: Estimand = "ATE", trim: float = 0.0,
        alpha: float = 0.05) -> TreatmentEffectEstimate:
    """Hajek IPW: each arm's weighted mean with weights normalized to sum to one within the arm. ATE weights
    are d/p and (1-d)/(1-p); ATT weights are 1 for treated and p/(1-p) for untreated units.

    Estimating equations (per unit): d w1 (y - mu1) = 0, (1-d) w0 (y - mu0) = 0, and the logit's score;
    the effect's influence adds the score's influence through the weights' derivative in the coefficients.
    """
    y = np.asarray(outcome, dtype=float)
    d, p, x = ps.treated, ps.score, ps.design
    keep = _kept(p, trim).astype(float)
    if estimand == "ATE":
        w1, w0 = keep * d / p, keep * (1 - d) / (1 - p)
        dw1, dw0 = -w1 * (1 - p), w0 * p  # derivatives in the logit: d(1/p) = -(1-p)/p, d(1/(1-p)) = p/(1-p)
    elif estimand == "ATT":
        w1, w0 = keep * d, keep * (1 - d) * p / (1 - p)
        dw1, dw0 = np.zeros_like(w1), w0  # the odds p/(1-p) = exp(logit) is its own derivative
    else:
        raise ValueError(f"estimand must be ATE or ATT (got {estimand!r})")
    mu1, mu0 = (w1 @ y) / w1.sum(), (w0 @ y) / w0.sum()
    n = len(y)
    r1, r0 = y - mu1, y - mu0
    influence1 = (w1 * r1 + ps.influence_along(x.T @ (dw1 * r1) / n)) / (w1.sum() / n)
    influence0 = (w0 * r0 + ps.influence_along(x.T @ (dw0 * r0) / n)) / (w0.sum() / n)
    method = f"IPW, normalized (Hajek) weights, {estimand}" + (f", score trimmed to [{trim:g}, {1 - trim:g}]" if trim else "")
    return _estimate(method, estimand, alpha, mu1 - mu0, influence1 - influence0, mu1, mu0, ps, keep > 0)


def aipw(outcome: np.ndarray, ps: PropensityScore, trim: float = 0.0, alpha: float = 0.05) -> TreatmentEffectEstimate:
    """Augmented IPW for the ATE: m1(x) - m0(x) + d (y - m1(x)) / p - (1 - d)(y - m0(x)) / (1 - p), averaged,
    with m_a a least-squares regression of the outcome on the score model's covariates within arm a.
    Consistent if either the score or the outcome regressions are right (doubly robust). Trimmed units
    get zero weight in the regressions and the average (the logit keeps every unit)."""
    y = np.asarray(outcome, dtype=float)
    d, p, x = ps.treated, ps.score, ps.design
    k = _kept(p, trim).astype(float)
    n = len(y)
    fits = []
    for arm in (k * d, k * (1 - d)):
        gram = (x * arm[:, None]).T @ x / n
        fitted = x @ np.linalg.solve(gram, x.T @ (arm * y) / n)
        fits.append((fitted, y - fitted, gram, arm))
    (m1, e1, gram1, arm1), (m0, e0, gram0, arm0) = fits
    terms1 = m1 + d * e1 / p
    terms0 = m0 + (1 - d) * e0 / (1 - p)
    share = k.mean()
    mean1, mean0 = (k @ terms1) / k.sum(), (k @ terms0) / k.sum()
    estimate = mean1 - mean0
    # the nuisance parameters' influence, through the mean derivative of the effect's equation in each:
    # a regression's influence G^-1 x e projected on g is (x . G^-1 g) e
    g1 = x.T @ (k * (1 - d / p)) / n
    g0 = -x.T @ (k * (1 - (1 - d) / (1 - p))) / n
    gscore = -x.T @ (k * (d * e1 * (1 - p) / p + (1 - d) * e0 * p / (1 - p))) / n
    influence = (k * (terms1 - terms0 - estimate) + (x @ np.linalg.solve(gram1, g1)) * arm1 * e1
                 + (x @ np.linalg.solve(gram0, g0)) * arm0 * e0 + ps.influence_along(gscore)) / share
    method = "AIPW (doubly robust), outcome regression per arm, ATE" + (
        f", score trimmed to [{trim:g}, {1 - trim:g}]" if trim else "")
    return _estimate(method, "ATE", alpha, estimate, influence, mean1, mean0, ps, k > 0)
