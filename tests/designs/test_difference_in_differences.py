"""The difference_in_differences design end to end: a frozen plan, the panel pinned, aggregated in DuckDB,
the event study in a real kernel, verdicts, report and gate; a broken parallel-trends assumption ends
INCONCLUSIVE with the reason, never CONFIRMED."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from impactbook.catalog import Catalog
from impactbook.demo import MARKETS_CONTRACT, MARKETS_DATA_PATH, MARKETS_DATASET, MARKETS_TRUE_EFFECT, \
    generate_markets_data
from impactbook.designs.difference_in_differences import analyse_file
from impactbook.errors import PlanError
from impactbook.freezing import freeze_plan
from impactbook.plan import load_plan
from impactbook.record import Status
from impactbook.runner import run_plan
from impactbook.scaffold import init_project
from impactbook.yamlio import dump_yaml, load_yaml
from conftest import REPO, assert_runs_compare_baseline_and_site, cli

PLAN = "plans/markets.yaml"
START = dt.date.today() + dt.timedelta(days=1)


def _plan_file(folder, **design):
    plan = load_yaml(REPO / PLAN, RuntimeError, PLAN)
    plan["window"] = {"start": START, "end": START + dt.timedelta(days=13), "time_column": "date"}
    plan["design"].update(design)
    dump_yaml(plan, folder / "markets.yaml")
    return folder / "markets.yaml"


@pytest.fixture(scope="module")
def markets_project(tmp_path_factory):
    project = init_project(tmp_path_factory.mktemp("markets") / "project")
    shutil.copyfile(REPO / "src/impactbook/scaffold/difference_in_differences.ipynb",
                    project.root / "templates/difference_in_differences.ipynb")
    Catalog.load(project).pin_template("difference_in_differences",
                                       project.root / "templates/difference_in_differences.ipynb")
    data = generate_markets_data(project.resolve(MARKETS_DATA_PATH), START, 14)
    Catalog.load(project).pin_dataset(MARKETS_DATASET, data, contract=MARKETS_CONTRACT, synthetic=True)
    shutil.copyfile(_plan_file(project.root), project.root / PLAN)
    freeze_plan(project, PLAN)
    return project, run_plan(project, PLAN)


def test_the_event_study_runs_from_a_frozen_plan_to_a_gate(markets_project):
    project, outcome = markets_project
    record = outcome.record
    assert record.status is Status.COMPLETED, record.errors
    assert [v.metric for v in record.verdicts] == ["conversion", "revenue_per_session"]
    conversion = next(e for e in record.effects if e.metric == "conversion")
    assert conversion.difference_low < MARKETS_TRUE_EFFECT < conversion.difference_high  # the known effect
    html = outcome.report.read_text(encoding="utf-8")
    assert "Assumptions and limitations" in html and "Parallel trends" in html
    gate = cli(project, "gate", record.run_id)
    assert gate.returncode == {"ship": 0, "hold": 10, "rollback": 20}[record.decision.action.value], gate.stderr
    assert cli(project, "verify").returncode == 0


def test_compare_baseline_and_the_site_read_difference_in_differences_runs(markets_project):
    project, outcome = markets_project
    assert_runs_compare_baseline_and_site(project, PLAN, outcome.record.run_id)


def test_a_broken_parallel_trend_makes_the_verdict_inconclusive_with_its_reason(tmp_path):
    path = generate_markets_data(tmp_path / "trend.csv", START, 14, adopter_trend=0.0004)
    analysis = analyse_file(load_plan(_plan_file(tmp_path)), path, "csv")
    conversion = analysis.metrics[0]
    assert conversion.study.pretrend_p_value < 0.01 and conversion.study.average_p_value < 0.05
    assert conversion.verdict == "INCONCLUSIVE"
    assert conversion.note.startswith("diagnostic failed: pre-trend test p = ")


def test_too_few_clusters_is_a_failed_diagnostic(tmp_path):
    path = generate_markets_data(tmp_path / "few.csv", START, 14, markets=8, never=2)
    analysis = analyse_file(load_plan(_plan_file(tmp_path)), path, "csv")
    assert all(m.verdict == "INCONCLUSIVE" and "8 clusters < 10" in m.note for m in analysis.metrics)


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
    with pytest.raises(PlanError, match=r"design.estimator: Input should be 'twfe' or 'callaway_santanna'"):
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
    with pytest.raises(PlanError, match="wild_cluster_bootstrap applies to estimator twfe"):
        load_plan(_plan_file(tmp_path, estimator="callaway_santanna", inference="wild_cluster_bootstrap"))
