"""Synthetic control estimator: weights against scipy SLSQP on the same data, known-effect recovery,
placebo p-value false-positive rate under no effect."""

import numpy as np
from scipy.optimize import minimize

from impactbook.stats.synthetic_control import simplex_weights, synthetic_control


def panel(rng, donors=20, periods=30, effect=0.0, pre=20):
    factors = rng.normal(size=(periods, 3)).cumsum(axis=0)
    loadings = rng.uniform(0.5, 1.5, size=(3, donors + 1))
    y = factors @ loadings + rng.normal(scale=0.3, size=(periods, donors + 1))
    y[pre:, 0] += effect
    return y[:, 0], y[:, 1:]


def slsqp_weights(treated, donors):
    n = donors.shape[1]
    result = minimize(lambda w: np.sum((treated - donors @ w) ** 2), np.full(n, 1 / n),
                      jac=lambda w: -2 * donors.T @ (treated - donors @ w), method="SLSQP",
                      bounds=[(0, 1)] * n, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                      options={"ftol": 1e-15, "maxiter": 1000})
    return result.x


def objective(treated, donors, w):
    return float(np.sum((treated - donors @ w) ** 2))


def test_weights_match_scipy_slsqp():
    for seed in range(5):
        treated, donors = panel(np.random.default_rng(seed), donors=15, periods=25)
        w = simplex_weights(treated[:20], donors[:20])
        reference = slsqp_weights(treated[:20], donors[:20])
        assert abs(w.sum() - 1) < 1e-12 and w.min() >= 0
        assert objective(treated[:20], donors[:20], w) <= objective(treated[:20], donors[:20], reference) + 1e-6
        np.testing.assert_allclose(w, np.clip(reference, 0, None), atol=1e-4)


def test_recovers_a_known_effect_when_treated_is_a_donor_mix():
    rng = np.random.default_rng(2)
    donors = rng.normal(size=(40, 12)).cumsum(axis=0) + 50
    true_w = np.zeros(12)
    true_w[[1, 4, 7]] = [0.5, 0.3, 0.2]
    treated = donors @ true_w
    treated[30:] += 5.0
    result = synthetic_control(treated, donors, pre_periods=30)
    np.testing.assert_allclose(result.weights, true_w, atol=1e-6)
    assert abs(result.estimate - 5.0) < 1e-6
    assert result.p_value == 1 / 13
    assert set(result.leave_one_out_estimates) == {1, 4, 7}


def test_placebo_p_value_false_positive_rate_under_no_effect():
    rejections = 0
    runs = 200
    for seed in range(runs):
        treated, donors = panel(np.random.default_rng(100 + seed), donors=19, periods=24, pre=16)
        rejections += synthetic_control(treated, donors, 16, leave_one_out=False).p_value <= 0.1
    # exact rank test: P(p <= 0.1) = 2/20 under exchangeability; binomial(200, 0.1) upper 99.9% ~ 34
    assert rejections <= 34
