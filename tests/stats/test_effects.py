"""stats/effects.py and friends against scipy and statsmodels on the same data (1e-9), and seeded
simulations (binomial tolerances of 3 standard errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats import proportion as sm_proportion

from impactbook.stats import (NotEstimable, RatioStatistic, RegressionStatistic, SampleMean, achieved_power,
                              adjust_p_values,
                              cochran_q, cuped_difference, non_inferiority, non_inferiority_verdict,
                              proportion_difference, ratio_difference, srm_test, superiority_verdict,
                              welch_difference)


def test_welch_matches_scipy():
    rng = np.random.default_rng(1)
    control, treatment = rng.lognormal(1, 0.8, 3000), rng.lognormal(1.05, 0.9, 2500)
    effect = welch_difference(SampleMean.of(control), SampleMean.of(treatment), alpha=0.05)
    reference = sps.ttest_ind(treatment, control, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert effect.statistic == pytest.approx(reference.statistic, abs=1e-9)
    assert effect.p_value == pytest.approx(reference.pvalue, abs=1e-9)
    assert effect.difference_low == pytest.approx(interval.low, abs=1e-9)
    assert effect.difference_high == pytest.approx(interval.high, abs=1e-9)


def test_proportions_match_statsmodels():
    rng = np.random.default_rng(2)
    control, treatment = (rng.random(40_000) < 0.10).astype(float), (rng.random(41_000) < 0.107).astype(float)
    effect = proportion_difference(SampleMean.of(control), SampleMean.of(treatment), alpha=0.05)
    reference = sm_proportion.test_proportions_2indep(treatment.sum(), len(treatment), control.sum(), len(control),
                                        method="wald", compare="diff", correction=False)
    low, high = sm_proportion.confint_proportions_2indep(treatment.sum(), len(treatment), control.sum(), len(control),
                                           method="wald", compare="diff", alpha=0.05)
    assert effect.statistic == pytest.approx(reference.statistic, abs=1e-9)
    assert effect.p_value == pytest.approx(reference.pvalue, abs=1e-9)
    assert (effect.difference_low, effect.difference_high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))


def test_srm_matches_scipy_chisquare():
    result = srm_test({"control": 50_400, "treatment": 49_600}, {"control": 0.5, "treatment": 0.5})
    reference = sps.chisquare([50_400, 49_600])
    assert result.statistic == pytest.approx(reference.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(reference.pvalue, abs=1e-9)
    assert result.mismatch == bool(reference.pvalue < 0.001)
    assert srm_test({"control": 51_000, "treatment": 49_000}, {"control": 0.5, "treatment": 0.5}).mismatch


def test_sufficient_statistics_add_across_segments():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=100), rng.normal(size=80)
    combined = SampleMean.of(a) + SampleMean.of(b)
    assert combined.mean == pytest.approx(np.concatenate([a, b]).mean(), abs=1e-12)
    assert combined.variance == pytest.approx(np.concatenate([a, b]).var(ddof=1), abs=1e-12)


def test_relative_interval_covers_the_true_lift():
    """Simulation (seed 4, 1000 experiments): 95% delta-method intervals for the relative lift cover
    the true +5% lift within binomial error of 95% (3 standard errors)."""
    rng = np.random.default_rng(4)
    simulations, covered = 1000, 0
    for _ in range(simulations):
        control = rng.exponential(10.0, 2000)
        treatment = rng.exponential(10.5, 2000)
        effect = welch_difference(SampleMean.of(control), SampleMean.of(treatment))
        covered += effect.relative_low <= 0.05 <= effect.relative_high
    tolerance = 3 * math.sqrt(0.95 * 0.05 / simulations)
    assert abs(covered / simulations - 0.95) < tolerance


def test_aa_false_positive_rate_is_alpha():
    """Simulation (seed 5, 2000 A/A experiments): the proportion test rejects at rate alpha within
    3 binomial standard errors."""
    rng = np.random.default_rng(5)
    simulations, alpha = 2000, 0.05
    rejections = 0
    for _ in range(simulations):
        control = SampleMean(5000, float(rng.binomial(5000, 0.1)), 0.0)
        treatment = SampleMean(5000, float(rng.binomial(5000, 0.1)), 0.0)
        rejections += proportion_difference(control, treatment, alpha).p_value < alpha
    assert abs(rejections / simulations - alpha) < 3 * math.sqrt(alpha * (1 - alpha) / simulations)


def test_verdict_rules():
    def effect(relative, se, p, diff):
        base = welch_difference(SampleMean(100, 100.0, 200.0), SampleMean(100, 110.0, 230.0))
        return base.__class__(**{**base.as_dict(), "relative": relative, "relative_se": se, "p_value": p,
                                 "difference": diff})
    assert superiority_verdict(effect(0.05, 0.01, 0.001, 1.0), "increase", 0.05) == "CONFIRMED"
    assert superiority_verdict(effect(-0.05, 0.01, 0.001, -1.0), "increase", 0.05) == "REFUTED"
    assert superiority_verdict(effect(-0.05, 0.01, 0.001, -1.0), "decrease", 0.05) == "CONFIRMED"
    assert superiority_verdict(effect(0.05, 0.01, 0.2, 1.0), "increase", 0.05) == "INCONCLUSIVE"
    z = sps.norm.ppf(0.95)
    assert non_inferiority_verdict(effect(0.0, 0.005, 1, 0), "increase", -0.02, 0.05)[0] == "CONFIRMED"
    assert non_inferiority_verdict(effect(-0.05, 0.005, 0, -1), "increase", -0.02, 0.05)[0] == "REFUTED"
    assert non_inferiority_verdict(effect(-0.02, 0.005, 0, -1), "increase", -0.02, 0.05)[0] == "INCONCLUSIVE"
    # lower is better (e.g. latency): a 5% rise breaches a 2% margin
    assert non_inferiority_verdict(effect(0.05, 0.005, 0, 1), "decrease", -0.02, 0.05)[0] == "REFUTED"
    welch = effect(0.01, 0.01, 1, 0)  # Welch's t: the one-sided interval takes its t quantile
    t = sps.t(welch.df).ppf(0.95)
    verdict, low, high = non_inferiority_verdict(welch, "increase", -0.05, 0.05)
    assert (low, high) == (pytest.approx(0.01 - t * 0.01, abs=1e-12), pytest.approx(0.01 + t * 0.01, abs=1e-12))
    wald = proportion_difference(SampleMean(1000, 100.0, 100.0), SampleMean(1000, 110.0, 110.0))
    verdict, low, high = non_inferiority_verdict(wald, "increase", -0.5, 0.05)
    assert (low, high) == (pytest.approx(wald.relative - z * wald.relative_se, abs=1e-12),
                           pytest.approx(wald.relative + z * wald.relative_se, abs=1e-12))


def test_relative_interval_covers_at_the_nominal_rate_in_small_samples():
    # Simulation, seed 10: 20,000 A/A experiments with 15 + 15 normal units (mean 10, sd 3). The relative
    # interval takes Welch's t quantile like the absolute one; coverage within 3 binomial SEs of 95%.
    rng = np.random.default_rng(10)
    draws, covered = 20_000, 0
    for _ in range(draws):
        a, b = rng.normal(10, 3, 15), rng.normal(10, 3, 15)
        effect = welch_difference(SampleMean.of(a), SampleMean.of(b), 0.05)
        covered += effect.relative_low <= 0.0 <= effect.relative_high
    assert abs(covered / draws - 0.95) < 3 * math.sqrt(0.95 * 0.05 / draws), covered / draws


def test_an_undefined_effect_says_why_instead_of_crashing():
    zero_control = welch_difference(SampleMean(10, 0.0, 0.0), SampleMean(10, 5.0, 5.0))
    assert zero_control.relative is None and "control mean is 0" in zero_control.note
    assert zero_control.difference == 0.5
    with pytest.raises(NotEstimable, match="no variation in either arm"):
        welch_difference(SampleMean(10, 0.0, 0.0), SampleMean(10, 0.0, 0.0))
    with pytest.raises(NotEstimable, match="too few units"):
        welch_difference(SampleMean(1, 3.0, 9.0), SampleMean(10, 5.0, 5.0))
    ni = non_inferiority(zero_control, "increase", -0.02, 0.05)
    assert ni.verdict == "INCONCLUSIVE" and "needs a relative effect" in ni.note


def _regression(post, pre):
    return RegressionStatistic(SampleMean.of(post), SampleMean.of(pre), math.fsum(a * b for a, b in zip(post, pre)))


def test_cuped_estimate_equals_ols_treatment_coefficient():
    """Reference: statsmodels OLS of y on [1, T, x - mean(x)]; the coefficient on T is the CUPED estimate."""
    import statsmodels.api as sm
    rng = np.random.default_rng(6)
    n_c, n_t = 3000, 3200
    pre = rng.gamma(2.0, 5.0, n_c + n_t)
    treated = np.r_[np.zeros(n_c), np.ones(n_t)]
    post = 2 + 0.8 * pre + 0.7 * treated + rng.normal(0, 3, n_c + n_t)
    effect = cuped_difference(_regression(post[:n_c], pre[:n_c]), _regression(post[n_c:], pre[n_c:]))
    design = sm.add_constant(np.column_stack([treated, pre - pre.mean()]))
    ols = sm.OLS(post, design).fit()
    assert effect.difference == pytest.approx(ols.params[1], abs=1e-9)
    assert effect.theta == pytest.approx(ols.params[2], abs=1e-9)
    assert effect.standard_error == pytest.approx(ols.HC0_se[1], rel=2e-3)  # same model, different variance estimator
    assert 0.5 < effect.variance_reduction < 1


def test_ratio_delta_method_matches_linearisation():
    """Reference: the delta-method variance equals var(num - R den) / (n mean(den)^2), computed with numpy."""
    rng = np.random.default_rng(7)
    den = rng.poisson(3, 5000) + 1.0
    num = den * rng.gamma(2, 2, 5000)
    statistic = RatioStatistic(SampleMean.of(num), SampleMean.of(den), math.fsum(num * den))
    ratio = num.sum() / den.sum()
    expected = np.var(num - ratio * den, ddof=1) / den.mean() ** 2
    estimate = statistic.estimate()
    assert estimate.mean == pytest.approx(ratio, abs=1e-12)
    assert estimate.variance == pytest.approx(expected, rel=1e-9)


def test_one_sided_p_values_match_scipy():
    rng = np.random.default_rng(8)
    control, treatment = rng.normal(10, 2, 400), rng.normal(10.2, 2.5, 380)
    effect = welch_difference(SampleMean.of(control), SampleMean.of(treatment))
    greater = sps.ttest_ind(treatment, control, equal_var=False, alternative="greater").pvalue
    less = sps.ttest_ind(treatment, control, equal_var=False, alternative="less").pvalue
    assert effect.p_value_greater == pytest.approx(greater, abs=1e-9)
    assert effect.p_value_less == pytest.approx(less, abs=1e-9)


def test_multiple_testing_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests
    p_values = [0.01, 0.04, 0.03, 0.2, 0.005]
    for method, reference in (("holm", "holm"), ("bh", "fdr_bh")):
        assert adjust_p_values(p_values, method) == pytest.approx(list(multipletests(p_values, method=reference)[1]),
                                                                    abs=1e-12)
    # Holm by hand: sorted p * (m - rank), made monotone
    assert adjust_p_values([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    rng = np.random.default_rng(8671)  # ours is statsmodels' arithmetic without its gc.collect(): equal to the bit
    for m in (1, 2, 7, 40):
        for p in (rng.uniform(0, 1, m), rng.uniform(0, 0.02, m), np.round(rng.uniform(0, 1, m), 1)):  # (ties too)
            assert adjust_p_values(list(p), "holm") == list(multipletests(p, method="holm")[1])
    assert adjust_p_values(p_values, "none") == p_values


def test_cochran_q_matches_statsmodels_meta_analysis():
    from statsmodels.stats.meta_analysis import combine_effects
    estimates, ses = [0.10, 0.22, 0.35, 0.05], [0.05, 0.08, 0.07, 0.06]
    result = cochran_q(estimates, ses)
    reference = combine_effects(np.array(estimates), np.array(ses) ** 2)
    assert result.q == pytest.approx(reference.q, abs=1e-9)
    assert result.i_squared == pytest.approx(reference.i2, abs=1e-9)
    assert result.p_value == pytest.approx(sps.chi2.sf(reference.q, 3), abs=1e-12)


def test_power_matches_statsmodels():
    from statsmodels.stats.power import NormalIndPower
    sigma, n, mean, relative = 4.0, 2500, 20.0, 0.02
    se = sigma * math.sqrt(2 / n)
    power = achieved_power(mean, se, n, relative, 0.05, 0.8)
    reference = NormalIndPower()
    assert power.achieved_power == pytest.approx(reference.power(relative * mean / sigma, n, 0.05, ratio=1), abs=1e-9)
    needed = reference.solve_power(relative * mean / sigma, alpha=0.05, power=0.8, ratio=1)
    assert power.units_per_arm_needed == math.ceil(needed - 1e-6)
    assert achieved_power(mean, se, n, power.minimum_detectable_relative_effect, 0.05).achieved_power == pytest.approx(
        0.8, abs=1e-3)


def test_non_inferiority_with_an_absolute_margin():
    # Reference: H0 "harm of at least 1" is Welch's one-sided t test of treatment + 1 against control (scipy).
    rng = np.random.default_rng(9)
    control, treatment = rng.normal(100, 10, 5000), rng.normal(99.8, 10, 5000)
    effect = welch_difference(SampleMean.of(control), SampleMean.of(treatment))
    result = non_inferiority(effect, "increase", -1.0, 0.05, "absolute")
    assert result.verdict == "CONFIRMED" and result.low > -1.0
    reference = sps.ttest_ind(treatment + 1.0, control, equal_var=False, alternative="greater").pvalue
    assert result.p_value == pytest.approx(reference, abs=1e-9)
    assert non_inferiority(effect, "increase", -0.01, 0.05, "absolute").verdict in ("INCONCLUSIVE", "REFUTED")


def test_cuped_is_unbiased_reduces_variance_and_keeps_alpha():
    """Simulation (seed 10, 1500 experiments, n = 400 per arm, corr(x, y) ~ 0.8, true effect 0.5): the
    mean CUPED estimate is within 3 Monte Carlo SEs of 0.5; its variance is below the unadjusted
    estimate's; 95% intervals cover 0.5 at 95% within binomial error; with no effect (A/A) it
    rejects at alpha within binomial error."""
    rng = np.random.default_rng(10)
    sims, n = 1500, 400
    adjusted, raw, covered, rejections = [], [], 0, 0
    for _ in range(sims):
        pre_c, pre_t = rng.normal(10, 3, n), rng.normal(10, 3, n)
        y_c = pre_c + rng.normal(0, 2.2, n)
        y_t = pre_t + 0.5 + rng.normal(0, 2.2, n)
        effect = cuped_difference(_regression(y_c, pre_c), _regression(y_t, pre_t))
        adjusted.append(effect.difference)
        raw.append(y_t.mean() - y_c.mean())
        covered += effect.difference_low <= 0.5 <= effect.difference_high
        aa = cuped_difference(_regression(y_c, pre_c), _regression(y_t - 0.5, pre_t))
        rejections += aa.p_value < 0.05
    assert abs(np.mean(adjusted) - 0.5) < 3 * np.std(adjusted) / math.sqrt(sims)
    assert np.var(adjusted) < 0.6 * np.var(raw)
    tolerance = 3 * math.sqrt(0.05 * 0.95 / sims)
    assert abs(covered / sims - 0.95) < tolerance
    assert abs(rejections / sims - 0.05) < tolerance


def test_ratio_interval_covers_the_true_ratio_difference():
    """Simulation (seed 11, 1000 experiments): revenue per session with sessions ~ 1 + Poisson(2),
    revenue per session ~ Gamma; treatment multiplies revenue by 1.05. Delta-method 95% intervals
    cover the true difference within binomial error."""
    rng = np.random.default_rng(11)
    sims, n, covered = 1000, 1500, 0
    true_c, true_t = 4.0, 4.2
    for _ in range(sims):
        arms = []
        for rate in (true_c, true_t):
            sessions = 1.0 + rng.poisson(2, n)
            revenue = sessions * rng.gamma(2.0, rate / 2.0, n)
            arms.append(RatioStatistic(SampleMean.of(revenue), SampleMean.of(sessions), math.fsum(revenue * sessions)))
        effect = ratio_difference(*arms)
        covered += effect.difference_low <= true_t - true_c <= effect.difference_high
    assert abs(covered / sims - 0.95) < 3 * math.sqrt(0.05 * 0.95 / sims)
