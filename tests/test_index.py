"""index.py: the SQLite run index is derived and rebuilds from run folders and ledger alone."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest

from impactbook.errors import RunNotFoundError
from impactbook.index import RunIndex, rebuild
from conftest import cli, run


def test_rebuilt_index_equals_the_original(frozen_project):
    data = frozen_project.root / "data/demo_experiment.csv"
    run(frozen_project)
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-1]))
    run(frozen_project)  # an INADMISSIBLE run is indexed too
    index = RunIndex(frozen_project.index_path)
    original = index.rows()
    assert [r["status"] for r in original] == ["COMPLETED", "INADMISSIBLE"]
    frozen_project.index_path.unlink()
    assert rebuild(frozen_project) == 2
    assert index.rows() == original


def test_find_by_prefix_and_latest(frozen_project):
    outcome = run(frozen_project)
    index = RunIndex(frozen_project.index_path)
    assert index.find("latest")["run_id"] == outcome.record.run_id
    assert index.find(outcome.record.run_id[:18])["run_id"] == outcome.record.run_id
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        index.find("nope")


@pytest.mark.parametrize("resealed", [False, True])
def test_a_rebuild_leaves_out_a_run_whose_record_was_changed_after_publication(frozen_project, resealed):
    """A rebuilt index holds what the published run.json said, never an edited one (a faked decision would
    show in `runs list` and on the site): edited alone, or edited with its SHA256SUMS line re-sealed."""
    changed, sound = run(frozen_project), run(frozen_project)
    folder = changed.folder
    folder.chmod(stat.S_IRWXU)
    record = folder / "run.json"
    record.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = json.loads(record.read_text())
    data["decision"]["action"] = "rollback" if data["decision"]["action"] == "ship" else "ship"
    record.write_text(json.dumps(data))
    if resealed:
        sums = folder / "SHA256SUMS"
        sums.chmod(stat.S_IRUSR | stat.S_IWUSR)
        digest = hashlib.sha256(record.read_bytes()).hexdigest()
        sums.write_text("".join(f"{digest}  run.json\n" if line.endswith("  run.json") else line + "\n"
                                for line in sums.read_text().splitlines()))
    told: list[str] = []
    assert rebuild(frozen_project, skipped=told.append) == 1
    assert [r["run_id"] for r in RunIndex(frozen_project.index_path).rows()] == [sound.record.run_id]
    cause = "is not the one the ledger recorded" if resealed else "run.json does not match SHA256SUMS"
    assert len(told) == 1 and changed.record.run_id in told[0] and cause in told[0]
    done = cli(frozen_project, "index", "rebuild")
    assert done.returncode == 0 and changed.record.run_id in done.stderr
    data["decision"]["action"] = "not an action"  # an edit no release could have written: still named, no crash
    record.write_text(json.dumps(data))
    if resealed:
        digest = hashlib.sha256(record.read_bytes()).hexdigest()
        sums.write_text("".join(f"{digest}  run.json\n" if line.endswith("  run.json") else line + "\n"
                                for line in sums.read_text().splitlines()))
    listed = cli(frozen_project, "runs", "list")
    assert listed.returncode == 0 and changed.record.run_id in listed.stderr and "Traceback" not in listed.stderr
    assert changed.record.run_id not in listed.stdout and sound.record.run_id in listed.stdout
