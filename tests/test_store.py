"""store.py: run ids sort by time and are safe folder names; publication never overwrites."""

from __future__ import annotations

import re

import pytest

from impactbook.store import Staging, new_run_id, sha256sums


def test_run_ids_are_unique_sortable_and_safe():
    ids = [new_run_id("example") for _ in range(200)]
    assert len(set(ids)) == 200
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"\d{8}T\d{12}Z-example-[0-9a-f]{6}", i) for i in ids)


def test_publish_refuses_to_overwrite(project):
    first = Staging.create(project, "20260101T000000000000Z-example-aaaaaa", {"a.txt": b"a"})
    first.publish(project.runs_dir)
    again = Staging.create(project, "20260101T000000000000Z-example-aaaaaa-2", {"a.txt": b"b"})
    again.run_id = first.run_id
    with pytest.raises(FileExistsError):
        again.publish(project.runs_dir)


def test_sha256sums_is_sha256sum_compatible(tmp_path):
    import hashlib
    (tmp_path / "x.txt").write_text("hello")
    assert sha256sums(tmp_path) == f"{hashlib.sha256(b'hello').hexdigest()}  x.txt\n"
