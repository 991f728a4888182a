"""E-values against the worked example of VanderWeele & Ding (2017) and the evalues.MD formula;
Rosenbaum bounds against Rosenbaum (2002)'s lead-exposure pairs and scipy's signed-rank test at Gamma = 1."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from impactbook.stats.sensitivity import (e_value, e_value_difference, e_value_proportion, e_value_risk_ratio,
                                         rosenbaum_bounds,
                                          rosenbaum_upper_p_value)

# Morton et al. (1982) blood lead (ug/dl) of 33 exposed children and their matched controls, as in
# Rosenbaum (2002, Observational Studies, §4.3.3) and the rbounds package's psens example.
EXPOSED = np.array([38, 23, 41, 18, 37, 36, 23, 62, 31, 34, 24, 14, 21, 17, 16, 20, 15, 10, 45, 39, 22, 35, 49, 48,
                    44, 35, 43, 39, 34, 13, 73, 25, 27])
CONTROL = np.array([16, 18, 18, 24, 19, 11, 10, 15, 16, 18, 18, 13, 19, 10, 16, 16, 24, 13, 9, 14, 21, 19, 7, 18,
                    19, 12, 11, 22, 25, 16, 13, 11, 13])


def test_e_value_of_the_papers_worked_example():
    """VanderWeele & Ding (2017): RR 3.9 (95% CI 1.8 to 8.7) gives E-values 7.26 and 3.0."""
    result = e_value_risk_ratio(3.9, 1.8, 8.7)
    assert result.estimate == pytest.approx(3.9 + math.sqrt(3.9 * 2.9)) and round(result.estimate, 2) == 7.26
    assert result.interval == pytest.approx(3.0)


def test_protective_ratios_are_inverted_and_an_interval_covering_the_null_has_e_value_one():
    assert e_value(0.5) == pytest.approx(e_value(2.0)) == pytest.approx(2 + math.sqrt(2))
    assert e_value_risk_ratio(0.5, 0.3, 0.8).interval == pytest.approx(e_value(1 / 0.8))
    assert e_value_risk_ratio(1.3, 0.9, 1.8).interval == 1.0


def test_e_value_of_a_mean_difference_uses_exp_091_d():
    """evalues.MD: d = 0.5 (SD units) -> RR = exp(0.455) = 1.576, E = RR + sqrt(RR (RR - 1)) = 2.529."""
    result = e_value_difference(5.0, 3.04, 6.96, outcome_sd=10.0)
    rr = math.exp(0.91 * 0.5)
    assert result.risk_ratio == pytest.approx(rr) and result.estimate == pytest.approx(rr + math.sqrt(rr * (rr - 1)))
    assert round(result.estimate, 3) == 2.529
    assert result.interval == pytest.approx(e_value(math.exp(0.91 * 0.304)))
    with pytest.raises(ValueError, match="must be positive"):
        e_value_difference(1, 0, 2, outcome_sd=0)


def test_rosenbaum_bounds_reproduce_the_lead_example():
    """Rosenbaum (2002), Table 4.3: upper bounds 0.0018, 0.0136 and 0.0388 at Gamma = 2, 3, 4 (to the
    table's four decimals); the bound crosses 0.05 between Gamma 4 and 5."""
    result = rosenbaum_bounds(EXPOSED - CONTROL, gammas=(1, 2, 3, 4, 5))
    upper = [round(b.upper_p_value, 4) for b in result.bounds]
    assert upper[0] < 0.0001 and upper[1:4] == [0.0018, 0.0136, 0.0388]
    assert 4 < result.critical_gamma < 5
    assert rosenbaum_upper_p_value(EXPOSED - CONTROL, result.critical_gamma) == pytest.approx(0.05, abs=1e-9)
    assert result.pairs == 32  # one pair has no difference


def test_at_gamma_one_the_bound_is_scipys_signed_rank_test_with_pratts_zeros():
    rng = np.random.default_rng(0)
    differences = np.round(rng.normal(0.3, 1, size=60), 1)  # rounded: ties and zeros
    expected = sps.wilcoxon(differences, zero_method="pratt", alternative="greater", method="approx",
                            correction=False).pvalue
    assert rosenbaum_upper_p_value(differences, 1.0) == pytest.approx(expected, rel=1e-9)
    assert rosenbaum_upper_p_value(EXPOSED - CONTROL, 1.0) == pytest.approx(
        sps.wilcoxon(EXPOSED - CONTROL, zero_method="pratt", alternative="greater", method="approx",
                     correction=False).pvalue, rel=1e-9)


def test_no_evidence_means_a_critical_gamma_of_one():
    assert rosenbaum_bounds(np.array([1.0, -2.0, 3.0, -4.0, 0.5])).critical_gamma == 1.0
    tied = rosenbaum_bounds(np.zeros(10))  # e.g. a rare binary outcome: every pair equal
    assert tied.critical_gamma == 1.0 and tied.pairs == 0 and all(b.upper_p_value == 1.0 for b in tied.bounds)


def test_e_value_of_a_risk_difference_goes_through_the_risk_ratio():
    """Risks 0.15 treated vs 0.10 counterfactual: RR 1.5, E = 1.5 + sqrt(1.5 x 0.5) = 2.366 (VanderWeele & Ding)."""
    result = e_value_proportion(0.05, 0.02, 0.08, control_risk=0.10)
    assert result.risk_ratio == pytest.approx(1.5, rel=1e-12)
    assert result.estimate == pytest.approx(1.5 + math.sqrt(0.75), rel=1e-12)
    assert result.interval == pytest.approx(e_value(1.2), rel=1e-12)  # the lower bound, 0.12 / 0.10
    harmful = e_value_proportion(-0.04, -0.06, -0.02, control_risk=0.08)
    assert harmful.estimate == pytest.approx(e_value(0.5)) and harmful.interval == pytest.approx(e_value(0.75))
    assert e_value_proportion(-0.2, -0.3, -0.1, control_risk=0.25).estimate == pytest.approx(e_value(0.2))
    assert e_value_proportion(0.01, -0.01, 0.03, control_risk=0.1).interval == 1.0
    with pytest.raises(ValueError, match=r"counterfactual risk must be in \(0, 1\]"):
        e_value_proportion(0.1, 0.0, 0.2, control_risk=0.0)
