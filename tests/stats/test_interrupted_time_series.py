"""stats/interrupted_time_series.py against references on the same data: statsmodels OLS with its own HAC
covariance (segmented regression), a direct statsmodels UnobservedComponents fit and forecast (the
structural counterfactual), statsmodels' simulated forecast paths (the cumulative interval), the
Ljung-Box formula; and simulations on seasonal AR(1) noise for the false-positive rate, coverage and a
known effect."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.sandwich_covariance import cov_hac_simple

from impactbook.stats.interrupted_time_series import (NotEstimable, fourier_terms, forecast_covariance, ljung_box,
                                                      newey_west_lags, placebo_interventions, segmented_regression,
                                                      structural_counterfactual, structural_model)


def _series(pre=200, post=28, effect=0.0, phi=0.5, seed=1, yearly=False, regressor=True):
    """Weekly seasonality (+ a yearly cycle), a trend, AR(1) noise (phi), a regressor with a known slope."""
    rng = np.random.default_rng(seed)
    n = pre + post
    t = np.arange(n)
    spend = 10 + 3 * np.sin(2 * np.pi * t / 45) + rng.normal(0, 1, n)
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = phi * noise[i - 1] + rng.normal(0, 1)
    y = 20 + 0.01 * t + 2 * np.sin(2 * np.pi * t / 7) + np.cos(4 * np.pi * t / 7) + 0.5 * spend + noise
    if yearly:
        y += 3 * np.cos(2 * np.pi * t / 365.25)
    y[pre:] += effect
    return y, (spend[:, None] if regressor else None)


def test_fourier_terms_pair_sines_and_cosines_up_to_half_the_period():
    terms = fourier_terms(np.arange(56), [7, 4], harmonics=3)
    assert terms.shape == (56, 6 + 3)  # 3 pairs for 7; for 4 two harmonics, the second's sine is zero and dropped
    assert np.allclose(terms[:, 0], np.cos(2 * np.pi * np.arange(56) / 7))
    assert np.allclose(terms[:28], terms[28:])  # periodic in 28 = lcm(7, 4)


def test_segmented_regression_matches_statsmodels_ols_with_hac_errors():
    y, spend = _series(effect=1.5)
    pre, lags = 200, 5
    fit = segmented_regression(y, pre, [7], 3, spend, hac_lags=lags, alpha=0.05)
    t = np.arange(len(y), dtype=float)
    after = (t >= pre).astype(float)
    design = np.column_stack([np.ones_like(t), t, after, (t - pre) * after, fourier_terms(t, [7], 3), spend])
    reference = sm.OLS(y, design).fit(cov_type="HAC", cov_kwds={"maxlags": lags}, use_t=True)
    post = np.zeros(design.shape[1])
    post[2], post[3] = 1, np.mean(t[pre:] - pre)
    average = reference.t_test(post)
    assert abs(fit.average_effect - float(average.effect[0])) < 1e-9
    assert abs(fit.average_standard_error - float(average.sd[0][0])) < 1e-9
    assert abs(fit.average_p_value - float(average.pvalue)) < 1e-9
    low, high = average.conf_int(alpha=0.05)[0]
    assert abs(fit.average_low - low) < 1e-9 and abs(fit.average_high - high) < 1e-9
    contrasts = np.zeros((28, design.shape[1]))
    contrasts[:, 2], contrasts[:, 3] = 1, t[pre:] - pre
    pointwise = reference.t_test(contrasts)
    assert np.max(np.abs(fit.effect - pointwise.effect)) < 1e-9
    assert np.max(np.abs(fit.effect_high - fit.effect - (pointwise.conf_int()[:, 1] - pointwise.effect))) < 1e-9
    without = design.copy()
    without[:, 2:4] = 0
    assert np.max(np.abs(fit.counterfactual - without @ reference.params)) < 1e-9
    assert abs(fit.cumulative[-1] - 28 * fit.average_effect) < 1e-9
    assert fit.degrees_of_freedom == reference.df_resid


def test_the_default_lag_is_the_newey_west_rule_statsmodels_uses():
    y, spend = _series(pre=300, post=40, seed=4)
    fit = segmented_regression(y, 300, [7], 3, spend)
    assert f"{newey_west_lags(340)} lags" in fit.method and newey_west_lags(340) == 5
    t = np.arange(340, dtype=float)
    after = (t >= 300).astype(float)
    design = np.column_stack([np.ones_like(t), t, after, (t - 300) * after, fourier_terms(t, [7], 3), spend])
    ols = sm.OLS(y, design).fit()
    covariance = cov_hac_simple(ols, nlags=None, use_correction=False)  # statsmodels' own default lag rule
    contrast = np.zeros(design.shape[1])
    contrast[2], contrast[3] = 1, np.mean(t[300:] - 300)
    assert abs(fit.average_standard_error - np.sqrt(contrast @ covariance @ contrast)) < 1e-9


def _standardized(values, pre):
    center, scale = np.nanmean(values[:pre], axis=0), np.nanstd(values[:pre], axis=0)
    return (values - center) / scale, center, scale


@pytest.mark.parametrize("trend", [False, True])
def test_structural_counterfactual_matches_a_direct_unobserved_components_fit(trend):
    y, spend = _series(pre=240, post=21, effect=2.0, seed=2, yearly=False)
    pre = 240
    fit = structural_counterfactual(y, pre, [7], 3, spend, trend=trend, autoregressive=True)
    # the reference: statsmodels' model written out directly, on the same standardized data
    z, center, scale = _standardized(y, pre)
    x, *_ = _standardized(spend, pre)
    model = sm.tsa.UnobservedComponents(z[:pre], exog=x[:pre], level="lltrend" if trend else "llevel",
                                        autoregressive=1, freq_seasonal=[{"period": 7.0, "harmonics": 3}],
                                        stochastic_freq_seasonal=[False])
    reference = model.fit(maxiter=500, disp=False)  # the same optimizer settings
    forecast = reference.get_forecast(21, exog=x[pre:])
    predicted = center + scale * forecast.predicted_mean
    assert np.max(np.abs(fit.counterfactual[pre:] - predicted)) < 1e-6
    assert np.max(np.abs(fit.effect - (y[pre:] - predicted))) < 1e-6
    low, high = (center + scale * forecast.conf_int(alpha=0.05)).T
    assert np.max(np.abs((y[pre:] - fit.effect_high) - low)) < 1e-6  # effect interval = observed - forecast interval
    assert np.max(np.abs((y[pre:] - fit.effect_low) - high)) < 1e-6
    burn = reference.loglikelihood_burn
    assert np.max(np.abs(fit.counterfactual[burn:pre] - (center + scale * reference.fittedvalues[burn:]))) < 1e-6
    assert np.allclose(np.diag(forecast_covariance(reference, 21)), forecast.var_pred_mean, rtol=1e-9, atol=0)


def test_the_cumulative_interval_matches_simulated_forecast_paths():
    y, spend = _series(pre=180, post=14, seed=3)
    z, *_ = _standardized(y, 180)
    x, *_ = _standardized(spend, 180)
    fitted = structural_model(z[:180], [7], 3, x[:180], False, True).fit(maxiter=500, disp=False)
    covariance = forecast_covariance(fitted, 14)
    # statsmodels draws the state at the end of the sample from its predicted distribution, then the shocks
    paths = fitted.simulate(14, anchor="end", repetitions=40_000, exog=x[180:],
                            rng=np.random.default_rng(11)).reshape(14, -1)
    simulated = np.var(paths.sum(axis=0))
    assert abs(simulated / covariance.sum() - 1) < 0.035  # 40,000 draws: the variance's relative sd is 0.7%
    assert np.allclose(np.diag(np.cov(paths)), np.diag(covariance), rtol=0.035)


def test_ljung_box_matches_statsmodels():
    from statsmodels.stats.diagnostic import acorr_ljungbox

    residuals = np.random.default_rng(5).normal(size=150)
    residuals[1:] += 0.3 * residuals[:-1]
    for lags in (1, 10, 30):
        statistic, p_value = ljung_box(residuals, lags)
        reference = acorr_ljungbox(residuals, lags=[lags])
        assert abs(statistic - reference.lb_stat.iloc[0]) < 1e-9
        assert abs(p_value - reference.lb_pvalue.iloc[0]) < 1e-12
    with pytest.raises(NotEstimable, match="150 residuals cannot carry a Ljung-Box test over 150 lags"):
        ljung_box(residuals, 150)


def test_relative_effect_is_the_cumulative_effect_over_the_cumulative_counterfactual():
    y, spend = _series(effect=1.0, seed=6)
    for fit in (segmented_regression(y, 200, [7], 3, spend), structural_counterfactual(y, 200, [7], 3, spend)):
        assert abs(fit.relative_effect - fit.cumulative[-1] / fit.counterfactual[200:].sum()) < 1e-12
        assert fit.level == 0.95 and fit.method


def test_a_known_effect_is_recovered_by_both_estimators():
    y, spend = _series(pre=364, post=28, effect=1.5, seed=8, yearly=True)
    for estimator in (segmented_regression, structural_counterfactual):
        fit = estimator(y, 364, [7, 365.25], 3, spend)
        assert fit.average_low < 1.5 < fit.average_high and fit.average_p_value < 0.01, estimator.__name__


def test_without_the_regressor_a_campaign_in_the_post_period_is_credited_to_the_change():
    y, spend = _series(pre=200, post=28, seed=9)
    spend = spend.copy()
    spend[200:] += 12  # a campaign starts with the change: the outcome follows spend (slope 0.5)
    y = y + 0.5 * np.r_[np.zeros(200), np.full(28, 12.0)]
    adjusted = structural_counterfactual(y, 200, [7], 3, spend)
    ignored = structural_counterfactual(y, 200, [7], 3, None)
    assert adjusted.average_low < 0 < adjusted.average_high
    assert ignored.average_low > 0 and ignored.average_effect > 4


def _a_a(estimator, draws, seed, pre=150, post=21, phi=0.5):
    """(rejections at alpha 0.05, intervals covering zero) over `draws` series without an effect."""
    rejected = covered = 0
    for draw in range(draws):
        y, spend = _series(pre=pre, post=post, seed=seed + draw, phi=phi)
        fit = estimator(y, pre, [7], 3, spend)
        rejected += fit.average_p_value < 0.05
        covered += fit.average_low <= 0 <= fit.average_high
    return rejected, covered


def _within_alpha(rejected, draws):
    low, high = stats.binomtest(rejected, draws).proportion_ci(0.95, method="exact")
    assert low <= 0.05, f"false-positive rate {rejected / draws:.3f} (95% CI {low:.3f}-{high:.3f}) is above alpha"


def test_structural_false_positive_rate_is_within_alpha_on_seasonal_ar1_noise():
    """A/A: no effect, weekly seasonality, AR(1) noise (phi 0.5), 150 + 21 periods; 120 draws (seeds 1000+).
    Adding a known effect to the post-period shifts the estimate by exactly that effect and leaves its
    error alone (test below), so the coverage of a true effect is the coverage of zero here."""
    rejected, covered = _a_a(structural_counterfactual, 120, seed=1000)
    _within_alpha(rejected, 120)
    assert covered == 120 - rejected  # the interval and the test agree


def test_segmented_false_positive_rate_is_within_alpha_with_a_long_post_period():
    """Newey-West errors are a large-sample answer: on white seasonal noise with 200 post periods the
    test holds its level (300 draws, seeds 5000+)."""
    rejected, covered = _a_a(segmented_regression, 300, seed=5000, pre=400, post=200, phi=0.0)
    _within_alpha(rejected, 300)
    assert covered == 300 - rejected


def test_placebos_measure_the_liberal_segmented_test_on_a_short_autocorrelated_series():
    """With 21 post periods and AR(1) noise (phi 0.5) the HAC test rejects far too often (the post
    residuals sum to zero, so the lagged terms shrink the variance; Turner et al. 2021, J Clin Epidemiol
    137:90-101, see the same): the placebo interventions see it, which is what the placebo diagnostic is
    for. 100 draws (seeds 1000+)."""
    rejected, placebo_rates = 0, []
    for draw in range(100):
        y, spend = _series(pre=150, post=21, seed=1000 + draw)
        rejected += segmented_regression(y, 150, [7], 3, spend).average_p_value < 0.05
        placebo_rates.append(placebo_interventions(segmented_regression, y, 150, 6, spend, seasonal_periods=[7],
                                                   harmonics=3).false_positive_rate)
    low, high = stats.binomtest(rejected, 100).proportion_ci(0.99, method="exact")
    assert low > 0.05  # liberal, and known to be
    assert low <= float(np.mean(placebo_rates)) <= high  # the placebos estimate the real false-positive rate


def test_effects_shift_by_exactly_the_added_effect():
    y, spend = _series(seed=21)
    shifted = y + np.r_[np.zeros(200), np.full(28, 0.7)]
    for estimator in (segmented_regression, structural_counterfactual):
        base, moved = estimator(y, 200, [7], 3, spend), estimator(shifted, 200, [7], 3, spend)
        assert abs(moved.average_effect - base.average_effect - 0.7) < 1e-6
        assert abs(moved.average_standard_error - base.average_standard_error) < 1e-6


def test_placebos_sit_in_the_second_half_of_the_pre_period_with_the_real_post_length():
    y, spend = _series(pre=200, post=28, seed=12)
    summary = placebo_interventions(segmented_regression, y, 200, 5, spend, seasonal_periods=[7], harmonics=3)
    positions = [p.intervention for p in summary.placebos]
    assert positions == [100, 118, 136, 154, 172] and summary.post_periods == 28
    assert summary.false_positive_rate == sum(p.p_value < 0.05 for p in summary.placebos) / 5


def test_too_short_a_pre_period_is_not_estimable():
    y, spend = _series(pre=10, post=5)
    with pytest.raises(NotEstimable, match="pre-period values"):
        structural_counterfactual(y, 10, [7], 3, spend)
    with pytest.raises(NotEstimable, match="inside the series"):
        segmented_regression(y, 15, [7], 3, spend)
