"""stats/wild_bootstrap.py: the t statistic and every bootstrap t equal the `wildboottest` package's on the
same regression (all 2^G Rademacher patterns); the test holds its size with 8 clusters where the
cluster-robust t test over-rejects; its inverted interval's ends are where wildboottest's own test starts
rejecting, and the interval covers a known slope at about its level."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from impactbook.stats.wild_bootstrap import wild_cluster_bootstrap, wild_cluster_interval


def _data(rng, n=400, clusters=8, slope=0.1):
    cluster = rng.integers(0, clusters, n)
    x1 = rng.normal(size=n) + 0.8 * rng.normal(size=clusters)[cluster]
    design = np.column_stack([np.ones(n), x1, rng.normal(size=n)])
    y = slope * x1 + design[:, 2] + rng.normal(size=n) + rng.normal(size=clusters)[cluster] * (1 + np.abs(x1))
    return design, y, cluster


def _wildboottest(design, y, cluster, restriction):
    """wildboottest's WCR11 with Rademacher weights (all 2^G patterns): its t and the |bootstrap t|'s."""
    from wildboottest.wildboottest import WildboottestCL

    reference = WildboottestCL(X=design, Y=y, cluster=cluster, R=restriction, B=9999, seed=1, parallel=False)
    reference.get_scores(bootstrap_type="11", impose_null=True, adj=True, cluster_adj=True)
    reference.get_weights(weights_type="rademacher")
    reference.get_numer()
    reference.get_denom()
    reference.get_tboot()
    reference.get_vcov()
    reference.get_tstat()
    return float(np.ravel(reference.t_stat)[0]), np.abs(np.ravel(reference.t_boot))


def test_matches_wildboottest_draw_for_draw():
    design, y, cluster = _data(np.random.default_rng(1))
    t, t_boot = _wildboottest(design, y, cluster, np.array([0, 1.0, 0]))
    ours = wild_cluster_bootstrap(design, y, cluster, np.array([0, 1.0, 0]))
    assert ours.full_enumeration and ours.draws == 2**8
    assert ours.t_statistic == pytest.approx(t, rel=1e-9)
    theirs = np.sort(t_boot)
    assert np.sort(np.abs(ours.bootstrap_statistics)) == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    assert ours.p_value == np.mean(theirs >= abs(ours.t_statistic) * (1 - 1e-9))


def test_keeps_its_size_with_eight_clusters_where_the_cluster_robust_t_test_over_rejects():
    """400 null regressions with 8 clusters and cluster-level heteroskedasticity: the bootstrap rejects at
    most alpha + 3 binomial SEs at 0.05; the CR1 t test on G-1 df rejects more often than the bootstrap."""
    rng = np.random.default_rng(5)
    boot, robust = 0, 0
    for _ in range(400):
        design, y, cluster = _data(rng, n=160, slope=0.0)
        result = wild_cluster_bootstrap(design, y, cluster, np.array([0, 1.0, 0]))
        boot += result.p_value <= 0.05
        robust += 2 * sps.t.sf(abs(result.t_statistic), 7) <= 0.05
    assert boot / 400 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
    assert robust > boot


def test_random_draws_when_there_are_more_patterns_than_draws():
    design, y, cluster = _data(np.random.default_rng(2), clusters=14)
    result = wild_cluster_bootstrap(design, y, cluster, np.array([0, 1.0, 0]), draws=999, seed=3)
    again = wild_cluster_bootstrap(design, y, cluster, np.array([0, 1.0, 0]), draws=999, seed=3)
    assert not result.full_enumeration and result.draws == 999 and result.p_value == again.p_value


def _wildboottest_p(design, y, cluster, restriction):
    t, t_boot = _wildboottest(design, y, cluster, restriction)
    return float(np.mean(t_boot >= abs(t) * (1 - 1e-9)))


def test_the_interval_ends_where_wildboottests_test_starts_rejecting():
    """R'beta = b on y is R'beta = 0 on y - b X c (R'c = 1): wildboottest, which tests only 0, checks each end.
    The restriction averages two coefficients, as the design's average post-adoption effect does."""
    design, y, cluster = _data(np.random.default_rng(7))
    restriction = np.array([0, 0.5, 0.5])
    low, high = wild_cluster_interval(design, y, cluster, restriction, level=0.9)
    se = abs(restriction @ np.linalg.lstsq(design, y, rcond=None)[0]) / abs(
        wild_cluster_bootstrap(design, y, cluster, restriction).t_statistic)
    shift = design @ (restriction / (restriction @ restriction))
    for end, outward in ((low, -1), (high, 1)):
        inside = _wildboottest_p(design, y - (end - outward * 1e-3 * se) * shift, cluster, restriction)
        outside = _wildboottest_p(design, y - (end + outward * 1e-3 * se) * shift, cluster, restriction)
        assert inside >= 0.1 > outside, (end, inside, outside)
    estimate = restriction @ np.linalg.lstsq(design, y, rcond=None)[0]
    assert low < estimate < high


def test_the_interval_covers_a_known_slope_with_eight_clusters():
    """200 regressions with 8 clusters, slope 0.1: the 90% bootstrap interval covers it at about 90% (exact
    enumeration makes the test's level slightly conservative)."""
    rng = np.random.default_rng(9)
    covered = 0
    for _ in range(200):
        design, y, cluster = _data(rng, n=160, slope=0.1)
        low, high = wild_cluster_interval(design, y, cluster, np.array([0, 1.0, 0]), level=0.9, tolerance=1e-3)
        covered += low <= 0.1 <= high
    assert 0.84 <= covered / 200 <= 0.97, covered / 200
