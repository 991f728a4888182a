"""Balance diagnostics against direct numpy formulas, and IPW weights balancing a confounded sample."""

from __future__ import annotations

import numpy as np
import pytest

from impactbook.stats.balance import balance_table


def test_unweighted_balance_equals_the_textbook_formulas():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2)) * [1, 3]
    treated = rng.random(500) < 0.4
    x[treated, 0] += 0.5
    row = balance_table(x, ["a", "b"], treated, np.ones(500))[0]
    s1, s0 = x[treated, 0].var(ddof=1), x[~treated, 0].var(ddof=1)
    smd = (x[treated, 0].mean() - x[~treated, 0].mean()) / np.sqrt((s1 + s0) / 2)
    assert row.smd_before == pytest.approx(smd, rel=1e-12) and row.smd_after == pytest.approx(smd, rel=1e-12)
    assert row.variance_ratio_before == pytest.approx(s1 / s0, rel=1e-12)


def test_integer_weights_equal_repeating_units():
    """A weight of k on a unit is k copies of it: the weighted SMD equals the SMD of the expanded sample
    (computed with numpy), with the denominator of the unweighted sample."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 1))
    treated = rng.random(300) < 0.5
    weights = rng.integers(1, 4, size=300).astype(float)
    row = balance_table(x, ["a"], treated, weights)[0]
    expanded_t, expanded_c = np.repeat(x[treated, 0], weights[treated].astype(int)), np.repeat(x[~treated, 0], weights[~treated].astype(int))
    scale = np.sqrt((x[treated, 0].var(ddof=1) + x[~treated, 0].var(ddof=1)) / 2)
    assert row.smd_after == pytest.approx((expanded_t.mean() - expanded_c.mean()) / scale, rel=1e-12)
    w_t, w_c = weights[treated], weights[~treated]
    reliability = (lambda v, w: np.sum(w * (v - np.average(v, weights=w)) ** 2) * w.sum() / (w.sum() ** 2 - (w ** 2).sum()))
    assert row.variance_ratio_after == pytest.approx(reliability(x[treated, 0], w_t) / reliability(x[~treated, 0], w_c), rel=1e-12)


def test_ipw_weights_remove_the_imbalance_of_a_confounder():
    from impactbook.stats.observational import propensity_score

    rng = np.random.default_rng(2)
    x = rng.normal(size=(5000, 2))
    treated = rng.random(5000) < 1 / (1 + np.exp(-(x[:, 0] - 0.5 * x[:, 1])))
    p = propensity_score(treated, x).score
    rows = balance_table(x, ["a", "b"], treated, np.where(treated, 1 / p, 1 / (1 - p)))
    assert all(abs(r.smd_before) > 0.2 for r in rows)
    assert all(abs(r.smd_after) < 0.1 for r in rows)  # Austin & Stuart (2015)'s threshold; 0.06 and 0.02 here
