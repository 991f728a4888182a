"""Run-index queries over many runs on both backends: list (all, or a page), filter by plan, latest, find by prefix.

N synthetic rows (default 100,000; 20 plans) go in through the stores' own rebuild path
(`replace_all`). Each query, and `latest` on a store opened afresh as a command opens it, is timed (median of --repeat) against a reference in the same run: the
bare driver (sqlite3 / psycopg) fetching every row of the same table with `SELECT *`, no parsing.
PostgreSQL is a real throwaway server started here (tests/backends/postgres_server.py).

    python benchmarks/index_backends.py [--runs 100000] [--repeat 5] [--json]
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
PAGE = 50  # `impactbook runs list --limit 50 [--offset N | --newest]`: a page, as a person or a dashboard lists runs
LEDGER = "c" * 64  # the hash of the project's first ledger entry, which the index records as its owner


def synthetic_rows(count: int) -> list[tuple]:
    verdicts = json.dumps({"primary:conversion": "CONFIRMED", "guardrail:latency": "REFUTED"})
    return [(f"20261123T{i:09d}Z-plan{i % 20:02d}-{i:08x}", f"plan{i % 20:02d}", 1 + i % 3, "a" * 64,
             "COMPLETED", "ship", verdicts, "model-a", "model-b", "ab_test", "2026-11-23T00:00:00Z",
             "2026-11-23T00:01:00Z", "b" * 64, i, "", "conversion rose by 1.2 points (0.4 to 2.0)")
            for i in range(count)]


def median_ms(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(store, reopen, bare_select_all, rows: list[tuple], repeat: int) -> dict:
    """`reopen()` opens the store afresh, as each CLI command does (schema and owner checks included)."""
    started = time.perf_counter()
    store.replace_all(rows)
    load_s = time.perf_counter() - started
    probe = rows[len(rows) // 2][0]
    figures = {
        "list_all_ms": median_ms(lambda: store.rows(), repeat),
        "list_page_newest_ms": median_ms(lambda: store.rows(limit=PAGE, newest_first=True), repeat),
        "list_page_middle_ms": median_ms(lambda: store.rows(limit=PAGE, offset=len(rows) // 2), repeat),
        "filter_plan_ms": median_ms(lambda: store.rows("plan07"), repeat),
        "latest_ms": median_ms(lambda: store.find("latest"), repeat),
        "open_and_latest_ms": median_ms(lambda: reopen().find("latest"), repeat),
        "find_prefix_ms": median_ms(lambda: store.find(probe[:-2]), repeat),
        "reference_bare_select_all_ms": median_ms(bare_select_all, repeat),
        "rebuild_load_s": round(load_s, 2),
    }
    figures["list_all_ratio_to_reference"] = round(figures["list_all_ms"] / figures["reference_bare_select_all_ms"], 2)
    return {k: round(v, 1) if k.endswith("_ms") else v for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import sqlite3

    import psycopg
    from postgres_server import fresh_database, postgres_server

    from impactbook.backends.index_store import default_index_stores

    rows = synthetic_rows(args.runs)
    stores = default_index_stores()
    results = {"runs": args.runs, "machine": f"{platform.python_version()} on {platform.machine()}"}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "index.sqlite"
        sqlite = stores.open(f"sqlite://{path}").expect_owner(LEDGER)

        def bare_sqlite():
            with sqlite3.connect(path) as connection:
                connection.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
        results["sqlite"] = measure(sqlite, lambda: stores.open(f"sqlite://{path}").expect_owner(LEDGER),
                                    bare_sqlite, rows, args.repeat)
    with postgres_server() as server:
        url = fresh_database(server, "bench")
        postgres = stores.open(url).expect_owner(LEDGER)

        def bare_postgres():
            with psycopg.connect(url) as connection:
                connection.execute('SELECT * FROM runs ORDER BY run_id COLLATE "C"').fetchall()
        results["postgresql"] = measure(postgres, lambda: stores.open(url).expect_owner(LEDGER), bare_postgres, rows,
                                        args.repeat)
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
