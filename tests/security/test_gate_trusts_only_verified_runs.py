"""Attack: edit what automation reads — a stored run's decision, the index's rows, the index file — so that
`gate` ships a change the evidence rolled back. Defence: gate re-verifies the run against SHA256SUMS and its
ledger entry; the index is derived, checked by verify and rebuilt when it lies or breaks."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

from impactbook.store import sha256sums
from conftest import PLAN, cli


def _ran(project) -> dict:
    cli(project, "plan", "freeze", PLAN)
    done = cli(project, "run", PLAN, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _force_write(path, text):
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    path.write_text(text)


def test_a_decision_edited_in_run_json_and_rehashed_does_not_pass_the_gate(project):
    run = _ran(project)
    folder = project.runs_dir / run["run_id"]
    record = json.loads((folder / "run.json").read_text())
    record["decision"]["action"] = "rollback"
    _force_write(folder / "run.json", json.dumps(record))
    _force_write(folder / "SHA256SUMS", sha256sums(folder))
    os.chmod(folder, 0o555)
    gate = cli(project, "gate", run["run_id"])
    assert gate.returncode == 3, gate.stdout + gate.stderr
    assert "does not verify" in gate.stderr and "SHA256SUMS: does not match the hash in ledger entry" in gate.stderr


def test_a_decision_edited_in_run_json_without_rehashing_does_not_pass_the_gate(project):
    run = _ran(project)
    folder = project.runs_dir / run["run_id"]
    _force_write(folder / "run.json", (folder / "run.json").read_text().replace('"ship"', '"rollback"'))
    os.chmod(folder, 0o555)
    gate = cli(project, "gate", run["run_id"], "--json")
    assert gate.returncode == 3 and json.loads(gate.stdout)["verified"] is False


def test_an_index_row_edited_to_ship_is_reported_then_corrected_from_the_folder_and_ledger(project):
    run = _ran(project)
    with sqlite3.connect(project.index_path) as connection:
        connection.execute("UPDATE runs SET decision = 'rollback', status = 'FAILED'")
    verify = cli(project, "verify")
    assert verify.returncode == 3 and "decision is 'rollback', the ledger says 'ship'" in verify.stdout
    gate = cli(project, "gate", run["run_id"])
    assert gate.returncode == 0 and "index: corrected the row" in gate.stderr
    assert cli(project, "verify").returncode == 0


def test_a_deleted_index_row_is_restored(project):
    run = _ran(project)
    with sqlite3.connect(project.index_path) as connection:
        connection.execute("DELETE FROM runs")
    assert "is missing" in cli(project, "verify").stdout
    listed = cli(project, "runs", "list", "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run["run_id"]]


def test_a_corrupt_index_file_is_rebuilt_and_the_command_says_so(project):
    run = _ran(project)
    data = bytearray(project.index_path.read_bytes())
    data[:16] = b"not a database!!"
    project.index_path.write_bytes(bytes(data))
    gate = cli(project, "gate", run["run_id"])
    assert gate.returncode == 0, gate.stderr
    assert "the run index was unusable" in gate.stderr and "rebuilt it from 1 run folders" in gate.stderr


def test_concurrent_index_rebuilds_do_not_break_each_other(project):
    _ran(project)
    processes = [subprocess.Popen([sys.executable, "-m", "impactbook", "index", "rebuild"], cwd=project.root,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(12)]
    results = [p.communicate(timeout=300) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in results]
    assert cli(project, "verify").returncode == 0
