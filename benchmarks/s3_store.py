"""The S3 run store and s3:// inputs against their local references, in the same run (issue 13 item 4).

A real S3-compatible server (moto's, tests/backends/s3_server.py) on localhost stands in for the store, so
the figures are the protocol's cost (requests, re-hashing), not a network's. Measured:

  run       `run_plan` of the example plan (demo data, --users) with the run store at s3:// vs runs/,
            alternating, ratio per pair, median of --repeats pairs;
  verify    `verify` of every run with the store at s3:// (objects re-hashed from the store) vs runs/;
  input     sha256 and a DuckDB GROUP BY over a --rows Parquet file read through s3fs vs the local file.

    python benchmarks/s3_store.py [--repeats 5] [--users 200000] [--rows 5000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "backends"))


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def demo_project(root: Path, users: int):
    from impactbook.catalog import Catalog
    from impactbook.demo import DATA_PATH, DATASET, DEMO_CONTRACT, generate_demo_data
    from impactbook.freezing import freeze_plan
    from impactbook.scaffold import init_project
    from impactbook.yamlio import load_yaml

    project = init_project(root)
    window = load_yaml(project.root / "plans/example.yaml", RuntimeError, "plan")["window"]
    data = generate_demo_data(project.resolve(DATA_PATH), window["start"], 14, users=users, conversion_lift=0.03)
    Catalog.load(project).pin_dataset(DATASET, data, contract=DEMO_CONTRACT, synthetic=True)
    freeze_plan(project, "plans/example.yaml")
    return project


def runs_and_verify(project, url: str, repeats: int) -> dict:
    from impactbook.audit import verify
    from impactbook.backends.run_store import STORAGE_ENV
    from impactbook.runner import run_plan

    pairs = []
    for _ in range(repeats):
        os.environ.pop(STORAGE_ENV, None)
        local = timed(lambda: run_plan(project, "plans/example.yaml"))
        os.environ[STORAGE_ENV] = url
        remote = timed(lambda: run_plan(project, "plans/example.yaml"))
        pairs.append((remote, local))
    verify_s3 = timed(lambda: verify(project))
    os.environ.pop(STORAGE_ENV)
    verify_local = timed(lambda: verify(project))
    ratios = [r / l for r, l in pairs]
    return {"run_pairs_s": [[round(r, 2), round(l, 2)] for r, l in pairs],
            "run_median_ratio_s3_to_local": round(statistics.median(ratios), 3),
            "verify_s3_s": round(verify_s3, 2), "verify_local_s": round(verify_local, 2),
            "verify_ratio_s3_to_local": round(verify_s3 / verify_local, 2), "runs_verified": 2 * repeats}


def input_reads(folder: Path, bucket: str, rows: int) -> dict:
    import boto3
    import duckdb

    from impactbook.hashing import sha256_file, sha256_url
    from impactbook.sqlengine import locked_connection, source_sql

    local = folder / "events.parquet"
    with duckdb.connect() as connection:
        connection.execute(f"COPY (SELECT i % 2 AS arm, (hash(i) % 100000)::BIGINT AS value FROM range({rows}) t(i)) "
                           f"TO '{local}' (FORMAT parquet)")
    boto3.client("s3").upload_file(str(local), bucket, "inputs/events.parquet")
    remote = f"s3://{bucket}/inputs/events.parquet"

    def grouped(path):
        connection = locked_connection([path])
        return connection.execute(f"SELECT arm, count(*), sum(value), sum(value * value) FROM "
                                  f"{source_sql(path, 'parquet')} GROUP BY arm ORDER BY arm").fetchall()

    assert grouped(local) == grouped(remote)
    figures = {"rows": rows, "bytes": local.stat().st_size,
               "sha256_local_s": timed(lambda: sha256_file(local)), "sha256_s3_s": timed(lambda: sha256_url(remote)),
               "groupby_local_s": timed(lambda: grouped(local)), "groupby_s3_s": timed(lambda: grouped(remote))}
    figures["sha256_ratio"] = figures["sha256_s3_s"] / figures["sha256_local_s"]
    figures["groupby_ratio"] = figures["groupby_s3_s"] / figures["groupby_local_s"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()

    import boto3
    from s3_server import CREDENTIALS, s3_server

    with s3_server() as endpoint, tempfile.TemporaryDirectory() as folder:
        os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        boto3.client("s3").create_bucket(Bucket="impactbook-bench")
        project = demo_project(Path(folder) / "project", arguments.users)
        figures = {"machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
                   **runs_and_verify(project, "s3://impactbook-bench/runs", arguments.repeats),
                   "input": input_reads(Path(folder), "impactbook-bench", arguments.rows)}
    print(json.dumps(figures, indent=None if arguments.json else 2))


if __name__ == "__main__":
    main()
