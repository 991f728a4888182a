"""stats/stratified.py: the stratified difference equals OLS with stratum fixed effects (statsmodels), its
variance and relative effect equal a saturated statsmodels regression's heteroskedasticity-robust
contrast, one stratum reduces to the two-sample test, and a shared time trend cancels where pooling
mistakes it for an effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from impactbook.stats import SampleMean, Stratum, stratified_effect, welch_difference


def _panel(rng, days=6, trend=0.4, effect=0.3):
    """Unequal arm sizes per day (a ramp), a baseline that rises by `trend` a day, unequal variances."""
    frames = []
    for day in range(days):
        n_control, n_treatment = 400 - 40 * day, 30 + 50 * day
        for arm, n, sd in (("control", n_control, 1.0), ("treatment", n_treatment, 1.6)):
            y = rng.normal(10 + trend * day + effect * (arm == "treatment"), sd, n)
            frames.append(pd.DataFrame({"day": day, "treated": int(arm == "treatment"), "y": y}))
    return pd.concat(frames, ignore_index=True)


def _strata(frame):
    strata = []
    for _, day in frame.groupby("day"):
        arms = [SampleMean.of(day.y[day.treated == t]).estimate() for t in (0, 1)]
        strata.append(Stratum(*arms))
    return strata


def test_difference_equals_ols_with_stratum_fixed_effects():
    frame = _panel(np.random.default_rng(3))
    fit = smf.ols("y ~ treated + C(day)", frame).fit()
    assert stratified_effect(_strata(frame)).difference == pytest.approx(fit.params["treated"], rel=0, abs=1e-9)


def test_variance_and_relative_effect_equal_a_robust_saturated_regression():
    """Cell means from y ~ 0 + C(day):C(treated) with HC2 (per cell s^2/n, Welch's variance); the same
    precision-weighted contrast, and the delta method on statsmodels' covariance for the relative effect."""
    frame = _panel(np.random.default_rng(5))
    fit = smf.ols("y ~ 0 + C(day):C(treated)", frame).fit(cov_type="HC2")
    days = sorted(frame.day.unique())
    names = list(fit.params.index)
    sizes = frame.groupby(["day", "treated"]).size()
    weights = np.array([sizes[d, 0] * sizes[d, 1] / (sizes[d, 0] + sizes[d, 1]) for d in days])
    weights /= weights.sum()
    difference, control = np.zeros(len(names)), np.zeros(len(names))
    for w, d in zip(weights, days):
        difference[names.index(f"C(day)[{d}]:C(treated)[1]")] += w
        difference[names.index(f"C(day)[{d}]:C(treated)[0]")] -= w
        control[names.index(f"C(day)[{d}]:C(treated)[0]")] += w
    contrast = fit.t_test(difference)
    ours = stratified_effect(_strata(frame))
    assert ours.difference == pytest.approx(float(contrast.effect[0]), abs=1e-9)
    assert ours.standard_error == pytest.approx(float(contrast.sd[0, 0]), rel=1e-9)
    params, cov = fit.params.to_numpy(), fit.cov_params().to_numpy()
    d, m = difference @ params, control @ params
    gradient = difference / m - d / m**2 * control  # of D / m_c
    assert ours.relative == pytest.approx(d / m, rel=1e-12)
    assert ours.relative_se == pytest.approx(float(np.sqrt(gradient @ cov @ gradient)), rel=1e-9)


def test_one_stratum_is_the_two_sample_comparison():
    rng = np.random.default_rng(8)
    control, treatment = SampleMean.of(rng.normal(5, 1, 300)), SampleMean.of(rng.normal(5.4, 2, 200))
    ours = stratified_effect([Stratum(control.estimate(), treatment.estimate())])
    reference = welch_difference(control, treatment)
    assert ours.difference == pytest.approx(reference.difference, rel=1e-12)
    assert ours.standard_error == pytest.approx(reference.standard_error, rel=1e-12)
    assert ours.relative == pytest.approx(reference.relative, rel=1e-12)
    assert ours.relative_se == pytest.approx(reference.relative_se, rel=1e-12)
    assert ours.effective_units == pytest.approx(4 * 300 * 200 / 500)


def test_a_shared_trend_cancels_within_strata_and_biases_the_pooled_comparison():
    """No effect, exposure ramping while the baseline rises in both arms (300 simulations): the stratified
    z statistics stay centred on 0 with unit spread; the pooled comparison of the same data is shifted far
    from 0 (Simpson's paradox), so this test fails if stratification is lost."""
    rng = np.random.default_rng(11)
    stratified, pooled = [], []
    for _ in range(300):
        frame = _panel(rng, trend=0.4, effect=0.0)
        effect = stratified_effect(_strata(frame))
        stratified.append(effect.difference / effect.standard_error)
        whole = welch_difference(SampleMean.of(frame.y[frame.treated == 0]), SampleMean.of(frame.y[frame.treated == 1]))
        pooled.append(whole.difference / whole.standard_error)
    assert abs(np.mean(stratified)) < 0.2 and 0.85 < np.std(stratified) < 1.15
    assert np.mean(pooled) > 5
