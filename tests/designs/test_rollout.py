"""rollout.py, decisionlog.py and the rollout_monitor template: staged rollouts watched daily with
anytime-valid intervals; every decision path; human decisions in the ledger."""

from __future__ import annotations

import datetime as dt
import json

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from impactbook import stats

from impactbook.catalog import Catalog
from impactbook.decisionlog import decisions_for, record_decision, rollout_status
from impactbook.demo import (FEEDBACK_CONTRACT, ROLLOUT_BREACH_DAY, ROLLOUT_CONTRACT, ROLLOUT_SCHEDULE,
                             generate_feedback_data, generate_rollout_data)
from impactbook.designs.rollout_simulation import Scenario, outcome_of, simulate_rollout
from impactbook.errors import ImpactbookError
from impactbook.freezing import freeze_plan
from impactbook.ledger import Ledger
from impactbook.plan import Sequential, load_plan
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
    assert "revenue_per_user since " in status.stdout and history["recent_intervals"]["revenue_per_user"]["breach"]
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


def test_group_sequential_looks_sit_at_information_fractions(project, start):
    """5 looks (O'Brien-Fleming spending, recent window off): a look only on the day the information
    fraction first reaches k/5, its boundary the Lan-DeMets bound at the fractions actually observed
    (exactly what group_sequential_bounds gives for them), and the window's last day the final analysis,
    which spends all the alpha left (exact overall error 5%) although the information fell short; the breach is
    caught at the first look after it and never before it; an A/A rollout raises no breach."""
    edit_yaml(project.root / ROLLOUT, (("rollout", "sequential"),
                                       {"method": "group_sequential", "looks": 5, "planned_units": 280000}),
              (("rollout", "recent"), None))
    path = _data(project, start, breach_day=ROLLOUT_BREACH_DAY)
    monitor = _monitor(project, path)
    rows = [r for r in monitor.series if r["metric"] == "revenue_per_user"]
    fractions = [r["information_fraction"] for r in rows]
    assert [r["look"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) <= 5
    assert all(f >= k / 5 - 1e-9 for f, k in zip(fractions[:-1], range(1, 5)))
    bounds = [r["boundary_z"] for r in rows]
    assert bounds[:-1] == pytest.approx(stats.group_sequential_bounds(fractions[:-1], 0.05), abs=1e-6)
    final = rows[-1]["date"] == load_plan(project.root / ROLLOUT).window.end.isoformat()
    assert final, "the window's last day is the final analysis"
    assert stats.crossing_probability(bounds, fractions) == pytest.approx(0.05, abs=1e-5), "it spends all alpha"
    assert fractions[0] < 0.25, "the first look comes when a fifth of the information, not of the units, is in"
    breach_date = start + dt.timedelta(days=ROLLOUT_BREACH_DAY)
    first = dt.date.fromisoformat(monitor.breaches[0]["date"])
    assert breach_date <= first <= breach_date + dt.timedelta(days=4)
    assert monitor.decision == "rollback" and "group-sequential (obrien-fleming)" in monitor.reason
    quiet = _monitor(project, _data(project, start, breach_day=None, conversion_lift=0.0, harm=0.0))
    assert quiet.breaches == [] and quiet.decision == "continue"


SCHEDULE_PLAN = Path(__file__).resolve().parents[2] / "plans/rollout.yaml"


def _simulate(plan, scenario, rollouts, seed):
    rng = np.random.default_rng(seed)
    return [outcome_of(plan, simulate_rollout(plan, scenario, ROLLOUT_SCHEDULE, 20_000, rng)) for _ in range(rollouts)]


def _ceiling(rate, rollouts):
    """The most alarms a true rate of `rate` gives in `rollouts` with probability 0.999."""
    return int(binom.ppf(0.999, rollouts, rate))


@pytest.mark.parametrize("scenario", [
    Scenario("conversion +0.1 pp a day in both arms", conversion_trend=0.001),
    Scenario("revenue -15% in both arms from day 8", dip=0.15, dip_day=8),
    Scenario("revenue exactly at the -5% stop-loss threshold", revenue_effect=-0.05),
], ids=["trend", "dip", "threshold"])
@pytest.mark.parametrize("method", ["msprt", "group_sequential"])
def test_no_effect_and_a_shared_trend_give_false_alarms_within_alpha(scenario, method):
    """300 simulated rollouts of the demo schedule with a look every day: no false advance (acceptance
    metric confidently better with no true lift) and no false rollback (stop-loss breached with the true
    effect at or above the threshold) beyond what alpha/2 allows (the 99.9% binomial quantile). Pooled
    across days, the trend gave 26-71% false advances (issue 15)."""
    plan = load_plan(SCHEDULE_PLAN)
    if method == "group_sequential":
        plan = plan.model_copy(update={"rollout": plan.rollout.model_copy(update={
            "sequential": Sequential(method="group_sequential", looks=5, planned_units=280_000)})})
    outcomes = _simulate(plan, scenario, 300, seed=31)
    advances = sum(o.confident_gain_day is not None for o in outcomes)
    rollbacks = sum(o.breach_day is not None for o in outcomes)
    assert advances <= _ceiling(0.025, 300) and rollbacks <= _ceiling(0.025, 300), (advances, rollbacks)


def test_the_recent_window_catches_a_drop_that_starts_mid_rollout():
    """A 15% revenue drop from day 9 (the 50% stage), 200 simulated rollouts: with the recent-window
    stop-loss nearly every rollout is rolled back within the window, most within 2 days; on all data
    alone the drop is diluted by the 9 days before it and far more are missed or late."""
    plan = load_plan(SCHEDULE_PLAN)
    drop = Scenario("revenue -15% from day 9", revenue_effect=-0.15, effect_day=9)
    with_window = _simulate(plan, drop, 200, seed=41)
    cumulative_only = _simulate(plan.model_copy(update={"rollout": plan.rollout.model_copy(update={"recent": None})}),
                                drop, 200, seed=41)
    caught = [o.breach_day for o in with_window if o.breach_day is not None]
    assert len(caught) >= 190 and min(caught) >= 9 and np.median(caught) <= 11
    assert sum(o.breach_day is not None for o in cumulative_only) < 170


def test_a_stage_whose_arms_do_not_match_its_exposure_holds_the_rollout(project, start):
    """A quarter of the 25% stage's control units relabelled as treatment: the per-stage sample-ratio
    check fails for that stage only, the monitor holds with the reason, and no verdict is CONFIRMED."""
    import pandas as pd
    path = _data(project, start, breach_day=None, conversion_lift=0.02)
    frame = pd.read_csv(path)
    shifted = (frame.stage == "25%") & (frame.variant == "control") & (frame.user_id % 4 == 0)
    frame.loc[shifted, "variant"] = "treatment"
    frame.to_csv(path, index=False)
    monitor = _monitor(project, path)
    mismatched = [c["stage"] for c in monitor.stage_srm if c["mismatch"]]
    assert mismatched == ["25%"] and [c["stage"] for c in monitor.stage_srm] == ["5%", "25%", "50%"]
    assert monitor.decision == "continue" and "sample ratio mismatch in stage 25%" in monitor.reason
    assert "CONFIRMED" not in monitor.verdicts(load_plan(project.root / ROLLOUT)).values()


def _with_drift_reference(project, start, scale: float):
    """A pinned reference dataset (rollout-shaped traffic with revenue multiplied by `scale`), declared as
    the plan's drift reference with a PSI and a KS check on revenue."""
    import pandas as pd
    path = generate_rollout_data(project.root / "data/reference.csv", start, breach_day=None, conversion_lift=0.0,
                                 harm=0.0, seed=7)
    frame = pd.read_csv(path)
    frame["revenue"] = (frame.revenue * scale).round(2)
    frame.to_csv(path, index=False)
    Catalog.load(project).pin_dataset("demo_reference", path, contract=ROLLOUT_CONTRACT, replace=True, reason="test data",
                                      synthetic=True)
    edit_yaml(project.root / ROLLOUT, (("inputs", "reference"), "demo_reference"),
              (("rollout", "drift"), {"reference": "reference", "checks": [
                  {"column": "revenue", "statistic": "psi", "threshold": 0.2},
                  {"column": "revenue", "statistic": "ks", "threshold": 0.2}]}))
    return path


@pytest.mark.parametrize("scale, held", [(1.0, False), (1.6, True)])
def test_drift_of_the_candidates_traffic_against_a_reference_holds_the_rollout(project, start, scale, held):
    """Candidate traffic of the current stage against a pinned reference: alike, nothing breaches and the
    rollout advances; with the reference's revenue 1.6x, PSI and KS breach and the monitor holds, naming the
    column, the statistic and the stage."""
    path = _data(project, start, breach_day=None, conversion_lift=0.02)
    reference = _with_drift_reference(project, start, scale)
    monitor = monitor_file(load_plan(project.root / ROLLOUT), path, feedback=(project.root / "data/demo_feedback.csv",
                                                                              "csv"), reference=(reference, "csv"))
    assert [(d["stage"], d["column"]) for d in monitor.drift] == [("50%", "revenue")] * 2
    assert all(d["breached"] is held for d in monitor.drift)
    if held:
        assert monitor.decision == "continue" and "drift in stage 50%: revenue psi" in monitor.reason
    else:
        assert monitor.decision == "advance" and all(d["value"] < 0.05 for d in monitor.drift)


def test_a_drift_reference_must_be_a_plan_input(project):
    edit_yaml(project.root / ROLLOUT, (("rollout", "drift"), {"reference": "baseline", "checks": [
        {"column": "revenue", "statistic": "psi", "threshold": 0.2}]}))
    with pytest.raises(Exception, match="rollout.drift.reference 'baseline' must name one of the plan's inputs"):
        load_plan(project.root / ROLLOUT)


def test_a_monitoring_run_with_drift_checks_holds_and_reports_them(project, start):
    """Through the gates (the reference's columns checked as its own role) and the template in a real
    kernel: the breached drift check holds the rollout (gate exit 10) and the report shows the drift table."""
    _data(project, start, breach_day=None, conversion_lift=0.02)
    _with_drift_reference(project, start, 1.6)
    outcome = _run(project)
    assert outcome.record.status.value == "COMPLETED", outcome.record.gate
    assert outcome.record.decision.action.value == "hold" and "drift in stage 50%" in outcome.record.decision.reason
    assert cli(project, "gate", outcome.record.run_id).returncode == 10
    html = (outcome.folder / "report.html").read_text()
    assert "Drift" in html and "BREACHED" in html


def test_a_drift_column_missing_from_the_reference_is_named_before_the_kernel(project, start):
    _data(project, start, breach_day=None, conversion_lift=0.02)
    _with_drift_reference(project, start, 1.0)
    edit_yaml(project.root / ROLLOUT, (("rollout", "drift", "checks", 0, "column"), "basket_size"))
    outcome = _run(project)
    assert outcome.record.status.value == "INADMISSIBLE"
    assert "rollout.drift.checks[0].column: no column 'basket_size'" in json.dumps(outcome.record.gate)


def test_a_constant_outcome_completes_without_an_estimate_and_holds(project, start):
    """No variation in any metric (every revenue 5, nobody converts): the template's effects table read
    columns of an empty frame, so the run ended FAILED with an AttributeError instead of holding."""
    import pandas as pd

    path = _data(project, start, breach_day=None)
    pd.read_csv(path).assign(revenue=5.0, converted=0).to_csv(path, index=False)
    Catalog.load(project).pin_dataset("demo_rollout", path, contract=ROLLOUT_CONTRACT, replace=True,
                                      reason="constant outcome", synthetic=True)
    outcome = _run(project)
    assert outcome.record.status.value == "COMPLETED", outcome.record.errors
    assert outcome.record.decision.action.value != "ship"


@pytest.mark.parametrize("where", ["first stage", "last day"])
def test_rows_under_a_stage_label_the_plan_does_not_declare_hold_the_rollout(project, start, where):
    """A typo'd label on some of the 5% stage's rows: no sample-ratio check covered them and the rollout
    advanced, saying nothing of them. Blank labels only on the last day became 'the current stage None'."""
    import pandas as pd
    path = _data(project, start, breach_day=None, conversion_lift=0.02)
    frame = pd.read_csv(path)
    if where == "first stage":
        relabelled, label, shown = (frame.stage == "5%") & (frame.user_id % 10 == 0), "5 %", "'5 %'"
    else:
        relabelled, label, shown = (frame.date == frame.date.max()) & (frame.user_id % 50 == 0), None, "no label"
    frame.loc[relabelled, "stage"] = label
    frame.to_csv(path, index=False)
    monitor = _monitor(project, path)
    assert monitor.decision == "continue" and monitor.stage.name == "50%"
    expected = f"rows under stage labels the plan does not declare: {shown} ({int(relabelled.sum()):,} rows, "
    assert expected in monitor.reason
