"""rollout.py, decisionlog.py and the rollout_monitor template: staged rollouts watched daily with
anytime-valid intervals; every decision path; human decisions in the ledger."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from impactbook.catalog import Catalog
from impactbook.decisionlog import decisions_for, record_decision, rollout_status
from impactbook.demo import (FEEDBACK_CONTRACT, ROLLOUT_BREACH_DAY, ROLLOUT_CONTRACT, generate_feedback_data,
                             generate_rollout_data)
from impactbook.errors import ImpactbookError
from impactbook.freezing import freeze_plan
from impactbook.ledger import Ledger
from impactbook.plan import load_plan
from impactbook.designs.rollout import monitor_file
from impactbook.runner import run_plan
from conftest import cli, edit_yaml

ROLLOUT = "plans/rollout.yaml"


@pytest.fixture
def start(project):
    return load_plan(project.root / ROLLOUT).window.start


def _data(project, start, **kwargs):
    path = generate_rollout_data(project.root / "data/demo_rollout.csv", start, **kwargs)
    Catalog.load(project).pin_dataset("demo_rollout", path, contract=ROLLOUT_CONTRACT, replace=True, reason="test data",
                                         synthetic=True)
    feedback = generate_feedback_data(project.root / "data/demo_feedback.csv", start)
    Catalog.load(project).pin_dataset("demo_feedback", feedback, contract=FEEDBACK_CONTRACT, replace=True, synthetic=True,
                                         reason="test data")
    return path


def _monitor(project, path):
    return monitor_file(load_plan(project.root / ROLLOUT), path,
                        feedback=(project.root / "data/demo_feedback.csv", "csv"))


def test_breach_is_caught_on_or_soon_after_its_day_and_never_before(project, start):
    path = _data(project, start, breach_day=ROLLOUT_BREACH_DAY)
    monitor = _monitor(project, path)
    breach_date = start + dt.timedelta(days=ROLLOUT_BREACH_DAY)
    first = dt.date.fromisoformat(monitor.breaches[0]["date"])
    assert breach_date <= first <= breach_date + dt.timedelta(days=2)
    assert not any(r.get("breach") for r in monitor.series if dt.date.fromisoformat(r["date"]) < breach_date)
    assert monitor.decision == "rollback" and "stop-loss" in monitor.reason


def test_aa_rollout_never_pauses(project, start):
    """No effect at all, a look every day: the monitor must not pause, and cannot advance."""
    path = _data(project, start, breach_day=None, conversion_lift=0.0, harm=0.0)
    monitor = _monitor(project, path)
    assert monitor.breaches == [] and not any(r.get("breach") for r in monitor.series)
    assert monitor.decision == "continue" and "not yet confidently better: conversion" in monitor.reason


def test_advance_when_every_exit_criterion_is_met(project, start):
    path = _data(project, start, breach_day=None, conversion_lift=0.02)
    monitor = _monitor(project, path)
    assert monitor.decision == "advance" and "final stage 50%" in monitor.reason


def test_continue_while_a_stage_is_too_short(project, start):
    edit_yaml(project.root / ROLLOUT, (("rollout", "stages", 2, "min_days"), 10))
    path = _data(project, start, breach_day=None, conversion_lift=0.02)
    monitor = _monitor(project, path)
    assert monitor.decision == "continue" and "has run 5 of at least 10 days" in monitor.reason


def _run(project):
    freeze_plan(project, ROLLOUT)
    return run_plan(project, ROLLOUT)


@pytest.mark.parametrize("kwargs, action, code", [
    ({"breach_day": ROLLOUT_BREACH_DAY}, "rollback", 20),
    ({"breach_day": None, "conversion_lift": 0.02}, "ship", 0),
    ({"breach_day": None, "conversion_lift": 0.0, "harm": 0.0}, "hold", 10),
])
def test_monitoring_run_gates_automation(project, start, kwargs, action, code):
    _data(project, start, **kwargs)
    outcome = _run(project)
    assert outcome.record.status.value == "COMPLETED", outcome.record.errors
    assert outcome.record.decision.action.value == action
    done = cli(project, "gate", outcome.record.run_id)
    assert done.returncode == code
    html = (outcome.folder / "report.html").read_text()
    assert "Decision: " + action.upper() in html and "confidence sequence, day by day" in html
    assert html.count("data:image/png;base64,") >= 1, "the guardrail's confidence sequence is plotted"


def test_human_decisions_are_chained_in_the_ledger_and_overrides_are_marked(project, start):
    _data(project, start, breach_day=ROLLOUT_BREACH_DAY)
    run_id = _run(project).record.run_id
    with pytest.raises(ImpactbookError, match="needs a reason"):
        record_decision(project, run_id, "advance", "Ana", " ")
    agree = record_decision(project, run_id, "rollback", "Ben", "pause exposure, investigate revenue")
    assert agree["override"] is False and agree["automatic"] == "rollback"
    done = cli(project, "decide", run_id, "--action", "advance", "--by", "Ana", "--reason", "dip is a logging bug",
               "--json")
    assert done.returncode == 0, done.stderr
    override = json.loads(done.stdout)
    assert override["override"] is True and override["prev_hash"] == agree["hash"]
    assert [d["by"] for d in decisions_for(project, run_id)] == ["Ben", "Ana"]
    assert Ledger(project.ledger_path).problems() == []
    history = rollout_status(project, "rollout").runs[-1]
    assert history["stage"] == "50%" and history["decision"] == "rollback"
    assert history["intervals"]["revenue_per_user"]["breach"] is True
    assert [h["override"] for h in history["human_decisions"]] == [False, True]
    status = cli(project, "rollout", "status", "rollout")
    assert "OVERRIDE of the automatic roll back" in status.stdout
    report = cli(project, "report", run_id)
    assert "overrides the automatic rollback" in open(report.stdout.strip()).read()
    assert cli(project, "verify").returncode == 0


def test_feedback_summary_and_composite_score(project, start):
    import pandas as pd
    path = _data(project, start, breach_day=None, conversion_lift=0.02)
    monitor = _monitor(project, path)
    frame = pd.read_csv(project.root / "data/demo_feedback.csv")
    means = frame.groupby("variant").rating.mean()
    arms = monitor.feedback["arms"]
    assert arms["treatment"]["mean_rating"] == pytest.approx(means["treatment"], rel=1e-12)
    assert arms["control"]["responses"] == int((frame.variant == "control").sum())
    top = frame[frame.variant == "control"].reason.value_counts(normalize=True)
    assert arms["control"]["top_reasons"][0] == {"reason": top.index[0], "share": pytest.approx(top.iloc[0])}
    weights = {"conversion": 0.6, "revenue_per_user": 0.2, "feedback": 0.2}
    effects = {"conversion": monitor.latest["conversion"]["relative"],
               "revenue_per_user": monitor.latest["revenue_per_user"]["relative"],
               "feedback": means["treatment"] / means["control"] - 1}
    assert monitor.score["score"] == pytest.approx(sum(weights[k] * effects[k] for k in weights))
    assert monitor.score["passes"] and monitor.decision == "advance"


def test_continue_while_the_composite_score_is_too_low(project, start):
    edit_yaml(project.root / ROLLOUT, (("rollout", "score", "min_score"), 0.5))
    path = _data(project, start, breach_day=None, conversion_lift=0.02)
    monitor = _monitor(project, path)
    assert monitor.decision == "continue" and "composite acceptance score" in monitor.reason


def test_group_sequential_monitoring_tests_only_at_planned_looks(project, start):
    """With 5 planned looks (O'Brien-Fleming spending), rows exist only at the looks; the breach is
    caught at the first look after it and never before it; an A/A rollout raises no breach."""
    edit_yaml(project.root / ROLLOUT, (("rollout", "sequential"),
                                       {"method": "group_sequential", "looks": 5, "planned_units": 280000}))
    path = _data(project, start, breach_day=ROLLOUT_BREACH_DAY)
    monitor = _monitor(project, path)
    looks = [r["look"] for r in monitor.series if r["metric"] == "revenue_per_user"]
    assert looks == sorted(set(looks)) and len(looks) <= 5
    breach_date = start + dt.timedelta(days=ROLLOUT_BREACH_DAY)
    first = dt.date.fromisoformat(monitor.breaches[0]["date"])
    assert breach_date <= first <= breach_date + dt.timedelta(days=4)
    assert monitor.decision == "rollback" and "group-sequential (obrien-fleming)" in monitor.reason
    quiet = _monitor(project, _data(project, start, breach_day=None, conversion_lift=0.0, harm=0.0))
    assert quiet.breaches == [] and quiet.decision == "continue"
