"""The difference_in_differences design end to end: a frozen plan, the panel pinned, aggregated in DuckDB,
the event study in a real kernel, verdicts, report and gate; a broken parallel-trends assumption ends
INCONCLUSIVE with the reason, never CONFIRMED."""

from __future__ import annotations

import datetime as dt

import pytest

from impactbook.catalog import Catalog
from impactbook.demo import MARKETS_CONTRACT, MARKETS_DATA_PATH, MARKETS_DATASET, MARKETS_TRUE_EFFECT, \
    generate_markets_data
from impactbook.designs.difference_in_differences import analyse_file
from impactbook.errors import PlanError
from impactbook.plan import load_plan
from impactbook.record import Status
from impactbook.yamlio import dump_yaml, load_yaml
from conftest import (REPO, assert_gate_follows_the_decision_and_verify_passes,
                      assert_runs_compare_baseline_and_site, run_design_example, run_plan_copy)

PLAN = "plans/markets.yaml"
START = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=2)  # UTC, as freezing: still ahead after midnight


def _plan_file(folder, start=START, **design):
    plan = load_yaml(REPO / PLAN, RuntimeError, PLAN)
    plan["window"] = {"start": start, "end": start + dt.timedelta(days=13), "time_column": "date"}
    plan["design"].update(design)
    dump_yaml(plan, folder / "markets.yaml")
    return folder / "markets.yaml"


@pytest.fixture(scope="module")
def markets_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("markets")
    return run_design_example(root / "project", "difference_in_differences", _plan_file(root), PLAN, MARKETS_DATASET,
                              MARKETS_DATA_PATH, lambda path: generate_markets_data(path, START, 14), MARKETS_CONTRACT)


def test_the_event_study_runs_from_a_frozen_plan_to_a_gate(markets_project):
    project, outcome = markets_project
    record = outcome.record
    assert record.status is Status.COMPLETED, record.errors
    assert [v.metric for v in record.verdicts] == ["conversion", "revenue_per_session"]
    conversion = next(e for e in record.effects if e.metric == "conversion")
    assert conversion.difference_low < MARKETS_TRUE_EFFECT < conversion.difference_high  # the known effect
    html = outcome.report.read_text(encoding="utf-8")
    assert "Assumptions and limitations" in html and "Parallel trends" in html
    assert "<td>unit periods with several rows</td>" in html and "<td>left out</td>" in html  # the data table
    assert_gate_follows_the_decision_and_verify_passes(project, record)


def test_compare_baseline_and_the_site_read_difference_in_differences_runs(markets_project):
    project, outcome = markets_project
    assert_runs_compare_baseline_and_site(project, PLAN, outcome.record.run_id)


def test_a_broken_parallel_trend_makes_the_verdict_inconclusive_with_its_reason(tmp_path):
    # a fixed start, not tomorrow: the generator's weekly cycle follows the calendar, so every weekday draws
    # another sample, and this drift's pre-trend p ranged 0.001-0.71 over the seven (the test failed on some days)
    start = dt.date(2026, 11, 20)
    path = generate_markets_data(tmp_path / "trend.csv", start, 14, adopter_trend=0.0004)
    analysis = analyse_file(load_plan(_plan_file(tmp_path, start)), path, "csv")
    conversion = analysis.metrics[0]
    assert conversion.study.pretrend_p_value < 0.01 and conversion.study.average_p_value < 0.05
    assert conversion.verdict == "INCONCLUSIVE"
    assert conversion.note.startswith("diagnostic failed: pre-trend test p = ")


def test_too_few_clusters_is_a_failed_diagnostic(tmp_path):
    path = generate_markets_data(tmp_path / "few.csv", START, 14, markets=8, never=2)
    analysis = analyse_file(load_plan(_plan_file(tmp_path)), path, "csv")
    assert all(m.verdict == "INCONCLUSIVE" and "8 clusters < 10" in m.note for m in analysis.metrics)


def test_the_scraps_give_a_reason_for_each_failed_diagnostic_and_none_for_a_passed_one(tmp_path):
    start = dt.date(2026, 11, 20)  # a fixed draw: conversion's pre-trends and placebo pass, clusters fail
    path = generate_markets_data(tmp_path / "few.csv", start, 14, markets=8, never=2)
    analysis = analyse_file(load_plan(_plan_file(tmp_path, start, diagnostics={"placebo_shift": 14})), path, "csv")
    rows = {row["name"].split(" ")[0]: row for row in analysis.scraps()["diagnostics"] if row["metric"] == "conversion"}
    assert rows["clusters"]["reason"].startswith("8 clusters < 10") and not rows["clusters"]["passed"]
    assert rows["pre-trends"]["passed"] and rows["placebo"]["passed"]
    assert rows["pre-trends"]["reason"] is None and rows["placebo"]["reason"] is None  # nothing to explain


def test_design_mistakes_name_the_field(tmp_path):
    with pytest.raises(PlanError, match=r"design.assumptions: String should have at least 20 characters"):
        load_plan(_plan_file(tmp_path, assumptions="trust me"))
    with pytest.raises(PlanError, match=r"unit, time and adoption must be different columns"):
        load_plan(_plan_file(tmp_path, adoption="date"))
    plan = load_yaml(_plan_file(tmp_path), RuntimeError, "plan")
    plan["metrics"][0].update(kind="ratio", numerator="a", denominator="b")
    del plan["metrics"][0]["column"]
    dump_yaml(plan, tmp_path / "ratio.yaml")
    with pytest.raises(PlanError, match="analyses one outcome column per metric"):
        load_plan(tmp_path / "ratio.yaml")


def test_callaway_santanna_is_the_estimator_on_the_pivoted_panel_and_covers_the_truth(tmp_path):
    """estimator: callaway_santanna — the design's average effect over event times 0..lags equals the
    estimator run directly on the panel pivoted with pandas (markets x days, adoption as a column index),
    its interval covers the known effect, and the rows say which method was used."""
    import numpy as np
    import pandas as pd

    from impactbook.stats.callaway_santanna import callaway_santanna

    path = generate_markets_data(tmp_path / "panel.csv", START, 14)
    plan = load_plan(_plan_file(tmp_path, estimator="callaway_santanna"))
    analysis = analyse_file(plan, path, "csv")
    frame = pd.read_csv(path)
    wide = frame.pivot_table(index="market", columns="date", values="conversion")
    adopted = frame.groupby("market").adopted_on.first().reindex(wide.index)
    days = list(wide.columns)
    cohorts = np.array([np.nan if pd.isna(a) else float(days.index(a)) for a in adopted])
    direct = callaway_santanna(wide.to_numpy(), cohorts, leads=plan.design.leads, lags=plan.design.lags)
    conversion = analysis.metrics[0]
    assert conversion.study.average_effect == pytest.approx(direct.post_average.estimate, rel=1e-9)
    assert conversion.study.average_standard_error == pytest.approx(direct.post_average.standard_error, rel=1e-9)
    assert conversion.study.average_low < MARKETS_TRUE_EFFECT < conversion.study.average_high
    assert analysis.results()[0]["method"].startswith("Callaway & Sant'Anna (2021)")


def test_an_unknown_estimator_names_the_field(tmp_path):
    with pytest.raises(PlanError, match=r"design.estimator: Input should be 'twfe', 'callaway_santanna' or 'two_by_two'"):
        load_plan(_plan_file(tmp_path, estimator="bacon"))


def _placebo_plan(folder, shift=14):
    return load_plan(_plan_file(folder, estimator="callaway_santanna",
                                diagnostics={"pretrend_p_min": 0.10, "min_clusters": 10, "placebo_shift": shift}))


def test_a_placebo_adoption_catches_a_pre_period_shift_the_pretrend_test_misses(tmp_path):
    """Adopting markets get +0.01 conversion from 14 days before the first adoption (a campaign of their
    own): flat over the last pre-periods, so the pre-trend test passes, but a placebo adoption 14 days
    early finds an 'effect' where the model had not changed, and the verdict is INCONCLUSIVE."""
    import pandas as pd

    first = dt.date(2026, 11, 30)  # a fixed calendar: the draw does not depend on the day the test runs
    path = generate_markets_data(tmp_path / "bump.csv", first, 14)
    frame = pd.read_csv(path)
    campaign = (frame.adopted_on.notna() & (frame.date >= (first - dt.timedelta(days=14)).isoformat())
                & (frame.date < first.isoformat()))
    frame.loc[campaign, "conversion"] += 0.01
    frame.to_csv(path, index=False)
    conversion = analyse_file(_placebo_plan(tmp_path), path, "csv").metrics[0]
    checks = {d.name.split(" ")[0]: d for d in conversion.diagnostics}
    assert checks["pre-trends"].passed and not checks["placebo"].passed
    assert conversion.verdict == "INCONCLUSIVE" and "placebo effect 0.01" in conversion.note


def test_the_placebo_passes_when_nothing_happened_before_adoption(tmp_path):
    path = generate_markets_data(tmp_path / "panel.csv", dt.date(2026, 11, 30), 14)  # a fixed draw
    analysis = analyse_file(_placebo_plan(tmp_path), path, "csv")
    placebos = [d for m in analysis.metrics for d in m.diagnostics if d.name.startswith("placebo")]
    assert len(placebos) == 2 and all(d.passed and d.value >= 0.05 for d in placebos)


def test_a_placebo_without_enough_earlier_periods_fails_with_the_reason(tmp_path):
    path = generate_markets_data(tmp_path / "panel.csv", START, 14, pre_days=20)
    conversion = analyse_file(_placebo_plan(tmp_path, shift=19), path, "csv").metrics[0]
    assert conversion.verdict == "INCONCLUSIVE" and "it needs at least 3" in conversion.note


def test_few_clusters_can_be_tested_with_the_wild_cluster_bootstrap(tmp_path):
    """8 markets: with inference wild_cluster_bootstrap the average effect's p-value is the bootstrap's over
    all 2^8 sign patterns (a multiple of 1/256), not the cluster-robust one, and the method says so."""
    path = generate_markets_data(tmp_path / "few.csv", dt.date(2026, 11, 30), 14, markets=8, never=2)
    robust = analyse_file(load_plan(_plan_file(tmp_path, estimator="twfe", diagnostics={"min_clusters": 6})), path,
                          "csv")
    boot = analyse_file(load_plan(_plan_file(tmp_path, estimator="twfe", inference="wild_cluster_bootstrap",
                                             diagnostics={"min_clusters": 6})), path, "csv")
    for plain, wild in zip(robust.metrics, boot.metrics):
        assert wild.study.average_effect == plain.study.average_effect
        assert wild.study.average_p_value != plain.study.average_p_value
        assert "all 2^G sign patterns" in wild.study.method and wild.study.average_p_value * 256 % 1 == 0
        # the interval inverts the same bootstrap test: it differs from the CR1 one and holds the estimate
        assert (wild.study.average_low, wild.study.average_high) != (plain.study.average_low, plain.study.average_high)
        assert wild.study.average_low < wild.study.average_effect < wild.study.average_high
        assert (wild.study.average_p_value < 0.05) == (not wild.study.average_low <= 0 <= wild.study.average_high)
    with pytest.raises(PlanError, match="wild_cluster_bootstrap applies to estimators twfe and two_by_two"):
        load_plan(_plan_file(tmp_path, estimator="callaway_santanna", inference="wild_cluster_bootstrap"))


def test_a_treated_flag_and_start_date_give_the_same_analysis_as_an_adoption_column(tmp_path):
    import pandas as pd

    path = generate_markets_data(tmp_path / "single.csv", START, 14, cohort_gap=0)
    frame = pd.read_csv(path)
    frame["switched"] = (frame.adopted_on.notna()).map({True: "yes", False: "no"})
    frame.to_csv(tmp_path / "flagged.csv", index=False)
    by_column = analyse_file(load_plan(_plan_file(tmp_path, estimator="twfe")), path, "csv")
    plan = load_yaml(_plan_file(tmp_path, estimator="twfe"), RuntimeError, "plan")
    del plan["design"]["adoption"]
    plan["design"].update(treated="switched", treated_value="yes", start=START)
    dump_yaml(plan, tmp_path / "flag.yaml")
    by_flag = analyse_file(load_plan(tmp_path / "flag.yaml"), tmp_path / "flagged.csv", "csv")
    assert by_flag.results() == by_column.results()
    assert by_flag.adoption_periods == by_column.adoption_periods and len(by_flag.adoption_periods) == 1


def test_two_by_two_is_the_difference_of_four_means_and_refuses_staggered_adoption(tmp_path):
    import pandas as pd

    path = generate_markets_data(tmp_path / "single.csv", START, 14, cohort_gap=0)
    analysis = analyse_file(load_plan(_plan_file(tmp_path, estimator="two_by_two")), path, "csv")
    conversion = analysis.metrics[0]
    frame = pd.read_csv(path, parse_dates=["date"])
    adopter, post = frame.adopted_on.notna(), frame.date >= pd.Timestamp(START)
    cell = lambda a, b: frame.conversion[a & b].mean()  # noqa: E731 (one row per market and day: a balanced panel)
    expected = (cell(adopter, post) - cell(adopter, ~post)) - (cell(~adopter, post) - cell(~adopter, ~post))
    assert abs(conversion.study.average_effect - expected) < 1e-12
    assert conversion.study.method.startswith("difference in differences (two-way fixed effects, one post-adoption")
    assert conversion.study.average_low < MARKETS_TRUE_EFFECT < conversion.study.average_high
    assert any(d.name.startswith("pre-trends") for d in conversion.diagnostics)  # the event study still tests them
    staggered = generate_markets_data(tmp_path / "staggered.csv", START, 14)
    with pytest.raises(ValueError, match=r"design.estimator: two_by_two needs one adoption period .* the panel has 4"):
        analyse_file(load_plan(_plan_file(tmp_path, estimator="two_by_two")), staggered, "csv")


def test_raw_means_are_each_cohorts_mean_per_period(tmp_path):
    import pandas as pd

    path = generate_markets_data(tmp_path / "markets.csv", START, 14)
    means = pd.DataFrame(analyse_file(load_plan(_plan_file(tmp_path)), path, "csv").scraps()["raw_means"])
    frame = pd.read_csv(path, parse_dates=["date", "adopted_on"])
    day = (pd.Timestamp(START) - pd.Timestamp("1970-01-01")).days
    never = frame[frame.adopted_on.isna() & (frame.date == pd.Timestamp(START))].conversion.mean()
    row = means[(means.metric == "conversion") & (means.cohort == "never") & (means.period == day)]
    assert abs(float(row["mean"].iloc[0]) - never) < 1e-12
    assert set(means.cohort) == {"never", *(str(day + 3 * k) for k in range(4))}


@pytest.mark.parametrize("change, expected", [
    ({"treated": "switched", "start": "2026-12-01"}, r"give either adoption .* or treated and start"),
    ({"adoption": None, "treated": "switched"}, r"treated and start go together"),
    ({"covariates": ["sessions", "sessions"]}, r"covariates must be distinct"),
    ({"covariates": ["market"]}, r"covariates must be distinct and differ from the unit, time and adoption"),
    ({"estimator": "callaway_santanna", "covariates": ["sessions"]}, r"covariates: callaway_santanna here compares"),
    ({"estimator": "two_by_two", "inference": "wild_cluster_bootstrap", "bootstrap_draws": 99}, None),
])
def test_flag_covariate_and_estimator_mistakes_name_the_field(tmp_path, change, expected):
    plan = load_yaml(_plan_file(tmp_path), RuntimeError, "plan")
    for key, value in change.items():
        if value is None:
            plan["design"].pop(key, None)
        else:
            plan["design"][key] = value
    dump_yaml(plan, tmp_path / "changed.yaml")
    if expected is None:
        assert load_plan(tmp_path / "changed.yaml").design.estimator == "two_by_two"
    else:
        with pytest.raises(PlanError, match=expected):
            load_plan(tmp_path / "changed.yaml")


def test_a_start_of_the_wrong_type_names_the_field(tmp_path):
    path = generate_markets_data(tmp_path / "single.csv", START, 14, cohort_gap=0)
    plan = load_yaml(_plan_file(tmp_path), RuntimeError, "plan")
    del plan["design"]["adoption"]
    plan["design"].update(treated="adopted_on", start=5)
    dump_yaml(plan, tmp_path / "flag.yaml")
    with pytest.raises(ValueError, match=r"design.start: 5 must be a date, as the time column 'date' is"):
        analyse_file(load_plan(tmp_path / "flag.yaml"), path, "csv")


def test_two_by_two_with_a_covariate_runs_through_the_template(markets_project, tmp_path):
    """The template renders the 2x2 estimator with a declared covariate, and its raw means, in a real kernel."""
    project, _ = markets_project
    data = generate_markets_data(project.root / "data/single.csv", START, 14, cohort_gap=0)
    Catalog.load(project).pin_dataset("single_markets", data, contract=MARKETS_CONTRACT, synthetic=True)

    def two_by_two(plan):
        plan["inputs"] = {"panel": "single_markets"}
        plan["design"].update(estimator="two_by_two", covariates=["sessions"])
        plan["design"]["diagnostics"].pop("placebo_shift", None)

    outcome = run_plan_copy(project, PLAN, "markets-2x2", two_by_two)
    conversion = next(e for e in outcome.record.effects if e.metric == "conversion")
    assert conversion.difference_low < MARKETS_TRUE_EFFECT < conversion.difference_high
    html = outcome.report.read_text(encoding="utf-8")
    assert "estimator two_by_two; covariates sessions" in html and "Raw means over time" in html


def test_a_flag_that_matches_no_unit_is_named_not_analysed_as_no_adoption(tmp_path):
    """DuckDB reads a yes/no column as BOOLEAN: `treated_value: yes` must still find the flagged units, and a
    value no row holds is an error naming the field, never an analysis without treated units."""
    import pandas as pd

    path = generate_markets_data(tmp_path / "single.csv", START, 14, cohort_gap=0)
    frame = pd.read_csv(path)
    frame["switched"] = frame.adopted_on.notna().map({True: "yes", False: "no"})
    frame.to_csv(tmp_path / "flagged.csv", index=False)
    plan = load_yaml(_plan_file(tmp_path), RuntimeError, "plan")
    del plan["design"]["adoption"]
    for value, expected in (("maybe", r"design.treated_value: 'maybe' is not true or false"),
                            (False, None), ("yes", None)):
        plan["design"].update(treated="switched", treated_value=value, start=START)
        dump_yaml(plan, tmp_path / "flag.yaml")
        if expected:
            with pytest.raises(ValueError, match=expected):
                analyse_file(load_plan(tmp_path / "flag.yaml"), tmp_path / "flagged.csv", "csv")
            continue
        analysis = analyse_file(load_plan(tmp_path / "flag.yaml"), tmp_path / "flagged.csv", "csv")
        assert analysis.metrics[0].study.treated_units == (32 if value == "yes" else 8)
    frame["switched"] = "no"
    frame.to_csv(tmp_path / "nobody.csv", index=False)
    with pytest.raises(ValueError, match=r"design.treated: no unit adopts the change in the panel \('switched' never equals 'yes'\)"):
        analyse_file(load_plan(tmp_path / "flag.yaml"), tmp_path / "nobody.csv", "csv")


def _flag_plan(folder, **design):
    plan = load_yaml(_plan_file(folder, **design), RuntimeError, "plan")
    del plan["design"]["adoption"]
    plan["design"].update(treated="switched", treated_value="yes", start=START)
    dump_yaml(plan, folder / "flag.yaml")
    return load_plan(folder / "flag.yaml")


def test_a_treatment_flag_set_on_every_row_or_from_the_start_on_is_one_analysis(tmp_path):
    import pandas as pd

    frame = pd.read_csv(generate_markets_data(tmp_path / "single.csv", START, 14, cohort_gap=0))
    plan = _flag_plan(tmp_path, estimator="twfe")
    flags = {"unit.csv": frame.adopted_on.notna(),
             "state.csv": frame.adopted_on.notna() & (frame.date >= START.isoformat())}  # marks the treated state
    for name, flag in flags.items():
        frame.assign(switched=flag.map({True: "yes", False: "no"})).to_csv(tmp_path / name, index=False)
    by_unit, by_state = (analyse_file(plan, tmp_path / name, "csv") for name in ("unit.csv", "state.csv"))
    assert by_unit.results() == by_state.results() and by_unit.adoption_periods == by_state.adoption_periods
    blanks = frame.assign(switched=flags["unit.csv"].map({True: "yes", False: "no"}))
    blanks.loc[blanks.index % 97 == 0, "switched"] = None  # a blank flag says nothing either way: was refused
    blanks.to_csv(tmp_path / "blanks.csv", index=False)
    assert analyse_file(plan, tmp_path / "blanks.csv", "csv").adoption_periods == by_unit.adoption_periods


def test_an_ambiguous_treatment_is_refused_naming_the_units(tmp_path):
    """A comparison market flagged on one pre-period day became a treated one (the earliest flag won): 36
    treated units instead of 32, CONFIRMED. A unit with two adoption dates took the earlier."""
    import pandas as pd

    frame = pd.read_csv(generate_markets_data(tmp_path / "single.csv", START, 14, cohort_gap=0))
    never = sorted(frame.market[frame.adopted_on.isna()].unique())[:2]
    flag = frame.adopted_on.notna() | (frame.market.isin(never) & (frame.date == frame.date.min()))
    frame.assign(switched=flag.map({True: "yes", False: "no"})).to_csv(tmp_path / "blip.csv", index=False)
    with pytest.raises(ValueError, match=rf"design.treated: 2 unit\(s\) have 'switched' = 'yes' on some rows and not "
                                         rf"on others .*, e.g. {never[0]}, {never[1]}: a unit's treatment must be"):
        analyse_file(_flag_plan(tmp_path), tmp_path / "blip.csv", "csv")
    adopter = sorted(frame.market[frame.adopted_on.notna()].unique())[0]
    later = (START + dt.timedelta(days=3)).isoformat()
    frame.loc[(frame.market == adopter) & (frame.date >= later), "adopted_on"] = later
    frame.to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(ValueError, match=rf"design.adoption: 1 unit\(s\) have more than one adoption period in "
                                         rf"'adopted_on', e.g. {adopter}"):
        analyse_file(load_plan(_plan_file(tmp_path, estimator="twfe")), tmp_path / "twice.csv", "csv")


@pytest.mark.parametrize("estimator", ["two_by_two", "twfe"])
def test_every_unit_adopting_at_once_leaves_nothing_to_compare_with(tmp_path, estimator):
    """Every market flagged: the 2x2 was CONFIRMED with a tight interval, twfe gave an effect of 2.2e10."""
    import pandas as pd

    frame = pd.read_csv(generate_markets_data(tmp_path / "single.csv", START, 14, cohort_gap=0))
    frame.assign(switched="yes").to_csv(tmp_path / "all.csv", index=False)
    with pytest.raises(ValueError, match=r"design.treated: every unit in the panel \(\d+\) adopts in the same period"):
        analyse_file(_flag_plan(tmp_path, estimator=estimator), tmp_path / "all.csv", "csv")


def test_dates_stored_as_text_in_parquet_are_dates(tmp_path):
    """Dates and adoption dates as ISO strings in a Parquet file: the same analysis as the CSV's (the time
    column was cast to a period number, a DuckDB conversion error)."""
    import pandas as pd

    path = generate_markets_data(tmp_path / "markets.csv", START, 14)
    pd.read_csv(path, dtype={"date": str, "adopted_on": str}).to_parquet(tmp_path / "markets.parquet")
    plan = load_plan(_plan_file(tmp_path))
    as_text, as_dates = analyse_file(plan, tmp_path / "markets.parquet", "parquet"), analyse_file(plan, path, "csv")
    assert as_text.results() == as_dates.results() and as_text.adoption_periods == as_dates.adoption_periods


@pytest.mark.parametrize("estimator", ["twfe", "callaway_santanna"])
def test_unit_periods_averaged_or_left_out_are_counted(tmp_path, estimator):
    """Duplicated rows were averaged and unit-periods without a value dropped (by Callaway & Sant'Anna with
    their whole unit, to balance the panel) with nothing in data_quality but a lower cluster count."""
    import pandas as pd

    frame = pd.read_csv(generate_markets_data(tmp_path / "markets.csv", START, 14))
    markets = sorted(frame.market.unique())
    duplicated = frame[(frame.market == markets[3]) & (frame.date >= START.isoformat())].head(5)
    blank = frame.index[frame.market.isin(markets[:3]) & (frame.date == frame.date.min())]
    frame.loc[blank, "conversion"] = None
    pd.concat([frame, duplicated]).to_csv(tmp_path / "changed.csv", index=False)
    analysis = analyse_file(load_plan(_plan_file(tmp_path, estimator=estimator)), tmp_path / "changed.csv", "csv")
    quality = analysis.scraps()["data_quality"]
    periods = frame.date.nunique()
    assert quality["unit_periods_with_several_rows"] == 5
    assert quality["panel_rows"] == len(frame) == len(markets) * periods
    conversion, revenue = quality["left_out"]
    if estimator == "twfe":
        assert conversion == {"metric": "conversion", "unit_periods": 3, "units": 0}
    else:  # each of the three markets misses a period: out of the balanced panel
        assert conversion == {"metric": "conversion", "unit_periods": 3 * periods, "units": 3}
    assert revenue == {"metric": "revenue_per_session", "unit_periods": 0, "units": 0}


def test_units_adopting_in_the_first_period_are_counted_as_left_out_by_callaway_santanna(tmp_path):
    """They have no base period, so the estimator drops them: their units were counted, their unit-periods not."""
    import pandas as pd

    frame = pd.read_csv(generate_markets_data(tmp_path / "markets.csv", START, 14))
    first_cohort = frame.adopted_on == sorted(frame.adopted_on.dropna().unique())[0]
    frame.loc[first_cohort, "adopted_on"] = frame.date.min()
    frame.to_csv(tmp_path / "first.csv", index=False)
    analysis = analyse_file(load_plan(_plan_file(tmp_path, estimator="callaway_santanna")), tmp_path / "first.csv",
                            "csv")
    units = frame.market[first_cohort].nunique()
    assert analysis.scraps()["data_quality"]["left_out"][0] == {
        "metric": "conversion", "units": units, "unit_periods": units * frame.date.nunique()}


@pytest.mark.parametrize("periods_before", [0, 1])
@pytest.mark.parametrize("estimator", ["twfe", "callaway_santanna"])
def test_a_panel_without_two_periods_before_adoption_is_refused(tmp_path, periods_before, estimator):
    """Only the window's rows: the pre-trend test read 'p = 3.53e-39 < 0.1: treated and comparison units did
    not move in parallel before adoption', of periods that were not there. With one period before adoption
    (the reference alone) Callaway & Sant'Anna passed its pre-trend test at p = 1.0 and CONFIRMED."""
    import pandas as pd

    frame = pd.read_csv(generate_markets_data(tmp_path / "markets.csv", START, 14, cohort_gap=0))
    first = dt.date.fromisoformat(frame.adopted_on.dropna().min()) - dt.timedelta(days=periods_before)
    frame[frame.date >= first.isoformat()].to_csv(tmp_path / "after.csv", index=False)
    with pytest.raises(ValueError, match=r"design.adoption: no adopting unit is observed in two periods before it "
                                         r"adopts"):
        analyse_file(load_plan(_plan_file(tmp_path, estimator=estimator)), tmp_path / "after.csv", "csv")


@pytest.mark.parametrize("estimator", ["twfe", "callaway_santanna"])
def test_a_panel_ending_before_any_adoption_is_refused(tmp_path, estimator):
    """Callaway & Sant'Anna said 'no cohort adopts after the first period' of adoptions after the panel."""
    import pandas as pd

    frame = pd.read_csv(generate_markets_data(tmp_path / "markets.csv", START, 14))
    frame[frame.date < frame.adopted_on.dropna().min()].to_csv(tmp_path / "before.csv", index=False)
    with pytest.raises(ValueError, match=r"design.adoption: every adopting unit adopts after the panel's last period"):
        analyse_file(load_plan(_plan_file(tmp_path, estimator=estimator)), tmp_path / "before.csv", "csv")


def test_period_numbers_stored_as_text_beside_a_date_window_column_stay_numbers(tmp_path):
    """A text time column that is not the window's own (dated) time column: numbers as the design reads them;
    the window's time_type made them dates (a DuckDB conversion error, 'invalid date field format: "87"')."""
    import pandas as pd

    frame = pd.read_csv(generate_markets_data(tmp_path / "markets.csv", START, 14))
    number = {day: str(i) for i, day in enumerate(sorted(frame.date.unique()))}
    as_text = frame.assign(period=frame.date.map(number),
                           adopted=frame.adopted_on.map(lambda day: number.get(day) if isinstance(day, str) else None))
    as_text.to_parquet(tmp_path / "text.parquet")
    as_text.assign(period=as_text.period.astype(int), adopted=as_text.adopted.astype(float)).to_csv(
        tmp_path / "numbers.csv", index=False)
    plan = load_plan(_plan_file(tmp_path, time="period", adoption="adopted", estimator="twfe"))
    from_text = analyse_file(plan, tmp_path / "text.parquet", "parquet")
    assert from_text.results() == analyse_file(plan, tmp_path / "numbers.csv", "csv").results()
