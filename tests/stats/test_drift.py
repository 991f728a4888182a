"""Drift statistics against independent references on the same data: scipy (KS, chi-square, Jensen-Shannon)
and a PSI computed by hand on known distributions."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from impactbook.stats.drift import (binned_counts, chi_square, jensen_shannon, kolmogorov_smirnov, ks_from_statistic,
                                   ks_samples, ks_sorted, psi, quantile_edges, sorted_bin_counts)


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


@pytest.mark.parametrize("ties", [False, True])
def test_ks_of_sorted_samples_matches_scipy(ties):
    # reference: scipy.stats.ks_2samp (searchsorted over the pooled sample), same data, to 1e-12
    rng = np.random.default_rng(11)
    reference, current = rng.normal(size=5000), rng.normal(0.05, 1.1, size=3500)
    if ties:
        reference, current = reference.round(1), current.round(1)
    ours = ks_sorted(np.sort(reference), np.sort(current))
    theirs = sps.ks_2samp(reference, current, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


def test_ks_of_identical_samples_is_zero():
    values = np.sort(np.random.default_rng(3).normal(size=100))
    assert ks_sorted(values, values).statistic == 0.0


@pytest.mark.parametrize("bins", [2, 10, 37])
def test_quantile_edges_are_numpys_linear_quantiles(bins):
    # reference: numpy.quantile (method="linear", Hyndman & Fan definition 7) on the same sample
    values = np.sort(np.random.default_rng(5).gamma(2.0, size=1001))
    expected = np.quantile(values, np.arange(1, bins) / bins)
    assert np.allclose(quantile_edges(values, bins), expected, rtol=0, atol=1e-12)


def test_quantile_edges_merge_duplicates_of_a_heavy_tie():
    values = np.sort(np.array([0.0] * 80 + list(range(1, 21)), dtype=float))
    edges = quantile_edges(values, 10)
    assert edges[0] == 0.0 and len(edges) == len(set(edges)) < 9


def test_sorted_bin_counts_equal_counting_every_value():
    rng = np.random.default_rng(8)
    values = rng.integers(0, 20, 3000).astype(float)  # many values fall exactly on an edge
    edges = [2.0, 5.5, 10.0, 19.0]
    assert sorted_bin_counts(np.sort(values), edges).tolist() == binned_counts(values, edges).tolist()


@pytest.mark.parametrize("n_eff", [100_001, 500_000])
@pytest.mark.parametrize("p", [0.5, 0.05, 1e-3, 1e-6, 1e-10])
def test_ks_p_value_above_the_limit_is_within_one_percent_of_the_finite_n_distribution(n_eff, p):
    # reference: scipy.stats.kstwo.sf (finite-n Smirnov, what ks_2samp asymp uses); measured error <= 0.8%
    d = sps.kstwobign.isf(p) / math.sqrt(n_eff)
    ours = ks_from_statistic(d, 2 * n_eff, 2 * n_eff)
    assert "Kolmogorov limit" in ours.method
    assert ours.p_value == pytest.approx(sps.kstwo.sf(d, n_eff), rel=1e-2)


def test_ks_p_value_up_to_the_limit_is_scipys_finite_n_value():
    d = 0.004
    assert ks_from_statistic(d, 200_000, 200_000).p_value == pytest.approx(sps.kstwo.sf(d, 100_000), rel=1e-12)


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.01, 1.0), (0.3, 1.0), (0.0, 1.5)])
@pytest.mark.parametrize("block", [4, 64, 256])
def test_ks_with_interval_bounds_is_exactly_scipys_d_whichever_path_it_takes(shift, scale, block):
    # reference: scipy.stats.ks_2samp; identical distributions (shift 0) make many intervals doubtful (the
    # fallback merge), shifted ones few (the slices); with ties from rounding, exact equality of D
    rng = np.random.default_rng(int(shift * 100) + block)
    reference, current = rng.normal(size=20_000).round(3), rng.normal(shift, scale, size=15_000).round(3)
    ours = ks_sorted(np.sort(reference), np.sort(current), block=block)
    assert ours.statistic == sps.ks_2samp(reference, current, method="asymp").statistic
