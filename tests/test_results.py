"""results.py and `impactbook template new`: any template that glues the standard `results` and `verdicts`
scraps works with compare, the plain-words effects and the gate; a malformed scrap fails the run, named."""

from __future__ import annotations

import json

import nbformat

from impactbook.record import Status
from impactbook.results import result_problems
from conftest import PLAN, cli, run

CUSTOM_PLAN = """\
id: learned
title: Custom template on the demo data
hypothesis: The candidate raises conversion without hurting revenue.
model_change: {baseline: ranker-v1, candidate: ranker-v2}
template: minimal
inputs: {data: demo_experiment}
design: {unit: user_id, variant_column: variant, expected_split: {control: 0.5, treatment: 0.5}}
window: {start: START, end: END, time_column: date}
alpha: 0.05
seed: 7
metrics:
  - {id: conversion, column: converted, kind: proportion, role: primary, direction: increase}
  - {id: revenue_per_user, column: revenue, kind: mean, role: guardrail, direction: increase, margin: -0.05}
  - {id: revenue_per_session, numerator: revenue, denominator: sessions, kind: ratio, role: secondary, direction: increase}
"""


def _custom_plan(project) -> str:
    from impactbook.plan import load_plan
    window = load_plan(project.root / PLAN).window
    path = project.root / "plans/learned.yaml"
    path.write_text(CUSTOM_PLAN.replace("START", str(window.start)).replace("END", str(window.end)))
    return "plans/learned.yaml"


def test_a_scaffolded_custom_template_runs_end_to_end_and_compares_with_ab_test(frozen_project):
    created = cli(frozen_project, "template", "new", "minimal")
    assert created.returncode == 0, created.stderr
    plan = _custom_plan(frozen_project)
    assert cli(frozen_project, "plan", "freeze", plan).returncode == 0
    done = cli(frozen_project, "run", plan, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    custom = json.loads(done.stdout)
    assert custom["verdicts"] == {"conversion": "CONFIRMED", "revenue_per_user": "CONFIRMED",
                                  "revenue_per_session": "INCONCLUSIVE"}
    reference = run(frozen_project).record.run_id
    compared = cli(frozen_project, "compare", reference, custom["run_id"], "--json")
    assert compared.returncode == 0, compared.stderr
    metrics = {m["metric"]: m for m in json.loads(compared.stdout)["metrics"]}
    assert {"conversion", "revenue_per_user"} <= set(metrics)
    rows = metrics["conversion"]["rows"]
    assert abs(rows[0]["difference"] - rows[1]["difference"]) < 1e-12, "same Wald test, same data, same number"


def test_a_malformed_verdicts_scrap_fails_the_run_naming_what_is_wrong(project):
    from conftest import run_variant

    def lowercase(notebook):
        for cell in notebook.cells:
            cell.source = cell.source.replace('ib.glue(name, value)',
                                              'ib.glue(name, {"conversion": "confirmed", "clicks": "CONFIRMED"} '
                                              'if name == "verdicts" else value)')
    outcome = run_variant(project, "sloppy", lowercase)
    assert outcome.record.status is Status.FAILED
    assert any("['clicks'] are not preregistered hypotheses" in e for e in outcome.record.errors), outcome.record.errors
    assert any("{'conversion': 'confirmed'}" in e and "upper case" in e for e in outcome.record.errors)


def test_result_rows_are_checked_field_by_field():
    problems = result_problems({"results": [{"metric": "conversion", "p_value": 1.5}, {"metric": "nope"}, 3]},
                               ["conversion"], ["conversion"])
    assert any(p.startswith("scrap 'results'[0].p_value: Input should be less than or equal to 1") for p in problems)
    assert "scrap 'results'[1].metric: 'nope' is not a metric of the plan (its metrics: conversion)" in problems
    assert "scrap 'results'[2]: expected an object with at least 'metric'" in problems


def test_the_scaffold_is_a_clean_template_with_a_contract(project):
    cli(project, "template", "new", "minimal")
    notebook = nbformat.read(project.root / "templates/minimal.ipynb", as_version=4)
    assert notebook.metadata["impactbook"]["outputs"] == {"results": "array", "verdicts": "object"}
    assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    assert cli(project, "template", "new", "minimal").returncode == 1
