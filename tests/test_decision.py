"""decision.py and `impactbook gate`: the plan's rule drives ship / hold / roll back and exit codes 0 / 10 / 20."""

from __future__ import annotations

import json

import pytest

from impactbook.decision import decide, final_verdicts
from impactbook.freezing import freeze_plan
from impactbook.plan import load_plan
from impactbook.record import Action, Status, Verdict
from conftest import PLAN, cli, make_project, run


@pytest.mark.parametrize("effects, verdicts, action, code", [
    ({"conversion_lift": 0.03}, {"conversion": "CONFIRMED", "revenue_per_user": "CONFIRMED"}, "ship", 0),
    ({"conversion_lift": 0.0}, {"conversion": "INCONCLUSIVE", "revenue_per_user": "INCONCLUSIVE"}, "hold", 10),
    ({"conversion_lift": 0.03, "revenue_factor": 0.6}, {"conversion": "CONFIRMED", "revenue_per_user": "REFUTED"},
     "rollback", 20),
])
def test_gate_exit_code_follows_the_decision(tmp_path, effects, verdicts, action, code):
    project = make_project(tmp_path / "p", **effects)
    freeze_plan(project, PLAN)
    outcome = run(project)
    found = {v.metric: v.verdict.value for v in outcome.record.verdicts}
    assert {metric: found[metric] for metric in verdicts} == verdicts
    done = cli(project, "gate", outcome.record.run_id, "--json")
    assert done.returncode == code, done.stderr
    assert json.loads(done.stdout)["decision"] == action


def test_gate_on_unknown_run_is_an_error(frozen_project):
    done = cli(frozen_project, "gate", "no-such-run")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_precedence_inadmissible_over_deviated_over_statistics(project):
    plan = load_plan(project.root / PLAN)
    stats = {"conversion": "CONFIRMED", "revenue_per_user": "CONFIRMED", "revenue_per_session": "CONFIRMED"}
    clean = final_verdicts(plan, Status.COMPLETED, stats, [], [], [])
    assert {v.verdict for v in clean} == {Verdict.CONFIRMED}
    deviated = final_verdicts(plan, Status.COMPLETED, stats, [], ["window.start: early"], [])
    assert {v.verdict for v in deviated} == {Verdict.DEVIATED}
    assert decide(plan, Status.COMPLETED, deviated).action is Action.HOLD
    failed = final_verdicts(plan, Status.FAILED, stats, [], ["x"], ["boom"])
    assert {v.verdict for v in failed} == {Verdict.INADMISSIBLE}
    partial = final_verdicts(plan, Status.COMPLETED, {**stats, "revenue_per_user": "maybe"}, [], [], [])
    assert partial[1].verdict is Verdict.INADMISSIBLE and "no verdict" in partial[1].reason


def test_rollback_wins_over_ship(project):
    plan = load_plan(project.root / PLAN)
    verdicts = final_verdicts(plan, Status.COMPLETED, {"conversion": "CONFIRMED", "revenue_per_user": "REFUTED"},
                              [], [], [])
    decision = decide(plan, Status.COMPLETED, verdicts)
    assert decision.action is Action.ROLLBACK and "revenue_per_user" in decision.reason
