"""Warehouse-native inputs against the DuckDB path over the same rows, in the same run (issue 13 item 6).

A real PostgreSQL server (tests/backends/postgres_server.py, unix socket, fsync off) holds the demo A/B
table; the same rows are a Parquet file for the reference. Measured, median of --repeats:

  snapshot    the pin: the snapshot hash computed in PostgreSQL (backends.warehouse) vs sha256 of the Parquet file;
  aggregate   the example plan's aggregation (caps, GROUPING SETS scan, exclusions) in PostgreSQL, its pin
              re-checked in the same snapshot (aggregate_table) vs DuckDB over the Parquet file (aggregate);
              aggregate_only: the same without the re-check;
  check       the gate's contract and plan checks (datacheck.check_input) on the table vs on the file.

    python benchmarks/warehouse.py [--rows 1000000] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "backends"))

def median_time(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import datetime as dt

    import pandas as pd
    import psycopg
    from postgres_server import fresh_database, postgres_server
    from warehouse_data import load_demo, numbers

    from impactbook.backends.warehouse import table_snapshot
    from impactbook.catalog import DatasetEntry
    from impactbook.datacheck import check_input
    from impactbook.demo import DEMO_CONTRACT, generate_demo_data
    from impactbook.designs.aggregate import aggregate, aggregate_table
    from impactbook.hashing import sha256_file
    from impactbook.inputs import ResolvedInput
    from impactbook.plan import load_plan

    plan = load_plan(REPO / "src/impactbook/scaffold/example.yaml")
    folder = Path(tempfile.mkdtemp(prefix="impactbook-wh-bench-"))
    csv = generate_demo_data(folder / "demo.csv", plan.window.start, 14, users=args.rows, conversion_lift=0.03)
    parquet = folder / "demo.parquet"
    pd.read_csv(csv).assign(date=lambda f: pd.to_datetime(f.date).dt.date).to_parquet(parquet, index=False)
    now = dt.datetime.now(dt.timezone.utc)
    with postgres_server() as server:
        url = fresh_database(server, "bench")
        started = time.perf_counter()
        uri = load_demo(url, csv, "demo")
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE public.demo")
        load = time.perf_counter() - started
        pin = table_snapshot(uri).sha256
        table = ResolvedInput("experiment", "demo", DatasetEntry(uri=uri, sha256=pin, format="postgresql",
                                                                 contract=DEMO_CONTRACT), None)
        file = ResolvedInput("experiment", "demo", DatasetEntry(uri=str(parquet), sha256=sha256_file(parquet),
                                                                format="parquet", contract=DEMO_CONTRACT), parquet)
        assert not check_input(table, plan, now, "primary").problems
        assert not check_input(file, plan, now, "primary").problems
        figures = {
            "snapshot": (median_time(lambda: table_snapshot(uri), args.repeats),
                         median_time(lambda: sha256_file(parquet), args.repeats)),
            "aggregate": (median_time(lambda: aggregate_table(plan, uri, pin), args.repeats),
                          median_time(lambda: aggregate(plan, parquet, "parquet"), args.repeats)),
            "aggregate_only": (median_time(lambda: _aggregate_only(plan, uri), args.repeats),
                               median_time(lambda: aggregate(plan, parquet, "parquet"), args.repeats)),
            "check": (median_time(lambda: check_input(table, plan, now, "primary"), args.repeats),
                      median_time(lambda: check_input(file, plan, now, "primary"), args.repeats)),
        }
        ours, reference = aggregate_table(plan, uri, pin), aggregate(plan, parquet, "parquet")
        worst = max(abs(a - b) / max(abs(b), 1e-300)
                    for arm in reference.overall for m in reference.overall[arm]
                    for a, b in zip(numbers(ours.overall[arm][m]), numbers(reference.overall[arm][m])))
    result = {"rows": args.rows, "repeats": args.repeats, "load_seconds": round(load, 2),
              "max_relative_difference_overall": worst, "python": platform.python_version(),
              **{name: {"postgresql_s": round(a, 3), "duckdb_s": round(b, 3), "ratio": round(a / b, 2)}
                 for name, (a, b) in figures.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.rows:,} rows (COPY into PostgreSQL {load:.1f} s); median of {args.repeats}")
    for name, (a, b) in figures.items():
        print(f"  {name:9s} PostgreSQL {a:7.3f} s   DuckDB/file {b:7.3f} s   ratio {a / b:6.2f}")
    print(f"  largest relative difference of an overall sufficient statistic: {worst:.2e}")


def _aggregate_only(plan, uri: str):
    """The aggregation in PostgreSQL without the pin's re-check (the snapshot hash is timed on its own)."""
    from impactbook.backends.warehouse import WarehouseTable, snapshot_transaction
    from impactbook.designs.aggregate import aggregate_source
    from impactbook.sqlengine import POSTGRESQL

    table = WarehouseTable.parse(uri)
    with snapshot_transaction(table) as connection:
        return aggregate_source(plan, table.relation, connection, POSTGRESQL)


if __name__ == "__main__":
    main()
