"""The synthetic_control design end to end: a frozen plan, the panel pinned, aggregated in DuckDB, the
synthetic control with its placebos in a real kernel, verdicts, report and gate; a poor pre-period fit or
too few donors ends INCONCLUSIVE with the reason, never CONFIRMED."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from impactbook.catalog import Catalog
from impactbook.demo import STATES_CONTRACT, STATES_DATA_PATH, STATES_DATASET, STATES_TRUE_EFFECT, \
    generate_states_data
from impactbook.designs.synthetic_control import analyse_file
from impactbook.errors import PlanError
from impactbook.freezing import freeze_plan
from impactbook.plan import load_plan
from impactbook.record import Status
from impactbook.runner import run_plan
from impactbook.scaffold import init_project
from impactbook.yamlio import dump_yaml, load_yaml
from conftest import REPO, cli

EXAMPLE = REPO / "src/impactbook/scaffold/synthetic_control.yaml"
PLAN = "plans/states.yaml"
START = dt.date.today() + dt.timedelta(days=1)


def _plan_file(folder, **design):
    plan = load_yaml(EXAMPLE, RuntimeError, "synthetic_control.yaml")
    plan["window"] = {"start": START, "end": START + dt.timedelta(days=13), "time_column": "date"}
    plan["design"].update({"intervention": START, **design})
    dump_yaml(plan, folder / "states.yaml")
    return folder / "states.yaml"


@pytest.fixture(scope="module")
def states_project(tmp_path_factory):
    project = init_project(tmp_path_factory.mktemp("states") / "project")
    shutil.copyfile(REPO / "src/impactbook/scaffold/synthetic_control.ipynb",
                    project.root / "templates/synthetic_control.ipynb")
    Catalog.load(project).pin_template("synthetic_control", project.root / "templates/synthetic_control.ipynb")
    data = generate_states_data(project.resolve(STATES_DATA_PATH), START, 14)
    Catalog.load(project).pin_dataset(STATES_DATASET, data, contract=STATES_CONTRACT, synthetic=True)
    shutil.copyfile(_plan_file(project.root), project.root / PLAN)
    freeze_plan(project, PLAN)
    return project, run_plan(project, PLAN)


def test_the_synthetic_control_runs_from_a_frozen_plan_to_a_gate(states_project):
    project, outcome = states_project
    record = outcome.record
    assert record.status is Status.COMPLETED, record.errors
    assert [v.metric for v in record.verdicts] == ["conversion", "revenue_per_session"]
    conversion = next(e for e in record.effects if e.metric == "conversion")
    assert conversion.difference_low < STATES_TRUE_EFFECT < conversion.difference_high  # the known effect
    html = outcome.report.read_text(encoding="utf-8")
    assert "Assumptions and limitations" in html and "convex combination of the donor states" in html
    gate = cli(project, "gate", record.run_id)
    assert gate.returncode == {"ship": 0, "hold": 10, "rollback": 20}[record.decision.action.value], gate.stderr
    assert cli(project, "verify").returncode == 0


def test_a_known_effect_is_confirmed_with_the_placebo_rank(tmp_path):
    path = generate_states_data(tmp_path / "states.csv", START, 14)
    analysis = analyse_file(load_plan(_plan_file(tmp_path)), path, "csv")
    conversion, revenue = analysis.metrics
    assert conversion.verdict == "CONFIRMED" and conversion.result.p_value == 1 / 48  # rank 1 of 48
    assert all(d.passed for d in conversion.diagnostics)
    assert revenue.verdict == "CONFIRMED"  # non-inferior: the 90% interval lies above the -0.1 margin
    assert abs(sum(conversion.result.weights) - 1) < 1e-12 and min(conversion.result.weights) >= 0
    low, high = (analysis.results()[0][k] for k in ("leave_one_out_low", "leave_one_out_high"))
    assert low <= conversion.result.estimate <= high


def test_no_effect_is_not_confirmed(tmp_path):
    path = generate_states_data(tmp_path / "null.csv", START, 14, effect=0.0)
    conversion = analyse_file(load_plan(_plan_file(tmp_path)), path, "csv").metrics[0]
    assert conversion.verdict == "INCONCLUSIVE" and conversion.result.p_value > 0.05
    assert conversion.result.interval_low < 0 < conversion.result.interval_high


def test_a_poor_pre_period_fit_makes_the_verdict_inconclusive_with_its_reason(tmp_path):
    path = generate_states_data(tmp_path / "shock.csv", START, 14, pre_shock=0.02)
    conversion = analyse_file(load_plan(_plan_file(tmp_path)), path, "csv").metrics[0]
    assert conversion.verdict == "INCONCLUSIVE"
    assert conversion.note.startswith("diagnostic failed: pre-period RMSPE is ")
    assert "of the treated level > 5.0%" in conversion.note


def test_too_few_donors_is_a_failed_diagnostic(tmp_path):
    path = generate_states_data(tmp_path / "few.csv", START, 14, states=9)
    analysis = analyse_file(load_plan(_plan_file(tmp_path)), path, "csv")
    for metric in analysis.metrics:
        assert metric.verdict == "INCONCLUSIVE"
        assert "8 donors < 10" in metric.note and "8 placebos < 19" in metric.note


def test_excluded_units_leave_the_donor_pool(tmp_path):
    path = generate_states_data(tmp_path / "states.csv", START, 14, states=20)
    analysis = analyse_file(load_plan(_plan_file(tmp_path, exclude=["st02", "st03"])), path, "csv")
    assert len(analysis.donors) == 17 and not {"st01", "st02", "st03"} & set(analysis.donors)
    assert analysis.metrics[0].result.placebo_draws == 17


def test_design_mistakes_name_the_field(tmp_path):
    cases = [
        ({"assumptions": "trust me"}, r"design.assumptions: String should have at least 20 characters"),
        ({"exclude": ["st01"]}, r"exclude names treated units \['st01'\]"),
        ({"time": "state"}, r"unit and time must be different columns"),
        ({"treated": []}, r"design.treated: List should have at least 1 item"),
        ({"predictors": [{"column": "sessions", "weight": 2}, {"column": "conversion"}]},
         r"give every predictor a weight, or none"),
        ({"predictors": [{"column": "sessions", "periods": [START]}]}, r"predictors\[0\].periods .* are not before"),
        ({"predictors": [{"column": "sessions", "wieght": 1}]}, r"design.predictors\[0\].wieght: unknown field; did you mean .weight.\?"),
        ({"diagnostics": {"max_pre_rmspe": 0}}, r"design.diagnostics.max_pre_rmspe"),
    ]
    for change, expected in cases:
        with pytest.raises(PlanError, match=expected):
            load_plan(_plan_file(tmp_path, **change))
    assert load_plan(_plan_file(tmp_path, treated="st01")).design.treated == ["st01"]  # one unit, no brackets


def test_an_intervention_outside_the_panel_is_refused_naming_the_field(tmp_path):
    path = generate_states_data(tmp_path / "states.csv", START, 14, states=12)
    late = load_plan(_plan_file(tmp_path, intervention=START + dt.timedelta(days=60)))
    with pytest.raises(ValueError, match=r"design.intervention: .* leaves 98 of 98 periods before it"):
        analyse_file(late, path, "csv")
    with pytest.raises(ValueError, match=r"design.treated: units \['st99'\] have no rows"):
        analyse_file(load_plan(_plan_file(tmp_path, treated=["st99"])), path, "csv")
