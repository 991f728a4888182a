"""demo.py: `impactbook demo` on a copy of this repository, twice: clean preregistered flow, new run each time."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import shutil

import pandas as pd

from impactbook.audit import verify
from impactbook.demo import generate_demo_data
from impactbook.project import Project
from conftest import REPO, cli


def _copy_repository(target):
    """The committed project: catalog, plan, template, and the ledger's preregistration entries (a
    checkout where the demo already ran has run entries too, whose folders are not copied)."""
    for item in ("catalog.yaml", "plans/example.yaml", "plans/rollout.yaml", "templates/ab_test.ipynb",
                 "templates/rollout_monitor.ipynb"):
        (target / item).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / item, target / item)
    lines = (REPO / "runs/ledger.jsonl").read_text().splitlines(keepends=True)
    kept = list(itertools.takewhile(lambda line: json.loads(line)["kind"] != "run", lines))
    (target / "runs/ledger.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (target / "runs/ledger.jsonl").write_text("".join(kept))
    return target


def test_demo_runs_end_to_end_twice(tmp_path):
    root = _copy_repository(tmp_path / "repo")
    first = cli(root, "demo")
    assert first.returncode == 0, first.stderr
    assert "matches its pin" in first.stderr or "re-pinned demo_experiment" in first.stderr
    for expected in ("run id:", "verdict:  conversion (primary): CONFIRMED",
                     "verdict:  revenue_per_user (guardrail): CONFIRMED",
                     "verdict:  revenue_per_session (secondary):", "decision: ship", "report:"):
        assert expected in first.stdout, first.stdout
    assert "DEVIATED" not in first.stdout and "deviation" not in first.stdout
    assert "status:   COMPLETED [SIMULATED]" in first.stdout, "the demo's data is synthetic, and says so"
    rollout = next(line for line in first.stdout.splitlines() if line.startswith("rollout monitor:"))
    assert ": rollback (rollout monitor: stop-loss: revenue_per_user" in rollout
    second = cli(root, "demo")
    assert second.returncode == 0, second.stderr
    ids = [line.split()[-1] for text in (first.stdout, second.stdout) for line in text.splitlines()
           if line.startswith("run id:")]
    assert len(set(ids)) == 2
    assert cli(root, "gate", ids[0]).returncode == 0
    reproduced = cli(root, "reproduce", ids[0])
    assert reproduced.returncode == 0 and "IDENTICAL" in reproduced.stdout, reproduced.stdout + reproduced.stderr
    assert verify(Project(root)).intact


def test_demo_data_is_deterministic(tmp_path):
    paths = [generate_demo_data(tmp_path / f"{n}.csv", dt.date(2026, 11, 23), 14, users=5000) for n in "ab"]
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    assert len(digests) == 1
    header, first_row = paths[0].read_text().splitlines()[:2]
    assert header == "user_id,variant,platform,date,pre_revenue,revenue,converted,sessions"


def test_states_data_is_deterministic_and_carries_its_effect_in_the_treated_state_only(tmp_path):
    from impactbook.demo import STATES_TREATED, generate_states_data

    start = dt.date(2026, 11, 30)
    paths = [generate_states_data(tmp_path / f"{n}.csv", start, 14, states=12) for n in "ab"]
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}) == 1
    null = pd.read_csv(generate_states_data(tmp_path / "null.csv", start, 14, states=12, effect=0.0))
    frame = pd.read_csv(paths[0])
    assert frame.columns.tolist() == ["state", "date", "sessions", "conversion", "revenue_per_session"]
    assert len(frame) == 12 * 98 and frame.state.nunique() == 12
    shift = frame.conversion - null.conversion  # same seed: the same draws, bar the effect's binomial noise
    treated_post = (frame.state == STATES_TREATED) & (frame.date >= start.isoformat())
    assert (shift[~treated_post] == 0).all() and 0.004 < shift[treated_post].mean() < 0.008
