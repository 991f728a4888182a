"""stats/sequential.py: anytime-valid monitoring keeps alpha under daily peeking; naive peeking does not;
group-sequential boundaries match published Lan-DeMets values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from impactbook.stats.sequential import group_sequential_bounds, msprt, spending


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
