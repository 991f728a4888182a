"""A pipeline_validation plan end to end: frozen with its checks as hypotheses, run through `impactbook run`
(gates, Papermill, capture, store), a breach rolls back and `gate` exits 20; the report lists every check."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from impactbook.catalog import Catalog
from impactbook.demo import PIPELINE_CONTRACT, PIPELINE_DATASETS, generate_ranking_sessions
from impactbook.errors import PlanError
from impactbook.freezing import freeze_plan
from impactbook.plan import load_plan
from impactbook.record import Action, Status, Verdict
from impactbook.runner import run_plan
from impactbook.scaffold import init_project
from impactbook.yamlio import dump_yaml, load_yaml
from conftest import REPO, cli

PLAN = "plans/ranking-pipeline.yaml"


@pytest.fixture(scope="module")
def pipeline_project(tmp_path_factory):
    project = init_project(tmp_path_factory.mktemp("pipeline") / "project")
    shutil.copyfile(REPO / "src/impactbook/scaffold/pipeline_validation.ipynb",
                    project.root / "templates/pipeline_validation.ipynb")
    catalog = Catalog.load(project)
    catalog.pin_template("pipeline_validation", project.root / "templates/pipeline_validation.ipynb")
    for name, path, drift, offset in PIPELINE_DATASETS:
        Catalog.load(project).pin_dataset(name, generate_ranking_sessions(project.resolve(path), drift, offset),
                                          contract=PIPELINE_CONTRACT, synthetic=True)
    plan = load_yaml(REPO / PLAN, RuntimeError, PLAN)
    tomorrow = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
    plan["window"] = {"start": tomorrow, "end": tomorrow + dt.timedelta(days=13)}
    dump_yaml(plan, project.root / PLAN)
    freeze_plan(project, PLAN)
    return project, run_plan(project, PLAN)


def test_the_checks_are_the_plans_hypotheses_and_any_breach_rolls_back(pipeline_project):
    project, outcome = pipeline_project
    plan = load_plan(project.root / PLAN)
    record = outcome.record
    assert record.status is Status.COMPLETED, record.errors
    assert [v.metric for v in record.verdicts] == plan.design.check_ids()
    verdicts = {v.metric: v.verdict for v in record.verdicts}
    assert verdicts["perturbation.price_ranking_swap"] is Verdict.REFUTED  # the shipped fragile swap
    assert verdicts["contract.model"] is Verdict.CONFIRMED
    assert record.decision.action is Action.ROLLBACK
    assert "perturbation.price_ranking_swap" in record.decision.reason
    assert "INTERIM" not in record.labels  # a pinned evaluation set does not accrue outcomes


def test_gate_exits_20_and_the_report_lists_every_check(pipeline_project):
    project, outcome = pipeline_project
    gate = cli(project, "gate", outcome.record.run_id)
    assert gate.returncode == 20, gate.stdout + gate.stderr
    html = outcome.report.read_text(encoding="utf-8")
    for check in load_plan(project.root / PLAN).design.check_ids():
        assert check in html
    assert cli(project, "verify").returncode == 0


def test_a_pipeline_plan_keeps_its_metrics_in_the_design(tmp_path):
    plan = load_yaml(REPO / PLAN, RuntimeError, PLAN)
    plan["metrics"] = [{"id": "ndcg", "kind": "mean", "column": "x", "role": "primary", "direction": "increase"}]
    dump_yaml(plan, tmp_path / "plan.yaml")
    with pytest.raises(PlanError, match="leave the top-level metrics out"):
        load_plan(tmp_path / "plan.yaml")
    plan = load_yaml(REPO / PLAN, RuntimeError, PLAN)
    plan["decision_rule"] = {"rollback_when_refuted": ["perturbation.nope"]}
    dump_yaml(plan, tmp_path / "plan.yaml")
    with pytest.raises(PlanError, match=r"decision_rule.rollback_when_refuted names \['perturbation.nope'\]"):
        load_plan(tmp_path / "plan.yaml")


def test_compare_tracks_the_checks_across_runs(pipeline_project):
    project, first = pipeline_project
    second = run_plan(project, PLAN)
    done = cli(project, "compare", first.record.run_id, second.record.run_id, "--json")
    assert done.returncode == 0, done.stderr
    compared = {m["metric"]: m for m in json.loads(done.stdout)["metrics"]}
    assert set(compared) >= {"tolerance.ndcg_at_10", "perturbation.price_ranking_swap", "drift.price.psi"}
    assert not compared["perturbation.price_ranking_swap"]["conclusions_differ"]  # same seeds, same verdicts
