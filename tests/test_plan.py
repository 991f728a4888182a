"""plan.py: schema, canonical form and hash; errors name file, line and field path."""

from __future__ import annotations

import pytest

from impactbook.errors import PlanError
from impactbook.plan import load_plan
from conftest import PLAN, edit_yaml


def test_example_plan_is_valid_and_hash_is_stable(project):
    first = load_plan(project.root / PLAN)
    second = load_plan(project.root / PLAN)
    assert first.sha256 == second.sha256
    assert [m.id for m in first.hypotheses] == ["conversion", "revenue_per_user", "revenue_per_session"]
    assert first.family == ["conversion", "revenue_per_session"]


def test_comment_and_formatting_edits_do_not_change_the_hash(project):
    path = project.root / PLAN
    before = load_plan(path).sha256
    path.write_text("# a new comment\n" + path.read_text().replace("alpha: 0.05", "alpha:    0.05"))
    assert load_plan(path).sha256 == before


def test_content_edit_changes_the_hash(project):
    path = project.root / PLAN
    before = load_plan(path).sha256
    edit_yaml(path, (("alpha",), 0.01))
    assert load_plan(path).sha256 != before


def test_malformed_yaml_names_file_and_line(project):
    path = project.root / PLAN
    path.write_text("id: example\nmetrics: [\n  - {id: x\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path, "plans/example.yaml")
    assert str(caught.value).startswith("plans/example.yaml:")
    assert "invalid YAML" in str(caught.value)


def test_guardrail_margin_error_names_field_path_and_line(project):
    path = project.root / PLAN
    edit_yaml(path, (("metrics", 1, "margin"), 0.02))
    with pytest.raises(PlanError) as caught:
        load_plan(path, "plans/example.yaml")
    message = str(caught.value)
    assert "metrics[1]" in message
    assert "must be a negative number for a guardrail (got 0.02)" in message
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "margin: 0.02" in text)
    assert message.startswith(f"plans/example.yaml:{line}: metrics[1].margin:")


@pytest.mark.parametrize("change, expected", [
    ((("alpha",), 0.7), "alpha: Input should be less than 0.5"),
    ((("design", "expected_split"), {"control": 0.6, "treatment": 0.6}), "must sum to 1"),
    ((("metrics", 0, "kind"), "median"), "metrics[0].kind"),
    ((("window", "end"), "2000-01-01"), "is before start"),
    ((("window", "end"), "9999-12-31"), "window.end: 9999-12-31 is outside 1000-01-01 to 8999-12-31"),
    ((("decision_rule", "ship_when_confirmed"), ["nope"]), "not preregistered"),
    ((("colour",), "blue"), "colour: unknown field"),
    ((("seed",), ...), "seed: Field required"),
    ((("metrics", 2, "numerator"), ...), "a ratio metric names `numerator` and `denominator`"),
    ((("metrics", 0, "cap"), {"quantile": 0.99}), "cap (winsorization) applies to mean metrics only"),
    ((("metrics", 1, "covariate"), "revenue"), "metrics[1]: covariate: 'revenue' is the metric's own column"),
    ((("metrics", 1, "cap", "quantile"), 0.3), "metrics[1].cap.quantile: Input should be greater than 0.5"),
    ((("metrics", 1, "margin_type"), "percent"), "metrics[1].margin_type"),
    ((("correction", "family"), ["revenue"]), "correction.family names ['revenue']"),
    ((("correction", "method"), "bonferroni"), "correction.method"),
    ((("segments", "min_size"), 0), "segments.min_size"),
    ((("design", "kind"), "crossover"), "design: design.kind must be one of randomized, difference_in_differences, interrupted_time_series, synthetic_control, observational, pipeline_validation"),
    ((("design", "untis"), "user_id"), "design.untis: unknown field; did you mean 'unit'?"),
])
def test_schema_errors_are_specific(project, change, expected):
    path = project.root / PLAN
    edit_yaml(path, change)
    with pytest.raises(PlanError) as caught:
        load_plan(path, "plans/example.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("plans/example.yaml")


def test_error_reports_the_line_of_the_offending_field(project):
    path = project.root / PLAN
    edit_yaml(path, (("alpha",), 0.9))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("alpha:"))
    with pytest.raises(PlanError) as caught:
        load_plan(path, "plans/example.yaml")
    assert str(caught.value).startswith(f"plans/example.yaml:{line}: alpha:")


def test_injected_parameters_are_inputs_plan_and_seed(project):
    plan = load_plan(project.root / PLAN)
    assert set(plan.template_parameters()) == {"experiment", "plan", "seed"}


@pytest.mark.parametrize("change, expected", [
    ((("rollout", "acceptance"), ["clicks"]), "rollout names metrics ['clicks']"),
    ((("rollout", "stop_loss", 0, "threshold"), 0.05), "rollout.stop_loss[0].threshold: Input should be less than 0"),
    ((("rollout", "feedback", "input"), "surveys"), "rollout.feedback.input 'surveys' is not one of the plan's inputs"),
    ((("rollout", "score", "weights"), {"nps": 1.0}), "rollout.score.weights names ['nps']"),
    ((("rollout", "stages", 1, "name"), "5%"), "stage names must be unique"),
    ((("rollout", "stages", 0, "exposure"), 1.5), "rollout.stages[0].exposure"),
    ((("rollout", "recent"), {"window": 0}), "rollout.recent: window must be 'stage' or a number of days"),
    ((("rollout", "recent"), {"window": "week"}), "rollout.recent.window"),
    ((("rollout", "recent"), {"alpha_share": 1.0}), "rollout.recent.alpha_share: Input should be less than 1"),
    ((("rollout", "sequential"), {"method": "group_sequential"}), "needs planned_units or planned_information"),
    ((("rollout", "sequential"), {"method": "group_sequential", "planned_information": -3}),
     "rollout.sequential.planned_information: Input should be greater than 0"),
])
def test_rollout_schema_errors_are_specific(project, change, expected):
    path = project.root / "plans/rollout.yaml"
    edit_yaml(path, change)
    with pytest.raises(PlanError) as caught:
        load_plan(path, "plans/rollout.yaml")
    assert expected in str(caught.value)
