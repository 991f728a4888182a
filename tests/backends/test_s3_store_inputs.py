"""Pinned inputs at s3:// URLs (hashing.remote_url, sqlengine.locked_connection, inputs.hash_problem): hashed by
streaming from a real S3-compatible server (moto's, on localhost) and read by DuckDB through s3fs registered
with the connection — the same numbers as the local file, and a changed or missing object named."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import boto3
import duckdb
import pytest

from impactbook.catalog import Catalog
from impactbook.demo import DATA_PATH, DATASET
from impactbook.freezing import freeze_plan
from impactbook.hashing import remote_url, sha256_url
from impactbook.inputs import COPIES_PREFIX
from impactbook.record import Status
from impactbook.scratch import GRACE_S, sweep
from impactbook.sqlengine import locked_connection, source_sql
from conftest import PLAN, cli, run
import s3_server

s3_endpoint, bucket = s3_server.s3_endpoint, s3_server.bucket  # the shared fixtures: a server, a fresh bucket


def _upload(bucket: str, key: str, data: bytes) -> str:
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def test_an_s3_url_survives_being_a_path_and_is_hashed_from_the_store(bucket):
    from pathlib import Path

    data = b"unit,value\n1,2\n" * 1000
    url = _upload(bucket, "nested/data.csv", data)
    assert remote_url(Path(url)) == url == remote_url(url) and remote_url("data/x.csv") is None
    assert sha256_url(url) == hashlib.sha256(data).hexdigest()


def test_duckdb_reads_the_pinned_object_and_nothing_else(bucket):
    pinned = _upload(bucket, "a.csv", b"x\n1\n2\n3\n")
    other = _upload(bucket, "b.csv", b"x\n10\n")
    connection = locked_connection([pinned])
    assert connection.execute(f"SELECT sum(x) FROM {source_sql(pinned, 'csv')}").fetchone() == (6,)
    with pytest.raises(duckdb.Error, match="disabled by configuration"):
        connection.execute(f"SELECT sum(x) FROM {source_sql(other, 'csv')}").fetchone()


def _pin_in_s3(project, bucket: str) -> str:
    url = _upload(bucket, "data/demo.csv", (project.root / DATA_PATH).read_bytes())
    done = cli(project, "dataset", "add", DATASET, url, "--replace", "--reason", "moved to the object store")
    assert done.returncode == 0, done.stderr
    entry = Catalog.load(project).dataset(DATASET)
    assert entry.uri == url and entry.sha256 == hashlib.sha256((project.root / DATA_PATH).read_bytes()).hexdigest()
    assert entry.size == (project.root / DATA_PATH).stat().st_size
    freeze_plan(project, PLAN)
    return url


def test_s3_pinned_input_runs_end_to_end_with_the_numbers_of_the_local_file(frozen_project, bucket):
    local = run(frozen_project)
    url = _pin_in_s3(frozen_project, bucket)
    killed = Path(tempfile.mkdtemp(prefix=COPIES_PREFIX))  # as a SIGKILLed run leaves its copies (tests/test_scratch)
    (killed / "demo-1.csv").write_bytes(b"a copy")
    os.utime(killed, (time.time() - GRACE_S - 5,) * 2)
    before = set(Path(tempfile.gettempdir()).glob(f"{COPIES_PREFIX}*"))
    remote = run(frozen_project)
    assert not killed.exists(), "a dead run's copies are removed by the next run that makes copies"
    assert set(Path(tempfile.gettempdir()).glob(f"{COPIES_PREFIX}*")) <= before, "and this run leaves none"
    assert remote.record.status == Status.COMPLETED, remote.record.errors
    assert [i["uri"] for i in remote.record.inputs] == [url]
    results = [json.loads((o.folder / "scraps.json").read_text())["results"] for o in (local, remote)]
    assert results[0] and results[1] == results[0]  # same engine, same bytes: identical numbers
    assert remote.record.effects == local.record.effects
    assert remote.record.verdicts == local.record.verdicts
    reproduced = cli(frozen_project, "reproduce", remote.record.run_id, "--json")  # re-hashed from the store
    assert reproduced.returncode == 0 and json.loads(reproduced.stdout)["identical"] is True, reproduced.stderr


def test_a_changed_or_missing_s3_input_is_named(frozen_project, bucket):
    url = _pin_in_s3(frozen_project, bucket)
    data = (frozen_project.root / DATA_PATH).read_bytes()
    _upload(bucket, "data/demo.csv", data[:data.rindex(b"\n", 0, -1) + 1])  # the last row dropped
    changed = run(frozen_project).record
    assert changed.status == Status.INADMISSIBLE
    assert changed.gate["inadmissible"][0].startswith(f"datasets.{DATASET}.sha256: input {url} does not match its pin")
    boto3.client("s3").delete_object(Bucket=bucket, Key="data/demo.csv")
    missing = run(frozen_project).record
    assert missing.status == Status.INADMISSIBLE
    assert missing.gate["inadmissible"][0] == f"datasets.{DATASET}.uri: input object {url} does not exist"


def test_the_kernel_reads_the_bytes_the_gate_hashed_not_the_store_again(frozen_project, bucket):
    """An object replaced after its hash was taken (here while the gate's ruling is held back) is never what
    the run analyses: the gate hashed a local copy as it streamed, and the kernel reads that copy."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from impactbook.faults import FAULT_ENV
    from impactbook.store import VERIFIED, published_runs

    url = _pin_in_s3(frozen_project, bucket)
    pinned_run = run(frozen_project)
    data = (frozen_project.root / DATA_PATH).read_bytes()
    tampered = data.replace(b",0,", b",1,", 2000)
    assert len(tampered) == len(data) and tampered != data
    process = subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN, "--json"], cwd=frozen_project.root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, FAULT_ENV: "sleep=6@gates.checked"})
    deadline, verified = time.time() + 120, []
    while time.time() < deadline and not verified:
        verified = list(frozen_project.staging_dir.glob(f"*/{VERIFIED}"))
        time.sleep(0.1)
    assert verified, "the gate never ruled"
    copy = Path(json.loads(verified[0].read_text())[DATASET]["copy"])
    assert copy.is_file() and hashlib.sha256(copy.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    _upload(bucket, "data/demo.csv", tampered)  # after the hash, before any cell reads the data
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    raced = json.loads(out)
    assert raced["status"] == "COMPLETED"
    folders = {f.name: f for f in published_runs(frozen_project)}
    results = [json.loads((folders[r] / "scraps.json").read_text())["results"]
               for r in (pinned_run.record.run_id, raced["run_id"])]
    assert results[1] == results[0]  # the pinned bytes' numbers, not the replaced object's
    assert not copy.exists() and not copy.parent.exists()  # the copies go with the run
    assert url in {i["uri"] for i in json.loads((folders[raced["run_id"]] / "run.json").read_text())["inputs"]}


def test_a_template_run_by_hand_reads_a_copy_of_the_hashed_object(frozen_project, bucket, monkeypatch):
    from impactbook.inputs import pinned_input

    _pin_in_s3(frozen_project, bucket)
    monkeypatch.chdir(frozen_project.root)
    item = pinned_input(DATASET)
    data = (frozen_project.root / DATA_PATH).read_bytes()
    _upload(bucket, "data/demo.csv", data.replace(b",0,", b",1,", 2000))
    assert remote_url(item.path) is None and item.entry.uri.startswith("s3://")
    assert item.path.read_bytes() == data  # what the template reads is what was hashed
    held = item.path.parent  # this process's scratch folder: removed at exit, or by a later run if it is killed
    assert held.name.startswith(COPIES_PREFIX) and held.parent == Path(tempfile.gettempdir())
    os.utime(held, (time.time() - GRACE_S - 5,) * 2)
    assert held not in sweep(COPIES_PREFIX) and item.path.is_file(), "a live process's copies are never swept"
