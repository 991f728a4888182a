"""What a preregistration binds: time checked against the data (future rows, SIMULATED, INTERIM), honest
retrospective studies, pins that change only on purpose, and a ledger anchored outside itself."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from impactbook.catalog import Catalog
from impactbook.freezing import freeze_plan
from impactbook.record import Action, Status, Verdict
from conftest import PLAN, cli, edit_yaml, run, write_data


def _window(project, start: dt.date, days: int = 14):
    edit_yaml(project.root / PLAN, (("window", "start"), start), (("window", "end"), start + dt.timedelta(days=days - 1)))


def _real(project):
    """Mark the test data as real (not synthetic): its dates are then checked against the calendar."""
    entry = Catalog.load(project).dataset("demo_experiment")
    Catalog.load(project).pin_dataset("demo_experiment", project.resolve(entry.uri), replace=True,
                                      reason="declared real", synthetic=False)


def test_rows_dated_in_the_future_make_a_real_run_inadmissible(project):
    _real(project)  # the fixture's window opens tomorrow, so its rows are dated after now
    freeze_plan(project, PLAN)
    outcome = run(project)
    assert outcome.record.status is Status.INADMISSIBLE
    assert any("rows are dated after the run began" in p and "declare `synthetic: true`" in p
               for p in outcome.record.gate["inadmissible"]), outcome.record.gate["inadmissible"]


def test_synthetic_data_runs_as_simulated_with_the_end_of_the_data_as_its_clock(frozen_project):
    record = run(frozen_project).record
    assert record.status is Status.COMPLETED and record.labels == ["SIMULATED"]
    assert record.decision.action is Action.SHIP
    window_end = frozen_project_window_end(frozen_project)
    assert record.gate["clock"] == f"{window_end + dt.timedelta(days=1)}T00:00:00Z"
    report = (cli(frozen_project, "runs", "show", record.run_id, "--json"))
    assert json.loads(report.stdout)["labels"] == ["SIMULATED"]


def frozen_project_window_end(project) -> dt.date:
    from impactbook.plan import load_plan
    return load_plan(project.root / PLAN).window.end


def test_a_fixed_horizon_plan_looked_at_before_its_window_closes_is_interim(project):
    from impactbook.plan import load_plan
    start = load_plan(project.root / PLAN).window.start
    write_data(project, start, days=7)  # half the window has happened on the data's clock
    freeze_plan(project, PLAN)
    record = run(project).record
    assert record.status is Status.COMPLETED and "INTERIM" in record.labels
    assert {v.verdict for v in record.verdicts} == {Verdict.INTERIM}
    assert {v.statistical_verdict for v in record.verdicts} == {Verdict.CONFIRMED}
    assert record.decision.action is Action.HOLD
    assert "INTERIM" in (run(project).folder / "report.html").read_text()


def test_a_retrospective_study_is_labelled_and_ships_only_on_a_recorded_human_decision(project):
    start = dt.date(2025, 3, 1)
    _window(project, start)
    edit_yaml(project.root / PLAN, (("registration",), {"mode": "retrospective",
                                                        "reason": "the ranker shipped in March 2025; analysed after"}))
    write_data(project, start)
    _real(project)
    frozen = cli(project, "plan", "freeze", PLAN)
    assert frozen.returncode == 0 and "retrospective registration: the outcomes already exist" in frozen.stderr
    done = cli(project, "run", PLAN, "--json")
    result = json.loads(done.stdout)
    assert result["labels"] == ["RETROSPECTIVE"] and set(result["verdicts"].values()) == {"CONFIRMED"}
    assert result["decision"] == "hold" and "ships only on a recorded human decision" in result["decision_reason"]
    report = (project.runs_dir / result["run_id"] / "report.html").read_text()
    assert "Retrospective analysis: the plan was frozen after the outcome data existed" in report
    assert cli(project, "gate", result["run_id"]).returncode == 10
    decided = cli(project, "decide", result["run_id"], "--action", "advance", "--by", "Dana (product)",
                  "--reason", "effects confirmed on the full history")
    assert decided.returncode == 0, decided.stderr
    gate = cli(project, "gate", result["run_id"])
    assert gate.returncode == 0 and "decided by Dana (product)" in gate.stdout and "overrides the automatic hold" \
        in gate.stdout
    assert json.loads(cli(project, "gate", result["run_id"], "--json").stdout)["human_decision"]["by"] == \
        "Dana (product)"


def test_a_prospective_plan_frozen_after_its_window_is_warned_about_at_freeze(project):
    _window(project, dt.date(2025, 3, 1))
    frozen = cli(project, "plan", "freeze", PLAN)
    assert frozen.returncode == 0 and "every verdict of its runs will be DEVIATED" in frozen.stderr
    assert "registration: {mode: retrospective" in frozen.stderr


def test_a_pin_edited_by_hand_in_the_catalog_makes_the_run_inadmissible(frozen_project):
    data = frozen_project.root / "data/demo_experiment.csv"
    data.write_text(data.read_text() + "999999,control,ios,2026-11-24,0.00,0.00,0,1\n")
    from impactbook.hashing import sha256_file
    catalog = frozen_project.catalog_path
    old = Catalog.load(frozen_project).dataset("demo_experiment").sha256
    catalog.write_text(catalog.read_text().replace(old, sha256_file(data)))
    record = run(frozen_project).record
    assert record.status is Status.INADMISSIBLE
    assert any("the pin was edited by hand" in p and "--replace --reason" in p for p in record.gate["inadmissible"])


def _git(root, *args):
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          capture_output=True, text=True, check=True)


def test_a_truncated_ledger_is_caught_against_its_git_anchor(frozen_project):
    _git(frozen_project.root, "init", "-q")
    _git(frozen_project.root, "add", "catalog.yaml")
    _git(frozen_project.root, "commit", "-q", "-m", "project")
    run(frozen_project)
    anchored = cli(frozen_project, "ledger", "anchor")
    assert anchored.returncode == 0 and "git tag impactbook-ledger/" in anchored.stdout, anchored.stderr
    assert cli(frozen_project, "verify").returncode == 0
    lines = frozen_project.ledger_path.read_text().splitlines(keepends=True)
    frozen_project.ledger_path.write_text("".join(lines[:-1]))  # the run's entry removed: the chain alone is fine
    done = cli(frozen_project, "verify")
    assert done.returncode == 3
    assert f"truncated — entry {len(lines)} (anchored by git tag impactbook-ledger/" in done.stdout, done.stdout


def test_a_rewritten_ledger_is_caught_against_a_file_anchor(frozen_project, tmp_path):
    from impactbook.ledger import entry_hash
    anchors = tmp_path / "elsewhere" / "anchors.jsonl"
    assert cli(frozen_project, "ledger", "anchor", "--file", str(anchors)).returncode == 0
    lines = frozen_project.ledger_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    entries[-1]["reason"] = "rewritten"  # edit, then re-hash the chain so it holds together again
    entries[-1]["hash"] = entry_hash(entries[-1])
    frozen_project.ledger_path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert cli(frozen_project, "verify").returncode == 0, "the chain itself is consistent again"
    done = cli(frozen_project, "verify", "--anchor", str(anchors))
    assert done.returncode == 3 and f"rewritten — entry {len(entries)} no longer has the hash anchored by" in done.stdout


@pytest.mark.parametrize("kind", ["missing", "folder", "binary"])
def test_an_anchor_that_is_not_an_anchor_file_is_named(frozen_project, tmp_path, kind):
    given = tmp_path / "anchors.jsonl"
    if kind == "folder":
        given.mkdir()
    elif kind == "binary":
        given.write_bytes(b"\xff\xfe\x00garbage\x80")
    done = cli(frozen_project, "verify", "--anchor", str(given))
    expected = {"missing": f"error: --anchor: anchor file {given} does not exist",
                "folder": f"error: --anchor: {given} is not a file",
                "binary": f"error: {given}: is not UTF-8 text; it is not an anchor file"}[kind]
    assert done.returncode == 1 and expected in done.stderr, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
