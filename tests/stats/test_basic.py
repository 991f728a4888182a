"""stats/basic.py against scipy and statsmodels on the same data (1e-9), and seeded simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats import proportion as sm_proportion

from impactbook.stats import (SampleMean, non_inferiority_verdict, proportion_difference, srm_test,
                              superiority_verdict, welch_difference)


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
    verdict, low, high = non_inferiority_verdict(effect(0.01, 0.01, 1, 0), "increase", -0.05, 0.05)
    assert (low, high) == (pytest.approx(0.01 - z * 0.01), pytest.approx(0.01 + z * 0.01))
