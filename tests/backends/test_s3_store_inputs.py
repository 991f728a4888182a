"""Pinned inputs at s3:// URLs (hashing.remote_url, sqlengine.locked_connection, inputs.hash_problem): hashed by
streaming from a real S3-compatible server (moto's, on localhost) and read by DuckDB through s3fs registered
with the connection — the same numbers as the local file, and a changed or missing object named."""

from __future__ import annotations

import hashlib
import json

import boto3
import duckdb
import pytest

from impactbook.catalog import Catalog
from impactbook.demo import DATA_PATH, DATASET
from impactbook.freezing import freeze_plan
from impactbook.hashing import remote_url, sha256_url
from impactbook.record import Status
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
    remote = run(frozen_project)
    assert remote.record.status == Status.COMPLETED, remote.record.errors
    assert [i["uri"] for i in remote.record.inputs] == [url]
    results = [json.loads((o.folder / "scraps.json").read_text())["results"] for o in (local, remote)]
    assert results[0] and results[1] == results[0]  # same engine, same bytes: identical numbers
    assert remote.record.effects == local.record.effects
    assert remote.record.verdicts == local.record.verdicts


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
