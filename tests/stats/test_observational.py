"""IPW and AIPW against statsmodels' TreatmentEffect (the same stacked estimating equations, its GMM
sandwich) on the same data, a numerical sandwich for trimmed weights, and simulations with confounding
on observables."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.treatment.treatment_effects import TreatmentEffect

from impactbook.stats.observational import aipw, ipw, propensity_score


def confounded(seed: int, n: int = 3000, effect: float = 2.0):
    """Three covariates drive both treatment and outcome; the true effect is constant (ATE = ATT = effect)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    treated = (rng.random(n) < 1 / (1 + np.exp(-(-0.3 + 0.8 * x[:, 0] - 0.5 * x[:, 1] + 0.3 * x[:, 2])))).astype(float)
    outcome = 1 + effect * treated + x @ np.array([1.0, 0.5, -0.7]) + rng.normal(size=n)
    return x, treated, outcome


@pytest.fixture(scope="module")
def reference():
    x, treated, outcome = confounded(1)
    design = sm.add_constant(x)
    selection = sm.Logit(treated, design).fit(disp=0)
    assert 0.01 < selection.predict().min() and selection.predict().max() < 0.99  # statsmodels clips at 0.01
    return x, treated, outcome, TreatmentEffect(sm.OLS(outcome, design), treated, results_select=selection)


@pytest.mark.parametrize("estimand, group", [("ATE", "all"), ("ATT", 1)])
def test_ipw_equals_statsmodels_treatment_effect(reference, estimand, group):
    x, treated, outcome, effect = reference
    expected = effect.ipw(effect_group=group)
    result = ipw(outcome, propensity_score(treated, x), estimand)
    assert result.estimate == pytest.approx(expected.effect[0], rel=1e-9)
    assert result.standard_error == pytest.approx(expected.sd[0], rel=1e-6)
    assert (result.low, result.high) == pytest.approx(tuple(expected.conf_int()[0]), rel=1e-6)
    assert result.estimand == estimand and result.level == 0.95 and "Hajek" in result.method


def test_aipw_equals_statsmodels_treatment_effect(reference):
    x, treated, outcome, effect = reference
    expected = effect.aipw()
    result = aipw(outcome, propensity_score(treated, x))
    assert result.estimate == pytest.approx(expected.effect[0], rel=1e-9)
    assert result.standard_error == pytest.approx(expected.sd[0], rel=1e-6)
    assert result.control_mean == pytest.approx(expected.effect[1], rel=1e-9)


def test_the_score_equals_an_unpenalized_sklearn_logistic_regression(reference):
    from sklearn.linear_model import LogisticRegression

    x, treated, _, _ = reference
    fit = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x, treated)
    score = propensity_score(treated, x)
    assert score.coefficients == pytest.approx(np.r_[fit.intercept_, fit.coef_[0]], abs=1e-6)


def test_the_score_equals_statsmodels_logit(reference):
    x, treated, _, effect = reference
    score = propensity_score(treated, x)
    assert score.coefficients == pytest.approx(np.asarray(effect.results_select.params), rel=1e-8)
    assert score.score == pytest.approx(effect.results_select.predict(), rel=1e-8)


def test_perfect_separation_is_named():
    x = np.arange(20.0)[:, None]
    with pytest.raises(ValueError, match="did not converge"):
        propensity_score((x[:, 0] > 9.5).astype(float), x)


def _numerical_sandwich(equations, theta: np.ndarray) -> np.ndarray:
    """HC0 sandwich G^-1 S G^-T / n with G the numerical Jacobian of the mean equations (an independent route)."""
    values = equations(theta)
    n = len(values)
    jacobian = np.column_stack([
        (equations(theta + step).mean(axis=0) - equations(theta - step).mean(axis=0)) / (2 * 1e-6)
        for step in np.eye(len(theta)) * 1e-6])
    inverse = np.linalg.inv(jacobian)
    return inverse @ (values.T @ values / n) @ inverse.T / n


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_trimmed_ipw_equals_the_stacked_equations_solved_numerically(estimand):
    x, treated, outcome = confounded(2, n=1500)
    x[:, 0] *= 2.5  # push scores towards 0 and 1 so trimming at 0.1 drops units
    score = propensity_score(treated, x)
    result = ipw(outcome, score, estimand, trim=0.1)
    assert result.trimmed_units > 50
    design = score.design

    def equations(theta):
        mu1, mu0, gamma = theta[0], theta[1], theta[2:]
        p = 1 / (1 + np.exp(-design @ gamma))
        keep = (score.score >= 0.1) & (score.score <= 0.9)  # the trimmed set is fixed by the fitted score
        w1, w0 = (treated / p, (1 - treated) / (1 - p)) if estimand == "ATE" else (treated, (1 - treated) * p / (1 - p))
        return np.column_stack([keep * w1 * (outcome - mu1), keep * w0 * (outcome - mu0),
                                design * (treated - p)[:, None]])

    keep = (score.score >= 0.1) & (score.score <= 0.9)
    w1 = np.where(keep, treated / score.score if estimand == "ATE" else treated, 0)
    w0 = np.where(keep, (1 - treated) / (1 - score.score) * (1 if estimand == "ATE" else score.score), 0)
    theta = np.r_[w1 @ outcome / w1.sum(), w0 @ outcome / w0.sum(), score.coefficients]
    assert np.abs(equations(theta).mean(axis=0)).max() < 1e-9
    covariance = _numerical_sandwich(equations, theta)
    assert result.estimate == pytest.approx(theta[0] - theta[1], rel=1e-12)
    assert result.standard_error == pytest.approx(np.sqrt(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]),
                                                  rel=1e-6)


def test_trimmed_aipw_equals_the_stacked_equations_solved_numerically():
    x, treated, outcome = confounded(3, n=1500)
    x[:, 0] *= 2.5
    score = propensity_score(treated, x)
    result = aipw(outcome, score, trim=0.05)
    design, k = score.design, ((score.score >= 0.05) & (score.score <= 0.95)).astype(float)
    width = design.shape[1]

    def equations(theta):
        tau, b1, b0, gamma = theta[0], theta[1:1 + width], theta[1 + width:1 + 2 * width], theta[1 + 2 * width:]
        p = 1 / (1 + np.exp(-design @ gamma))
        m1, m0 = design @ b1, design @ b0
        term = m1 - m0 + treated * (outcome - m1) / p - (1 - treated) * (outcome - m0) / (1 - p)
        return np.column_stack([k * (term - tau), design * (k * treated * (outcome - m1))[:, None],
                                design * (k * (1 - treated) * (outcome - m0))[:, None], design * (treated - score_of(gamma))[:, None]])

    score_of = (lambda gamma: 1 / (1 + np.exp(-design @ gamma)))
    b1 = np.linalg.lstsq(design[(k * treated) > 0], outcome[(k * treated) > 0], rcond=None)[0]
    b0 = np.linalg.lstsq(design[(k * (1 - treated)) > 0], outcome[(k * (1 - treated)) > 0], rcond=None)[0]
    theta = np.r_[result.estimate, b1, b0, score.coefficients]
    assert np.abs(equations(theta).mean(axis=0)).max() < 1e-9
    assert result.standard_error == pytest.approx(np.sqrt(_numerical_sandwich(equations, theta)[0, 0]), rel=1e-6)


def test_adjusted_intervals_cover_the_true_effect_and_the_naive_difference_is_biased():
    """Simulation (seeds 0..299, n = 1,000): 95% intervals of IPW (ATE, ATT) and AIPW cover the known effect
    in 95% +- 3.8 pp (three binomial standard errors) of samples; the naive difference of means is biased
    upward (the covariates that raise treatment raise the outcome)."""
    hits = {"IPW ATE": 0, "IPW ATT": 0, "AIPW": 0}
    naive, adjusted = [], []
    runs = 300
    for seed in range(runs):
        x, treated, outcome = confounded(seed, n=1000)
        score = propensity_score(treated, x)
        estimates = {"IPW ATE": ipw(outcome, score), "IPW ATT": ipw(outcome, score, "ATT"), "AIPW": aipw(outcome, score)}
        for name, estimate in estimates.items():
            hits[name] += estimate.low <= 2.0 <= estimate.high
        naive.append(outcome[treated == 1].mean() - outcome[treated == 0].mean())
        adjusted.append(estimates["AIPW"].estimate)
    for name, count in hits.items():
        assert abs(count / runs - 0.95) < 0.038, (name, count / runs)
    assert np.mean(naive) - 2.0 > 0.2  # biased: about +0.29 with these coefficients (each estimate's SE ~ 0.07)
    assert abs(np.mean(adjusted) - 2.0) < 0.02


def test_aipw_is_consistent_when_only_the_outcome_model_is_right():
    """Double robustness: a score model missing the confounder's square (wrong) with a right outcome model."""
    rng = np.random.default_rng(7)
    n = 20_000
    x = rng.normal(size=(n, 2))
    treated = (rng.random(n) < 1 / (1 + np.exp(-(0.2 + x[:, 0] + 0.8 * x[:, 0] ** 2 - 1)))).astype(float)
    covariates = np.column_stack([x, x[:, 0] ** 2])
    outcome = 1.5 * treated + covariates @ np.array([1.0, -1.0, 1.0]) + rng.normal(size=n)
    wrong_score = propensity_score(treated, x)  # omits x0^2
    result = aipw(outcome, wrong_score.__class__(wrong_score.coefficients, wrong_score.score,
                                                 np.column_stack([wrong_score.design, x[:, 0] ** 2]), treated))
    assert result.low < 1.5 < result.high
    assert abs(ipw(outcome, wrong_score).estimate - 1.5) > 5 * ipw(outcome, wrong_score).standard_error


def test_an_unknown_estimand_or_trimming_is_refused(reference):
    x, treated, outcome, _ = reference
    score = propensity_score(treated, x)
    with pytest.raises(ValueError, match="estimand must be ATE or ATT"):
        ipw(outcome, score, "ATC")
    with pytest.raises(ValueError, match="trimming must be in"):
        ipw(outcome, score, trim=0.5)
