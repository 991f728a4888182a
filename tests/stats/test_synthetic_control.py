"""Synthetic control estimator: weights against scipy SLSQP on the same data, known-effect recovery (one
treated unit and several), placebo p-value false-positive rate under no effect, coverage of the
test-inversion interval, and the process pool giving the serial answer."""

import numpy as np
from scipy.optimize import minimize

from impactbook.stats.synthetic_control import placebo_fits, simplex_weights, synthetic_control, synthetic_control_panel


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
    for seed in range(10):
        treated, donors = panel(np.random.default_rng(seed), donors=15, periods=25)
        w = simplex_weights(treated[:20], donors[:20])
        reference = slsqp_weights(treated[:20], donors[:20])
        assert abs(w.sum() - 1) < 1e-12 and w.min() >= 0
        assert objective(treated[:20], donors[:20], w) <= objective(treated[:20], donors[:20], reference) + 1e-6
        np.testing.assert_allclose(w, np.clip(reference, 0, None), atol=1e-6)  # measured: 7e-9 at most


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


def test_several_treated_units_average_their_gaps_and_draw_placebo_pairs():
    rng = np.random.default_rng(3)
    donors = rng.normal(size=(40, 12)).cumsum(axis=0) + 50
    mixes = np.zeros((2, 12))
    mixes[0, [1, 4]], mixes[1, [7, 9, 10]] = [0.6, 0.4], [0.2, 0.3, 0.5]
    treated = donors @ mixes.T
    treated[30:] += [4.0, 6.0]
    result = synthetic_control_panel(np.column_stack([treated, donors]), [0, 1], 30)
    np.testing.assert_allclose(result.unit_weights, mixes, atol=1e-6)
    np.testing.assert_allclose(result.weights, mixes.mean(axis=0), atol=1e-6)
    assert abs(result.estimate - 5.0) < 1e-6
    assert result.placebo_draws == 66  # every pair of the 12 donors (Cavallo et al. 2013)
    assert result.p_value == 1 / 67


def test_interval_from_inverting_the_placebo_test_covers_a_known_effect():
    covered, runs = 0, 200
    for seed in range(runs):
        treated, donors = panel(np.random.default_rng(500 + seed), donors=39, periods=24, pre=16, effect=2.0)
        result = synthetic_control(treated, donors, 16, leave_one_out=False)
        covered += result.interval_low <= 2.0 <= result.interval_high
    # exact under exchangeability: 1 - 2/40 = 0.95; binomial(200, 0.95) lower 99.9% bound ~ 0.90
    assert covered >= 181, covered


def test_too_few_placebos_leave_the_interval_unbounded():
    treated, donors = panel(np.random.default_rng(7), donors=19, periods=24, pre=16, effect=2.0)
    result = synthetic_control(treated, donors, 16, leave_one_out=False)
    assert result.interval_low is None and result.interval_high is None  # 20 units cannot reject at 2.5% a tail
    assert result.interval(0.90) != (None, None)


def test_placebos_on_two_processes_equal_the_serial_fits():
    treated, donors = panel(np.random.default_rng(11), donors=30, periods=30, pre=20)
    serial, pooled = placebo_fits(donors, 20), placebo_fits(donors, 20, workers=2)
    for a, b in zip(serial, pooled):
        np.testing.assert_array_equal(a.weights, b.weights)


def test_weights_satisfy_the_optimality_conditions_with_more_donors_than_periods():
    # KKT for min ||y - Xw||^2 on the simplex: the gradient is equal on the support and no smaller off it
    # (the certificate SLSQP cannot give at this size: it needs ~1 min per fit and stops short)
    for seed in range(5):
        treated, donors = panel(np.random.default_rng(900 + seed), donors=200, periods=30, pre=25)
        w = simplex_weights(treated[:25], donors[:25])
        gradient = -2 * donors[:25].T @ (treated[:25] - donors[:25] @ w)
        support, scale = w > 0, np.abs(gradient).max()
        assert abs(w.sum() - 1) < 1e-12 and w.min() >= 0
        assert np.ptp(gradient[support]) / scale < 1e-9
        assert (gradient[~support] - gradient[support].mean()).min() / scale > -1e-9


def test_a_placebo_fitted_exactly_leaves_its_side_of_the_interval_open_instead_of_infinite():
    treated, donors = panel(np.random.default_rng(12), donors=45, periods=24, pre=16, effect=1.0)
    donors[:, 0] = 0.5 * donors[:, 1] + 0.5 * donors[:, 2]  # its placebo fit is exact: pre-RMSPE 0
    donors[16:, 0] += 3.0
    result = synthetic_control(treated, donors, 16, leave_one_out=False)
    assert np.isinf(result.placebo_statistics).sum() == 1
    assert result.interval_low is None and result.interval_high is not None and np.isfinite(result.interval_high)
