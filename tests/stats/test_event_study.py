"""stats/event_study.py against references on the same data: the difference of differences of means (a
saturated single-cohort panel), statsmodels' own formula interface with unit and period dummies and
cluster-robust errors (the average effect through its t_test), linearmodels' PanelOLS (absorbed two-way
effects, clustered errors) for the 2x2 estimator and for covariates, and known synthetic effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from impactbook.stats.event_study import event_study, static_did


def _panel(units=12, periods=6, adopt_at=3, treated=6, effect=0.5, seed=1, adoption_spread=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(units):
        adoption = adopt_at + (u % 3) * adoption_spread if u < treated else np.nan
        level = rng.normal(0, 1)
        for t in range(periods):
            treated_now = not np.isnan(adoption) and t >= adoption
            rows.append((u, t, adoption, level + 0.3 * t + effect * treated_now + rng.normal(0, 0.5)))
    return pd.DataFrame(rows, columns=["unit", "period", "adoption", "y"])


def test_a_saturated_single_cohort_panel_gives_the_difference_of_differences_of_means():
    frame = _panel()
    study = event_study(frame.y, frame.unit, frame.period, frame.adoption, frame.unit, leads=3, lags=2)
    means = frame.assign(group=frame.adoption.notna()).groupby(["group", "period"]).y.mean()
    for effect in study.effects:
        t = 3 + effect.relative_period
        expected = (means[True][t] - means[True][2]) - (means[False][t] - means[False][2])
        assert abs(effect.estimate - expected) < 1e-10


def test_estimates_and_cluster_robust_errors_match_statsmodels_formulas_on_staggered_data():
    frame = _panel(units=30, periods=12, adopt_at=5, treated=21, adoption_spread=2, seed=7)
    study = event_study(frame.y, frame.unit, frame.period, frame.adoption, frame.unit, leads=3, lags=2, alpha=0.05)
    relative = (frame.period - frame.adoption).clip(-3, 2)
    names = []
    for k in [-3, -2, 0, 1, 2]:
        name = f"k_{'m' if k < 0 else 'p'}{abs(k)}"
        frame[name] = (relative == k).astype(float)
        names.append(name)
    fit = smf.ols(f"y ~ {' + '.join(names)} + C(unit) + C(period)", frame).fit(
        cov_type="cluster", cov_kwds={"groups": frame.unit}, use_t=True)
    for effect, name in zip(study.effects, names):
        assert abs(effect.estimate - fit.params[name]) < 1e-9
        assert abs(effect.standard_error - fit.bse[name]) < 1e-9
    average = fit.t_test(" + ".join(f"{n} / 3" for n in names[2:]) + " = 0")
    assert abs(study.average_effect - float(average.effect[0])) < 1e-9
    assert abs(study.average_standard_error - float(average.sd[0][0])) < 1e-9
    assert abs(study.average_p_value - float(average.pvalue)) < 1e-9
    pre = fit.wald_test(", ".join(f"{n} = 0" for n in names[:2]), use_f=True, scalar=True)
    assert abs(study.pretrend_p_value - float(pre.pvalue)) < 1e-9


def test_a_known_effect_is_recovered_and_a_null_effect_is_covered_at_the_nominal_rate():
    frame = _panel(units=40, periods=10, adopt_at=4, treated=24, adoption_spread=2, effect=0.5, seed=3)
    study = event_study(frame.y, frame.unit, frame.period, frame.adoption, frame.unit, leads=3, lags=2)
    assert study.average_low < 0.5 < study.average_high and study.average_p_value < 0.01
    covered = 0
    for seed in range(200):
        frame = _panel(units=24, periods=8, adopt_at=4, treated=12, adoption_spread=1, effect=0.0, seed=100 + seed)
        study = event_study(frame.y, frame.unit, frame.period, frame.adoption, frame.unit, leads=2, lags=1)
        covered += study.average_low <= 0 <= study.average_high
    assert 0.91 <= covered / 200 <= 0.99  # 95% nominal; binomial sd 1.5 points at n = 200


def _confounded(seed=0, units=30, periods=12, adopt_at=8, treated=12, effect=1.0, slope=0.7):
    """One adoption period; a covariate that rises in adopting units from period 6 and moves the outcome."""
    rng = np.random.default_rng(seed)
    unit, period = np.repeat(np.arange(units), periods), np.tile(np.arange(periods), units)
    adopter = unit < treated
    x = rng.normal(size=units * periods) + 0.8 * adopter * (period >= 6)
    y = 0.3 * unit / units + 0.1 * period + slope * x + effect * (adopter & (period >= adopt_at)) \
        + rng.normal(0, 0.5, units * periods)
    frame = pd.DataFrame({"unit": unit, "period": period, "y": y, "x": x, "cluster": unit // 2,
                          "adoption": np.where(adopter, float(adopt_at), np.nan),
                          "d": (adopter & (period >= adopt_at)).astype(float)})
    return frame


def _panel_ols(frame, regressors):
    from linearmodels.panel import PanelOLS

    indexed = frame.set_index(["unit", "period"])
    return PanelOLS(indexed.y, indexed[regressors], entity_effects=True, time_effects=True).fit(
        cov_type="clustered", clusters=indexed.cluster, debiased=True, group_debias=True)


def test_the_two_by_two_estimate_equals_linearmodels_panel_ols_with_and_without_covariates():
    frame = _confounded()
    for covariates, regressors in ((None, ["d"]), (frame[["x"]].to_numpy(), ["d", "x"])):
        ours = static_did(frame.y, frame.unit, frame.period, frame.adoption, frame.cluster, 0.05, covariates)
        reference = _panel_ols(frame, regressors)
        assert abs(ours.estimate - reference.params["d"]) < 1e-9
        assert abs(ours.standard_error - reference.std_errors["d"]) < 1e-9
        assert ours.t_df == 14


def test_the_two_by_two_estimate_is_the_difference_of_four_means_on_a_balanced_panel():
    frame = _confounded(seed=4)
    ours = static_did(frame.y, frame.unit, frame.period, frame.adoption, frame.cluster)
    post, adopter = frame.period >= 8, frame.adoption.notna()
    means = lambda a, b: frame.y[a & b].mean()  # noqa: E731
    expected = (means(adopter, post) - means(adopter, ~post)) - (means(~adopter, post) - means(~adopter, ~post))
    assert abs(ours.estimate - expected) < 1e-12


def test_event_study_covariates_match_linearmodels_and_remove_the_confounding():
    frame = _confounded(seed=2)
    relative = (frame.period - frame.adoption).clip(-3, 2)
    names = []
    for k in [-3, -2, 0, 1, 2]:
        frame[f"k{k}"] = (relative == k).astype(float)
        names.append(f"k{k}")
    study = event_study(frame.y, frame.unit, frame.period, frame.adoption, frame.cluster, 3, 2,
                        covariates=frame[["x"]].to_numpy())
    reference = _panel_ols(frame, names + ["x"])
    for effect, name in zip(study.effects, names):
        assert abs(effect.estimate - reference.params[name]) < 1e-9
        assert abs(effect.standard_error - reference.std_errors[name]) < 1e-9
    # a known effect of 1 under a covariate that shifts with adoption: 200 draws, with and without it
    with_x, without = [], []
    for seed in range(200):
        data = _confounded(seed=100 + seed)
        with_x.append(static_did(data.y, data.unit, data.period, data.adoption, data.cluster,
                                 covariates=data[["x"]].to_numpy()).estimate)
        without.append(static_did(data.y, data.unit, data.period, data.adoption, data.cluster).estimate)
    assert abs(np.mean(with_x) - 1.0) < 0.02  # unbiased: sd of the mean about 0.005
    assert np.mean(without) > 1.4  # 0.7 x 0.8 of confounding left in: about 1.56
