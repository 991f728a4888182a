"""The interrupted_time_series design end to end: a frozen plan, the daily file pinned, aggregated in DuckDB,
both estimators in a real kernel under Papermill, verdicts, report and gate; the aggregation checked
against pandas; a failed diagnostic ends INCONCLUSIVE with the reason, never CONFIRMED; plan mistakes
name the field."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from impactbook.catalog import Catalog
from impactbook.demo import (ITS_CONTRACT, ITS_DATA_PATH, ITS_DATASET, ITS_PLAN_PATH, ITS_TRUE_EFFECT,
                             _quasi_experiment, generate_its_data)
from impactbook.designs.interrupted_time_series import analyse_file
from impactbook.errors import PlanError
from impactbook.plan import load_plan
from impactbook.record import Status
from impactbook.yamlio import dump_yaml, load_yaml
from conftest import (REPO, assert_gate_follows_the_decision_and_verify_passes,
                      assert_runs_compare_baseline_and_site, project_with_template)

EXAMPLE = REPO / "src/impactbook/scaffold/interrupted_time_series.yaml"
PLAN = "plans/its.yaml"
START = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=2)  # UTC, as freezing: still ahead after midnight
DAYS = 28


def _plan_file(folder, name="its.yaml", window=None, **design):
    plan = load_yaml(EXAMPLE, RuntimeError, str(EXAMPLE))
    plan["window"] = window or {"start": START, "end": START + dt.timedelta(days=DAYS - 1), "time_column": "date"}
    plan["design"]["intervention"] = START
    plan["design"].update(design)
    dump_yaml(plan, folder / name)
    return folder / name


@pytest.fixture(scope="module")
def its_project(tmp_path_factory):
    project = project_with_template(tmp_path_factory.mktemp("its") / "project", "interrupted_time_series")
    _plan_file(project.root / "plans")
    # as `impactbook demo` does once plans/its.yaml exists: freeze, generate over the window, pin, run
    outcome, pinned = _quasi_experiment(project, ITS_PLAN_PATH, ITS_DATASET, ITS_DATA_PATH, ITS_CONTRACT,
                                        generate_its_data, progress=lambda message: None)
    assert pinned and Catalog.load(project).model.datasets[ITS_DATASET].synthetic
    return project, outcome


def test_the_time_series_runs_from_a_frozen_plan_to_a_gate(its_project):
    project, outcome = its_project
    record = outcome.record
    assert record.status is Status.COMPLETED, record.errors
    assert [v.metric for v in record.verdicts] == ["conversion", "revenue_per_session"]
    conversion = next(e for e in record.effects if e.metric == "conversion")
    assert conversion.difference_low < ITS_TRUE_EFFECT < conversion.difference_high  # the known effect
    scraps = json.loads((outcome.folder / "scraps.json").read_text(encoding="utf-8"))
    scraps = scraps.get("scraps", scraps)
    assert scraps["verdicts"]["conversion"] == "CONFIRMED"
    html = outcome.report.read_text(encoding="utf-8")  # the data table, each value escaped once (was twice)
    assert "<td>missing values</td>" in html and f"<td>{scraps['data_quality']['first_period']}</td>" in html
    panels = [row for row in scraps["its_series"] if row["metric"] == "conversion"]
    assert [row["estimator"] for row in panels] == ["structural"]  # the primary's panels
    row = scraps["results"][0]
    assert row["segmented_difference_low"] < ITS_TRUE_EFFECT < row["segmented_difference_high"]  # the other one
    assert all(len(row["effect"]) == DAYS and len(row["cumulative"]) == DAYS for row in panels)
    assert {row["estimator"] for row in scraps["placebos"]} == {"structural", "segmented"}
    assert {row["series"] for row in scraps["series_effects"]} == {"r1", "r2", "r3"}
    html = outcome.report.read_text(encoding="utf-8")
    assert "Assumptions and limitations" in html and "pre-period pattern" in html
    assert_gate_follows_the_decision_and_verify_passes(project, record)


def test_compare_baseline_and_the_site_read_interrupted_time_series_runs(its_project):
    project, outcome = its_project
    assert_runs_compare_baseline_and_site(project, PLAN, outcome.record.run_id)


def test_the_demo_data_is_deterministic_and_says_what_it_holds(tmp_path):
    paths = [generate_its_data(tmp_path / f"{n}.csv", dt.date(2026, 11, 30), 28) for n in "ab"]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    frame = pd.read_csv(paths[0])
    assert list(frame.columns) == ["date", "region", "sessions", "conversion", "revenue_per_session", "marketing_spend"]
    assert len(frame) == (728 + 28) * 3 and frame.date.min() == "2024-12-02" and frame.date.max() == "2026-12-27"


def test_the_template_declares_its_contract_and_parameters_and_stores_no_outputs():
    import nbformat

    from impactbook.capture import output_contract
    from impactbook.gates import template_parameter_names

    template = REPO / "src/impactbook/scaffold/interrupted_time_series.ipynb"
    assert output_contract(template) == {"results": "array", "verdicts": "object", "its_series": "array",
                                         "placebos": "array", "diagnostics": "array", "series_effects": "array",
                                         "data_quality": "object"}
    assert template_parameter_names(template) == ["daily", "plan", "seed"]
    notebook = nbformat.read(template, as_version=4)
    assert not any(c.get("outputs") or c.get("execution_count") for c in notebook.cells if c.cell_type == "code")


def _quick(folder, **design):
    """The example plan without placebos and per-series fits' cost: what the design-level tests vary."""
    design = {"placebos": 0, "series": None, **design}
    return load_plan(_plan_file(folder, **design))


def test_the_pooled_series_is_the_mean_of_every_row_of_the_period(tmp_path):
    path = generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=120)
    analysis = analyse_file(_quick(tmp_path, estimator="segmented", seasonality=[7]), path, "csv")
    frame = pd.read_csv(path)  # the reference: pandas over every row
    expected = frame.groupby("date").conversion.mean().to_numpy()
    assert np.max(np.abs(analysis.table.values("m_conversion", "mean") - expected)) < 1e-12
    total = frame.groupby("date").revenue_per_session.sum().to_numpy()
    assert np.max(np.abs(analysis.table.values("m_revenue_per_session", "sum") - total)) < 1e-9
    assert analysis.data_quality["pre_periods"] == 120 and analysis.data_quality["post_periods"] == DAYS


def test_rows_after_the_window_or_without_a_date_are_left_out_and_counted(tmp_path):
    path = generate_its_data(tmp_path / "its.csv", START, DAYS + 7, pre_days=120)
    with path.open("a") as handle:
        handle.write(",r1,100,0.05,3.0,1000.0\n" * 5)  # five rows without a date
    analysis = analyse_file(_quick(tmp_path, estimator="segmented", seasonality=[7]), path, "csv")
    assert analysis.data_quality["rows_excluded"] == 7 * 3 + 5 and analysis.data_quality["post_periods"] == DAYS
    assert analysis.data_quality["series_rows"] == 120 + DAYS  # one pooled series per period (series: null)


def test_period_numbers_give_the_same_analysis_as_dates(tmp_path):
    path = generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=120)
    frame = pd.read_csv(path)
    frame["week_day"] = (pd.to_datetime(frame.date) - pd.Timestamp(START)).dt.days * 3  # a grid with step 3
    frame.to_csv(tmp_path / "numbered.csv", index=False)
    dated = analyse_file(_quick(tmp_path, estimator="segmented", seasonality=[7]), path, "csv")
    window = {"start": START, "end": START + dt.timedelta(days=DAYS - 1), "time_column": "week_day",
              "time_type": "number"}
    numbered_plan = load_plan(_plan_file(tmp_path, "numbered.yaml", window=window, placebos=0, series=None,
                                         estimator="segmented", seasonality=[7], time="week_day", intervention=0))
    numbered = analyse_file(numbered_plan, tmp_path / "numbered.csv", "csv")
    assert numbered.table.grid.step == 3 and numbered.data_quality["pre_periods"] == 120
    for a, b in zip(dated.results(), numbered.results()):
        assert abs(a["difference"] - b["difference"]) < 1e-12 and abs(a["p_value"] - b["p_value"]) < 1e-12


def test_an_intervention_off_the_data_grid_is_refused_by_name(tmp_path):
    frame = pd.read_csv(generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=210))
    weekly = frame[(pd.to_datetime(frame.date) - pd.Timestamp(START)).dt.days % 7 == 3]  # weekly, off by 3 days
    weekly.to_csv(tmp_path / "weekly.csv", index=False)
    with pytest.raises(ValueError, match=r"design.intervention .* is not on the data's grid of periods "
                                         r"\(every 7 days from "):
        analyse_file(_quick(tmp_path, estimator="segmented", seasonality=[]), tmp_path / "weekly.csv", "csv")


def test_no_data_after_the_intervention_is_inconclusive_not_refuted(tmp_path):
    frame = pd.read_csv(generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=120))
    frame[pd.to_datetime(frame.date) < pd.Timestamp(START)].to_csv(tmp_path / "pre.csv", index=False)
    analysis = analyse_file(_quick(tmp_path, estimator="segmented", seasonality=[7]), tmp_path / "pre.csv", "csv")
    assert analysis.verdicts() == {"conversion": "INCONCLUSIVE", "revenue_per_session": "INCONCLUSIVE"}
    assert analysis.results()[0]["note"] == "not estimable: no observation after the intervention"


def test_no_change_is_not_confirmed(tmp_path):
    path = generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=364, effect=0.0)
    analysis = analyse_file(_quick(tmp_path, seasonality=[7]), path, "csv")
    conversion = analysis.results()[0]
    assert conversion["difference_low"] < 0 < conversion["difference_high"]
    assert analysis.verdicts()["conversion"] == "INCONCLUSIVE"


def test_a_failed_diagnostic_makes_the_verdict_inconclusive_with_its_reason(tmp_path):
    path = generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=364)
    undeclared = analyse_file(_quick(tmp_path, seasonality=[]), path, "csv")  # the weekly cycle left in
    conversion = undeclared.metrics[0]
    assert conversion.primary.average_p_value < 0.05
    assert conversion.verdict == "INCONCLUSIVE"
    assert conversion.note.startswith("diagnostic failed: Ljung-Box p = ")
    strict = analyse_file(_quick(tmp_path, seasonality=[7], diagnostics={"pre_mape_max": 0.001}), path, "csv")
    assert all(m.verdict == "INCONCLUSIVE" and "pre-period MAPE" in m.note for m in strict.metrics)


def test_placebos_that_find_effects_make_the_verdict_inconclusive(tmp_path):
    path = generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=364)
    analysis = analyse_file(_quick(tmp_path, seasonality=[7], estimator="segmented", placebos=6,
                                   diagnostics={"ljung_box_p_min": 0, "placebo_fpr_max": 0.0}), path, "csv")
    conversion = analysis.metrics[0]
    rate = conversion.placebos["segmented"].false_positive_rate
    assert rate > 0 and conversion.verdict == "INCONCLUSIVE" and "placebo interventions were significant" in conversion.note


def test_placebos_that_cannot_be_estimated_are_a_failed_diagnostic(tmp_path):
    path = generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=12)  # placebos would have 6 periods
    analysis = analyse_file(_quick(tmp_path, seasonality=[7], estimator="segmented", placebos=3,
                                   diagnostics={"ljung_box_p_min": 0, "ljung_box_lags": 4}), path, "csv")
    conversion = analysis.metrics[0]
    assert conversion.primary is not None and conversion.verdict == "INCONCLUSIVE"
    assert conversion.note == ("diagnostic failed: placebo interventions could not be estimated (6 pre-period "
                               "values; the model needs at least 8)")
    assert analysis.results()[0]["structural_note"] == ("not estimable: 12 pre-period values; the model needs at "
                                                        "least 16")  # the other estimator says why it is missing


def test_design_mistakes_name_the_field(tmp_path):
    with pytest.raises(PlanError, match=r"design.assumptions: String should have at least 20 characters"):
        load_plan(_plan_file(tmp_path, assumptions="trust me"))
    with pytest.raises(PlanError, match=r"design.intervention \(.*\) must be window.start"):
        load_plan(_plan_file(tmp_path, intervention=START + dt.timedelta(days=3)))
    with pytest.raises(PlanError, match=r"design.regressors \['conversion'\] are metric columns"):
        load_plan(_plan_file(tmp_path, regressors=["conversion"]))
    with pytest.raises(PlanError, match=r"time, series and regressors must be different columns"):
        load_plan(_plan_file(tmp_path, series="date"))
    with pytest.raises(PlanError, match=r"seasonality: a season is longer than 2 periods"):
        load_plan(_plan_file(tmp_path, seasonality=[7, 1.5]))
    with pytest.raises(PlanError, match=r"design.estimator"):
        load_plan(_plan_file(tmp_path, estimator="arima"))
    with pytest.raises(PlanError, match=r"design.diagnostics.placebo_fpr_max"):
        load_plan(_plan_file(tmp_path, diagnostics={"placebo_fpr_max": 1.5}))
    with pytest.raises(PlanError, match=r"design.seasonalty: unknown field; did you mean 'seasonality'\?"):
        load_plan(_plan_file(tmp_path, seasonalty=[7]))
    with pytest.raises(PlanError, match=r"design.intervention is a period number: set window.time_type: number"):
        load_plan(_plan_file(tmp_path, intervention=12))


def test_a_series_too_short_to_estimate_completes_inconclusive_through_the_template(tmp_path):
    """One day before the intervention: the analysis says 'not estimable', and the template's plot cell
    crashed on the empty its_series (AttributeError), so the run ended FAILED with a Python error."""
    from impactbook.freezing import freeze_plan
    from impactbook.runner import run_plan

    project = project_with_template(tmp_path / "project", "interrupted_time_series")
    _plan_file(project.root / "plans")
    path = project.resolve(ITS_DATA_PATH)
    frame = pd.read_csv(generate_its_data(path, START, DAYS))
    frame[pd.to_datetime(frame.date) >= pd.Timestamp(START - dt.timedelta(days=1))].to_csv(path, index=False)
    Catalog.load(project).pin_dataset(ITS_DATASET, path, contract=ITS_CONTRACT, synthetic=True)
    freeze_plan(project, PLAN)
    outcome = run_plan(project, PLAN)
    record = outcome.record
    assert record.status is Status.COMPLETED, record.errors
    assert {v.verdict.value for v in record.verdicts} == {"INCONCLUSIVE"}
    scraps = json.loads((outcome.folder / "scraps.json").read_text(encoding="utf-8"))
    scraps = scraps.get("scraps", scraps)
    assert scraps["its_series"] == [] and all("not estimable" in row["note"] for row in scraps["results"])


def test_dates_stored_as_text_in_parquet_are_dates(tmp_path):
    """A Parquet file whose date column holds ISO strings passed the gate (it reads them as dates) and then
    ended the run in 'Conversion Error: Could not convert string '2024-03-04' to INT64'."""
    path = generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=120)
    pd.read_csv(path, dtype={"date": str}).to_parquet(tmp_path / "its.parquet")
    plan = _quick(tmp_path, estimator="segmented", seasonality=[7])
    as_text, as_dates = analyse_file(plan, tmp_path / "its.parquet", "parquet"), analyse_file(plan, path, "csv")
    assert as_text.scraps()["results"] == as_dates.scraps()["results"]
    assert as_text.data_quality == as_dates.data_quality


def test_blank_outcomes_and_series_periods_of_several_rows_are_counted(tmp_path):
    """A blank conversion left its period's mean over the other rows with rows_excluded 0; a duplicated row
    was averaged into its region's day (it moved the effect from 0.002 to 0.056, CONFIRMED) unseen."""
    path = generate_its_data(tmp_path / "its.csv", START, DAYS, pre_days=120)
    frame = pd.read_csv(path)
    frame.loc[frame.index[:7], "conversion"] = None
    late = frame[frame.date >= START.isoformat()].head(3)
    pd.concat([frame, late]).to_csv(tmp_path / "changed.csv", index=False)
    for series, several in ((None, None), ("region", 3)):  # one pooled series: several rows a period by design
        plan = _quick(tmp_path, estimator="segmented", seasonality=[7], series=series)
        quality = analyse_file(plan, tmp_path / "changed.csv", "csv").data_quality
        assert quality["missing_values"] == {"conversion": 7, "revenue_per_session": 0}
        assert quality.get("series_periods_with_several_rows") == several and quality["rows_excluded"] == 0
