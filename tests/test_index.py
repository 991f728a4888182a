"""index.py: the SQLite run index is derived and rebuilds from run folders and ledger alone."""

from __future__ import annotations

import pytest

from impactbook.errors import RunNotFoundError
from impactbook.index import RunIndex, rebuild
from conftest import run


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
