"""stats/sequential.py: anytime-valid monitoring keeps alpha under daily peeking; naive peeking does not;
group-sequential boundaries match published Lan-DeMets values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from impactbook.stats.sequential import crossing_probability, group_sequential_bounds, msprt, next_bound, spending


def _aa_paths(rng, sims: int, days: int, per_day: int):
    """Cumulative A/A differences of means and their variances after each simulated day."""
    control = rng.normal(0, 1, (sims, days, per_day)).sum(axis=2).cumsum(axis=1)
    treatment = rng.normal(0, 1, (sims, days, per_day)).sum(axis=2).cumsum(axis=1)
    n = per_day * np.arange(1, days + 1)
    return (treatment - control) / n, 2.0 / n


def test_daily_peeking_keeps_alpha_with_msprt_and_inflates_it_naively():
    """Simulation (seed 13, 2000 A/A experiments, a look after each of 30 days, 200 units per arm per
    day): the mSPRT rejects in at most alpha + 3 binomial SEs of them; the fixed-horizon z test
    repeated at every look rejects far more often than alpha."""
    rng = np.random.default_rng(13)
    sims, alpha = 2000, 0.05
    differences, variances = _aa_paths(rng, sims, 30, 200)
    tau2 = variances[-1]  # mixing variance on the scale of the final look's effect
    sequential, naive = 0, 0
    for path in differences:
        p = 1.0
        for estimate, variance in zip(path, variances):
            p = msprt(float(estimate), float(variance), float(tau2), alpha, p).p_value
        sequential += p <= alpha
        naive += bool(np.any(np.abs(path / np.sqrt(variances)) > sps.norm.ppf(1 - alpha / 2)))
    tolerance = 3 * math.sqrt(alpha * (1 - alpha) / sims)
    assert sequential / sims <= alpha + tolerance
    assert naive / sims > 2 * alpha


def test_confidence_sequence_covers_a_true_effect_at_every_look():
    """Simulation (seed 14, 1000 experiments, 30 looks, true difference 0.1): the confidence sequence
    contains 0.1 at all 30 looks in at least 95% of experiments (within binomial error)."""
    rng = np.random.default_rng(14)
    differences, variances = _aa_paths(rng, 1000, 30, 100)
    differences = differences + 0.1
    covered = 0
    for path in differences:
        covered += all(r.low <= 0.1 <= r.high for r in (msprt(float(e), float(v), float(variances[-1]))
                                                         for e, v in zip(path, variances)))
    assert covered / 1000 >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / 1000)


def test_msprt_detects_a_real_effect():
    result = msprt(estimate=0.05, variance=0.0001, mixing_variance=0.0004)
    assert result.rejects and result.low > 0


@pytest.mark.parametrize("kind, expected", [
    # Lan-DeMets boundaries, 5 equally spaced looks, two-sided alpha 0.05 (as tabulated by the R
    # packages ldbounds and gsDesign)
    ("obrien_fleming", [4.8769, 3.3569, 2.6803, 2.2898, 2.0310]),
    ("pocock", [2.4380, 2.4268, 2.4101, 2.3966, 2.3859]),
])
def test_group_sequential_bounds_match_published_values(kind, expected):
    bounds = group_sequential_bounds([0.2, 0.4, 0.6, 0.8, 1.0], 0.05, kind)
    assert bounds == pytest.approx(expected, abs=2e-3)


def test_one_look_is_the_fixed_horizon_test():
    assert group_sequential_bounds([1.0], 0.05)[0] == pytest.approx(sps.norm.ppf(0.975), abs=1e-6)
    assert spending(1.0, 0.05, "pocock") == pytest.approx(0.05)
    assert spending(1.0, 0.05, "obrien_fleming") == pytest.approx(0.05)


RAMP_FRACTIONS = [0.050, 0.218, 0.429, 0.785, 1.0]  # information at the demo rollout's 5 unit-spaced looks


@pytest.mark.parametrize("kind, unit_spaced_error", [("obrien_fleming", 0.0523), ("pocock", 0.0581)])
def test_boundaries_at_observed_information_spend_exactly_alpha(kind, unit_spaced_error):
    """Exact (multivariate normal): boundaries computed for looks at 0.2, 0.4, ... but used where the
    information really is (a ramp) give 5.23% / 5.81% (the figures of issue 15); recomputed by Lan-DeMets
    spending at the observed fractions they give 5.000%."""
    planned = group_sequential_bounds([0.2, 0.4, 0.6, 0.8, 1.0], 0.05, kind)
    assert crossing_probability(planned, RAMP_FRACTIONS) == pytest.approx(unit_spaced_error, abs=5e-5)
    observed = group_sequential_bounds(RAMP_FRACTIONS, 0.05, kind)
    assert crossing_probability(observed, RAMP_FRACTIONS) == pytest.approx(0.05, abs=1e-6)
    for k in range(1, 5):  # the error spent by each look is the spending function at its fraction
        assert crossing_probability(observed[:k], RAMP_FRACTIONS[:k]) == pytest.approx(
            spending(RAMP_FRACTIONS[k - 1], 0.05, kind), abs=1e-6)


def test_information_time_boundaries_hold_alpha_in_simulation():
    """Simulation (seed 21, 200,000 Brownian paths observed at the ramp's fractions): the share of paths
    crossing the O'Brien-Fleming boundaries is 5% within 4 binomial SEs, and 2.5% on each side."""
    rng = np.random.default_rng(21)
    sims, fractions = 200_000, np.array(RAMP_FRACTIONS)
    increments = rng.normal(0, 1, (sims, len(fractions))) * np.sqrt(np.diff(fractions, prepend=0.0))
    z = increments.cumsum(axis=1) / np.sqrt(fractions)
    bounds = np.array(group_sequential_bounds(RAMP_FRACTIONS, 0.05))
    upper, lower = (z >= bounds).any(axis=1), (z <= -bounds).any(axis=1)
    tolerance = 4 * math.sqrt(0.05 * 0.95 / sims)
    assert abs((upper | lower).mean() - 0.05) < tolerance
    assert abs(upper.mean() - 0.025) < tolerance and abs(lower.mean() - 0.025) < tolerance


def test_next_bound_is_the_lan_demets_recursion():
    bounds = group_sequential_bounds(RAMP_FRACTIONS, 0.05)
    assert next_bound(bounds[:3], RAMP_FRACTIONS[:4]) == pytest.approx(bounds[3], abs=1e-9)
    with pytest.raises(ValueError, match="need exactly one more"):
        next_bound(bounds[:3], RAMP_FRACTIONS[:3])


def test_the_final_analysis_spends_all_alpha_left_when_information_falls_short():
    """Exact: looks at 0.3, 0.6 and a final analysis at 0.9 of the planned information: the final
    boundary is lower than the one at fraction 0.9 and the overall error is exactly alpha."""
    fractions = [0.3, 0.6, 0.9]
    early = group_sequential_bounds(fractions[:2], 0.05)
    final = next_bound(early, fractions, 0.05, final=True)
    assert final < next_bound(early, fractions, 0.05)
    assert crossing_probability([*early, final], fractions) == pytest.approx(0.05, abs=1e-6)
