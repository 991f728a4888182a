"""stats/callaway_santanna.py: group-time ATTs, their influence-function standard errors and the simple and
event-time aggregations equal the `differences` package's ATTgt (analytic errors) on the same panel; the
estimator recovers a known effect that grows with time since adoption, and its intervals cover it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impactbook.stats.callaway_santanna import callaway_santanna


def _panel(rng, units=60, periods=10, cohorts=(4, 6, 8, np.nan), growth=0.2):
    """Staggered adoption; the effect is 1 + growth * (periods since adoption); a common trend 0.3 a period."""
    cohort = rng.choice(cohorts, units)
    unit_level = rng.normal(size=(units, 1))
    time = np.arange(periods)[None, :]
    since = time - cohort[:, None]
    effect = np.where(np.isnan(since) | (since < 0), 0.0, 1.0 + growth * np.nan_to_num(since))
    return unit_level + 0.3 * time + effect + rng.normal(size=(units, periods)), cohort


def test_matches_the_differences_package():
    from differences import ATTgt

    outcomes, cohort = _panel(np.random.default_rng(0))
    units, periods = outcomes.shape
    frame = pd.DataFrame({"unit": np.repeat(np.arange(units), periods), "time": np.tile(np.arange(periods), units),
                          "cohort": np.repeat(cohort, periods), "y": outcomes.ravel()}).set_index(["unit", "time"])
    reference = ATTgt(data=frame, cohort_column="cohort")
    reference.fit(formula="y", control_group="never_treated", progress_bar=False)
    ours = callaway_santanna(outcomes, cohort, leads=7, lags=5)
    cells = reference.results()
    assert len(cells) == len(ours.group_time)
    for effect, (_, row) in zip(ours.group_time, cells.iterrows()):
        assert (effect.cohort, effect.period) == (row.name[0], row.name[2])
        assert effect.estimate == pytest.approx(row.iloc[0], rel=1e-9, abs=1e-12)
        assert effect.standard_error == pytest.approx(row.iloc[1], rel=1e-9)
    simple = reference.aggregate("simple").iloc[0]
    assert ours.overall.estimate == pytest.approx(simple.iloc[0], rel=1e-9)
    assert ours.overall.standard_error == pytest.approx(simple.iloc[1], rel=1e-9)
    events = reference.aggregate("event")
    for e, aggregate in ours.event_time.items():
        assert aggregate.estimate == pytest.approx(events.loc[e].iloc[0], rel=1e-9, abs=1e-12)
        assert aggregate.standard_error == pytest.approx(events.loc[e].iloc[1], rel=1e-9)


def test_recovers_an_effect_that_grows_after_adoption_and_covers_it():
    """200 simulated panels: the average of the event-time effects 0..4 (truth 1 + 0.2 * mean(0..4) = 1.4)
    is unbiased and its 95% interval covers the truth in 95% of panels (within 3 binomial SEs); with no
    effect the pre-trend test rejects at about its level."""
    rng = np.random.default_rng(7)
    estimates, covered, rejections = [], 0, 0
    for _ in range(200):
        outcomes, cohort = _panel(rng, units=80)
        result = callaway_santanna(outcomes, cohort, leads=3, lags=4)
        estimates.append(result.post_average.estimate)
        covered += result.post_average.low <= 1.4 <= result.post_average.high
        rejections += result.pretrend_p_value < 0.05
    assert abs(np.mean(estimates) - 1.4) < 3 * np.std(estimates) / np.sqrt(200)
    assert covered / 200 >= 0.95 - 3 * np.sqrt(0.05 * 0.95 / 200)
    assert rejections / 200 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)


def test_clusters_sum_the_influence_within_each_cluster():
    outcomes, cohort = _panel(np.random.default_rng(3))
    alone = callaway_santanna(outcomes, cohort)
    one_per_unit = callaway_santanna(outcomes, cohort, clusters=np.arange(len(cohort)) * 7)
    assert one_per_unit.overall.standard_error == pytest.approx(alone.overall.standard_error, rel=1e-12)
    pairs = callaway_santanna(outcomes, cohort, clusters=np.arange(len(cohort)) // 2)
    assert pairs.clusters == len(cohort) // 2 and pairs.overall.estimate == alone.overall.estimate
    assert pairs.overall.standard_error != pytest.approx(alone.overall.standard_error, rel=1e-3)


def test_needs_never_treated_units():
    outcomes, _ = _panel(np.random.default_rng(4))
    with pytest.raises(ValueError, match="at least 2"):
        callaway_santanna(outcomes, np.full(len(outcomes), 5.0))


def test_without_a_lead_the_pre_trend_test_has_no_p_value():
    """Only the reference period before adoption: nothing to test, and the p-value said 1.0 (a pass)."""
    rng = np.random.default_rng(3)
    outcomes = rng.normal(size=(12, 4))
    cohorts = np.array([1.0] * 6 + [np.nan] * 6)  # adoption in the second period: period 0 is the reference
    result = callaway_santanna(outcomes, cohorts, leads=2, lags=1)
    assert result.pretrend_df == 0 and np.isnan(result.pretrend_p_value) and np.isnan(result.pretrend_statistic)
