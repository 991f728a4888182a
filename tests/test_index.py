"""index.py: the SQLite run index is derived and rebuilds from run folders and ledger alone."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest

from impactbook.errors import RunNotFoundError
from impactbook.index import RunIndex, rebuild
from conftest import PLAN, cli, run


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


def test_a_clone_pointed_at_another_clones_own_index_is_refused_and_changes_nothing(frozen_project, tmp_path,
                                                                                   monkeypatch):
    """IMPACTBOOK_INDEX set to another clone's runs/index.sqlite: that file records no run store (it is its
    project's own), so the copies' check did not see it, and each clone's commands replaced the other's rows."""
    import shutil

    from impactbook.project import Project

    ours = run(frozen_project).record.run_id
    clone = Project(tmp_path / "clone")
    shutil.copytree(frozen_project.root, clone.root, ignore=shutil.ignore_patterns("index.sqlite*", ".store"))
    theirs = run(clone).record.run_id
    before = frozen_project.index_path.read_bytes()
    (tmp_path / "link.sqlite").symlink_to(frozen_project.index_path)
    for named in (frozen_project.index_path, tmp_path / "link.sqlite"):
        monkeypatch.setenv("IMPACTBOOK_INDEX", f"sqlite://{named}")
        for command in (("runs", "list"), ("index", "rebuild"), ("run", PLAN)):
            refused = cli(clone, *command)
            assert refused.returncode == 1 and refused.stderr.count("\n") == 1, (command, refused.stderr)
            assert f"{named}: the run index is the own index of the project at {frozen_project.root}" \
                in refused.stderr, refused.stderr
    verified = cli(clone, "verify")
    assert verified.returncode == 3 and "is the own index of the project at" in verified.stdout, verified.stdout
    assert frozen_project.index_path.read_bytes() == before
    listed = cli(frozen_project, "runs", "list")  # (the same setting, in the project it belongs to)
    assert listed.returncode == 0 and ours in listed.stdout and theirs not in listed.stdout, listed.stderr
