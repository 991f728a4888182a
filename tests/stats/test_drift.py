"""Drift statistics against independent references on the same data: scipy (KS, chi-square, Jensen-Shannon)
and a PSI computed by hand on known distributions."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from impactbook.stats.drift import binned_counts, chi_square, jensen_shannon, kolmogorov_smirnov, ks_samples, psi


def cumulative(reference, current):
    values = np.unique(np.concatenate([reference, current]))
    return (np.searchsorted(np.sort(reference), values, side="right"),
            np.searchsorted(np.sort(current), values, side="right"))


def test_psi_matches_hand_computation_on_known_shares():
    # reference 25/25/25/25, current 10/20/30/40:  sum (c - r) ln(c / r) written out term by term
    hand = ((0.1 - 0.25) * math.log(0.1 / 0.25) + (0.2 - 0.25) * math.log(0.2 / 0.25)
            + (0.3 - 0.25) * math.log(0.3 / 0.25) + (0.4 - 0.25) * math.log(0.4 / 0.25))
    assert psi([25, 25, 25, 25], [10, 20, 30, 40]).statistic == pytest.approx(hand, abs=1e-12)
    assert psi([5, 5], [5, 5]).statistic == 0.0


def test_psi_floor_keeps_an_empty_bin_finite():
    value = psi([50, 50, 0], [40, 40, 20]).statistic
    hand = (0.4 - 0.5) * math.log(0.8) * 2 + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    assert value == pytest.approx(hand, abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_ks_matches_scipy_asymptotic(shift):
    rng = np.random.default_rng(7)
    reference, current = rng.normal(size=3000), rng.normal(shift, size=2000).round(2)
    ours = kolmogorov_smirnov(*cumulative(reference, current))
    theirs = sps.ks_2samp(reference, current, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)
    raw = ks_samples(reference, current)
    assert (raw.statistic, raw.p_value) == (pytest.approx(theirs.statistic, abs=1e-12), pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300))


def test_ks_counts_ties_together_like_scipy():
    reference, current = np.array([1, 1, 2, 2, 2, 3, 5.0]), np.array([1, 2, 2, 4, 4, 4, 5, 5.0])
    assert ks_samples(reference, current).statistic == pytest.approx(sps.ks_2samp(reference, current).statistic, abs=1e-15)


def test_chi_square_matches_scipy_contingency():
    reference, current = [120, 80, 40, 0, 10], [100, 95, 30, 0, 25]
    ours = chi_square(reference, current)
    table = np.array([reference, current])[:, [0, 1, 2, 4]]
    statistic, p, df, _ = sps.chi2_contingency(table, correction=False)
    assert (ours.statistic, ours.df) == (pytest.approx(statistic, rel=1e-12), df)
    assert ours.p_value == pytest.approx(p, rel=1e-9)


def test_jensen_shannon_matches_scipy_distance():
    reference, current = [10, 30, 40, 20, 0], [20, 20, 20, 20, 20]
    assert jensen_shannon(reference, current).statistic == pytest.approx(jensenshannon(reference, current, base=2), abs=1e-12)
    assert jensen_shannon([1, 0], [0, 1]).statistic == pytest.approx(1.0)


def test_binned_counts_follow_right_closed_bins():
    assert binned_counts([0, 1, 1.5, 2, 3], [1, 2]).tolist() == [2, 2, 1]


def test_drift_rejects_empty_counts():
    with pytest.raises(ValueError):
        psi([0, 0], [1, 1])
