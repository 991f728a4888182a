"""inputs.py: templates load pinned inputs by catalog name, the pin checked first — under `impactbook run`
by trusting the gate's hash only while the file system's identity of the file holds: any write since (even
of the same bytes, with the times set back) makes the kernel hash it again."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from impactbook import inputs
from impactbook.catalog import DatasetEntry
from impactbook.errors import InputError
from impactbook.faults import FAULT_ENV
from impactbook.hashing import sha256_file
from impactbook.inputs import VERIFIED_ENV, ResolvedInput, load_input, sha256_steady, verified_unchanged
from impactbook.record import Status
from conftest import run


def test_load_input_checks_the_pin(project):
    frame = load_input("demo_experiment", project)
    assert len(frame) == 20_000 and str(frame["date"].dtype).startswith("datetime64")
    data = project.root / "data/demo_experiment.csv"
    data.write_text(data.read_text()[:-30] + "\n")
    with pytest.raises(InputError, match="does not match its pin"):
        load_input("demo_experiment", project)


def _pinned(tmp_path, monkeypatch, steady_s: float = 0.0):
    path = tmp_path / "data.csv"
    path.write_text("user,converted\n1,0\n2,1\n")
    time.sleep(0.05)  # past the write's timestamp tick
    monkeypatch.setattr(inputs, "STEADY_S", steady_s)
    item = ResolvedInput("experiment", "data", DatasetEntry(uri=str(path), sha256=sha256_file(path)), path)
    digest, identity = sha256_steady(path)
    verified = tmp_path / "verified.json"
    verified.write_text(json.dumps({"data": {"path": str(path), "sha256": digest, "identity": identity}}))
    monkeypatch.setenv(VERIFIED_ENV, str(verified))
    return item, identity


def test_an_unchanged_file_is_trusted_without_a_second_hash(tmp_path, monkeypatch):
    item, identity = _pinned(tmp_path, monkeypatch)
    assert identity is not None and verified_unchanged(item)


def test_a_file_written_since_the_gate_hashed_it_is_hashed_again(tmp_path, monkeypatch):
    item, _ = _pinned(tmp_path, monkeypatch)
    before = os.stat(item.path)
    item.path.write_bytes(item.path.read_bytes())  # the same bytes, rewritten
    os.utime(item.path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the modification time set back
    assert not verified_unchanged(item)


def test_a_file_replaced_or_another_pin_is_hashed_again(tmp_path, monkeypatch):
    item, _ = _pinned(tmp_path, monkeypatch)
    other = ResolvedInput(item.parameter, item.name, DatasetEntry(uri=item.uri, sha256="0" * 64), item.path)
    assert not verified_unchanged(other)
    copy = item.path.with_suffix(".new")
    copy.write_bytes(item.path.read_bytes())
    os.replace(copy, item.path)
    assert not verified_unchanged(item)
    monkeypatch.delenv(VERIFIED_ENV)
    assert not verified_unchanged(item)


def test_a_file_changed_moments_before_its_hash_gets_no_identity(tmp_path, monkeypatch):
    _, identity = _pinned(tmp_path, monkeypatch, steady_s=2.0)  # it may change again within the same tick
    assert identity is None


def test_data_changed_after_the_gate_hashed_it_fails_the_run_in_the_kernel(frozen_project, monkeypatch):
    data = frozen_project.root / "data/demo_experiment.csv"
    monkeypatch.setenv(FAULT_ENV, "sleep=3@gates.checked")  # the gate has hashed; its ruling waits

    def change_the_data_once_the_gate_has_hashed_it():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(frozen_project.staging_dir.glob("*/inputs.verified.json")):
            time.sleep(0.05)
        data.write_text("".join(data.read_text().splitlines(keepends=True)[:-1]))
    changer = threading.Thread(target=change_the_data_once_the_gate_has_hashed_it)
    changer.start()
    record = run(frozen_project).record
    changer.join()
    assert record.status is Status.FAILED
    assert "does not match its pin" in record.errors[0], record.errors
