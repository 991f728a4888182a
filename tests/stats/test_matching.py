"""Matching on the logit score against a brute-force search and sklearn's NearestNeighbors; the
Abadie-Imbens variance against its formula written as a loop; coverage of the ATT by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from impactbook.stats.matching import match_att


def sample(seed: int, n: int = 600, effect: float = 1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    logit = -0.8 + 1.2 * x
    treated = rng.random(n) < 1 / (1 + np.exp(-logit))
    outcome = effect * treated + 2 * x + rng.normal(size=n)
    return outcome, treated, logit


def brute_force(outcome, treated, score, caliper_sd, matches, variance_matches):
    """The same estimator by loops: every treated unit against every control; the variance as in Abadie &
    Imbens (2006, Theorem 7 and eq. 14) with K_j = sum over the treated using j of 1/M_i."""
    width = caliper_sd * np.std(score, ddof=1)
    controls, treated_index = np.flatnonzero(~treated), np.flatnonzero(treated)
    differences, used = [], {}
    for i in treated_index:
        nearest = sorted(controls, key=lambda j: abs(score[j] - score[i]))[:matches]
        inside = [j for j in nearest if abs(score[j] - score[i]) <= width]
        if not inside or abs(score[nearest[0]] - score[i]) > width:
            continue
        differences.append(outcome[i] - np.mean(outcome[inside]))
        for j in inside:
            used.setdefault(j, []).append(1 / len(inside))
    tau = np.mean(differences)
    total = sum((d - tau) ** 2 for d in differences)
    for j, shares in used.items():
        others = sorted((k for k in controls if k != j), key=lambda k: abs(score[k] - score[j]))[:variance_matches]
        sigma2 = variance_matches / (variance_matches + 1) * (outcome[j] - np.mean(outcome[others])) ** 2
        total += (sum(shares) ** 2 - sum(s * s for s in shares)) * sigma2
    return tau, np.sqrt(total) / len(differences), len(differences)


@pytest.mark.parametrize("caliper, matches, variance_matches", [(0.2, 1, 1), (0.05, 3, 2), (10.0, 2, 1)])
def test_matching_and_abadie_imbens_error_equal_a_brute_force_loop(caliper, matches, variance_matches):
    outcome, treated, score = sample(1, n=400)
    result = match_att(outcome, treated, score, caliper, matches, variance_matches)
    tau, se, kept = brute_force(outcome, treated, score, caliper, matches, variance_matches)
    assert result.matched_treated == kept
    assert result.estimate == pytest.approx(tau, rel=1e-12)
    assert result.standard_error == pytest.approx(se, rel=1e-12)


def test_nearest_controls_equal_sklearn_nearest_neighbors():
    from sklearn.neighbors import NearestNeighbors

    outcome, treated, score = sample(2, n=2000)
    result = match_att(outcome, treated, score, caliper=None, matches=1)
    finder = NearestNeighbors(n_neighbors=1).fit(score[~treated, None])
    _, index = finder.kneighbors(score[treated, None])
    expected = outcome[treated] - outcome[~treated][index[:, 0]]
    assert result.pair_differences == pytest.approx(expected, rel=1e-12)
    assert result.estimate == pytest.approx(expected.mean(), rel=1e-12)


def test_a_narrow_caliper_drops_treated_units_without_a_close_control():
    outcome, treated, score = sample(3)
    wide, narrow = match_att(outcome, treated, score, None), match_att(outcome, treated, score, 0.001)
    assert wide.unmatched_treated == 0 and narrow.unmatched_treated > 0
    assert narrow.matched_treated + narrow.unmatched_treated == treated.sum()
    assert "caliper 0.001 SD" in narrow.method and "Abadie-Imbens (2006)" in narrow.method


def test_matched_att_intervals_cover_the_true_effect():
    """Simulation (seeds 0..299, n = 600, constant effect 1, the true score): coverage within three binomial
    standard errors of 95%, while the naive difference is biased by the confounder."""
    covered, naive = 0, []
    for seed in range(300):
        outcome, treated, score = sample(seed)
        result = match_att(outcome, treated, score, 0.2)
        covered += result.low <= 1.0 <= result.high
        naive.append(outcome[treated].mean() - outcome[~treated].mean())
    assert abs(covered / 300 - 0.95) < 0.038, covered / 300
    assert np.mean(naive) > 2.0
