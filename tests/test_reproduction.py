"""reproduction.py: a stored run re-executed from what it recorded gives the same scraps; a difference, a
missing input or a changed input is named."""

from __future__ import annotations

import json

import pytest

from impactbook.errors import InputError
from impactbook.ledger import Ledger
from impactbook.reproduction import compare_scraps, reproduce
from conftest import cli, run


def test_a_run_reproduces_identically_and_says_so_everywhere(frozen_project):
    original = run(frozen_project)
    done = cli(frozen_project, "reproduce", original.record.run_id, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["identical"] is True and result["reproduces"] == original.record.run_id
    folder = frozen_project.runs_dir / result["run_id"]
    stored = json.loads((folder / "reproduction.json").read_text())
    assert stored["identical"] and stored["differences"] == []
    assert json.loads((folder / "run.json").read_text())["reproduces"] == original.record.run_id
    entry = [e for e in Ledger(frozen_project.ledger_path).entries() if e["kind"] == "reproduction"][-1]
    assert entry["reproduces"] == original.record.run_id and entry["identical"] is True
    assert "reproduction of run" in (folder / "report.html").read_text()
    assert cli(frozen_project, "verify").returncode == 0


def test_a_reproduction_uses_the_runs_own_pin_after_the_catalog_moved_on(frozen_project):
    original = run(frozen_project)
    data = frozen_project.root / "data/demo_experiment.csv"
    kept = data.read_bytes()
    newer = frozen_project.root / "data/newer.csv"
    newer.write_bytes(kept + b"999999,control,ios,2026-11-24,0.00,0.00,0,1\n")
    assert cli(frozen_project, "dataset", "add", "demo_experiment", "data/newer.csv", "--replace", "--reason",
               "a late row").returncode == 0
    result = reproduce(frozen_project, original.record.run_id)
    assert result.identical, result.differences[:3]


def test_an_input_that_is_gone_or_changed_is_refused(frozen_project):
    original = run(frozen_project)
    data = frozen_project.root / "data/demo_experiment.csv"
    data.write_text(data.read_text()[:-40] + "\n")
    with pytest.raises(InputError, match="no longer has the bytes"):
        reproduce(frozen_project, original.record.run_id)
    data.unlink()
    done = cli(frozen_project, "reproduce", original.record.run_id)
    assert done.returncode == 1 and "is no longer available" in done.stderr


def test_differences_are_named_with_both_values():
    original = {"results": [{"metric": "a", "p_value": 0.01, "n": 10}], "verdicts": {"a": "CONFIRMED"}}
    same = {"results": [{"metric": "a", "p_value": 0.01 * (1 + 1e-14), "n": 10}], "verdicts": {"a": "CONFIRMED"}}
    assert compare_scraps(original, same, 1e-12, {}) == []
    moved = {"results": [{"metric": "a", "p_value": 0.011, "n": 11}], "verdicts": {"a": "INCONCLUSIVE"}}
    found = compare_scraps(original, moved, 1e-12, {})
    assert {d["scrap"] for d in found} == {"results[0].p_value", "results[0].n", "verdicts.a"}
    assert compare_scraps(original, moved, 1e-12, {"results": 0.2}) != []  # n and verdicts are exact
