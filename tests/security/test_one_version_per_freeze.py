"""Attack (or accident): many `plan freeze` and `plan amend` at once record one version twice. Defence:
"latest version, then append" is one step under the ledger lock; verify reports any duplicate."""

from __future__ import annotations

import json
import subprocess
import sys

from impactbook.audit import verify
from impactbook.ledger import Ledger, entry_hash
from conftest import PLAN, cli, edit_yaml


def _together(project, *args_list):
    processes = [subprocess.Popen([sys.executable, "-m", "impactbook", *args], cwd=project.root,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in args_list]
    return [(p.wait(timeout=300), p.stderr.read()) for p in processes]


def test_eight_concurrent_freezes_record_one_version(project):
    results = _together(project, *[("plan", "freeze", PLAN)] * 8)
    assert all(code == 0 for code, _ in results), results
    versions = [e for e in Ledger(project.ledger_path).entries() if e["kind"] == "freeze"]
    assert [v["version"] for v in versions] == [1]


def test_concurrent_amendments_each_get_their_own_version(project):
    cli(project, "plan", "freeze", PLAN)
    edit_yaml(project.root / PLAN, (("alpha",), 0.01))
    results = _together(project, *[("plan", "amend", PLAN, "--reason", f"stricter alpha ({n})") for n in range(8)])
    assert sum(code == 0 for code, _ in results) == 1, "the same change is one amendment"
    assert all("unchanged since version 2" in err for code, err in results if code != 0), results
    versions = [e["version"] for e in Ledger(project.ledger_path).entries() if e["kind"] in ("freeze", "amend")]
    assert versions == [1, 2]


def test_verify_reports_a_plan_version_recorded_twice(project):
    cli(project, "plan", "freeze", PLAN)
    lines = project.ledger_path.read_text().splitlines()
    twin = json.loads(lines[-1])
    twin.update(seq=twin["seq"] + 1, prev_hash=twin["hash"])
    twin["hash"] = entry_hash(twin)
    project.ledger_path.write_text("\n".join([*lines, json.dumps(twin)]) + "\n")
    assert "ledger.jsonl: plan 'example' version 1 is recorded 2 times" in verify(project).problems
