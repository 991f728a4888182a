"""Throughput of many runs: N runs of the example plan one after another (the baseline) against the
same N runs on a 2-worker Dask LocalCluster (`impactbook run --executor dask`), in the same project
and the same session. Prints one JSON summary with the throughput ratio.

    python benchmarks/many_runs.py [--runs 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from impactbook.catalog import Catalog
from impactbook.demo import DATASET, DEMO_CONTRACT, generate_demo_data
from impactbook.freezing import freeze_plan
from impactbook.scaffold import init_project

PLAN = "plans/example.yaml"


def timed(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    clock = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "impactbook", *args], cwd=root, capture_output=True, text=True)
    return time.perf_counter() - clock, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from distributed import LocalCluster

    root = Path(tempfile.mkdtemp(prefix="impactbook-many-")) / "project"
    project = init_project(root)
    data = generate_demo_data(project.resolve("data/demo_experiment.csv"), dt.date.today() + dt.timedelta(days=1), 14,
                              users=20_000, conversion_lift=0.03)
    Catalog.load(project).pin_dataset(DATASET, data, contract=DEMO_CONTRACT, synthetic=True)
    freeze_plan(project, PLAN)
    sequential = 0.0
    for _ in range(args.runs):
        seconds, done = timed(root, "run", PLAN, "--json")
        assert done.returncode == 0, done.stderr
        sequential += seconds
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        parallel, done = timed(root, "run", *[PLAN] * args.runs, "--executor", "dask", "--scheduler",
                               cluster.scheduler_address, "--json")
    results = json.loads(done.stdout)
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "runs": args.runs, "workers": args.workers,
        "sequential_seconds": round(sequential, 1), "dask_seconds": round(parallel, 1),
        "throughput_ratio": round(sequential / parallel, 3),
        "dask_completed": sum(r.get("status") == "COMPLETED" for r in results), "dask_exit_code": done.returncode,
        "identical_scraps": len({(project.runs_dir / r["run_id"] / "scraps.json").read_bytes()
                                 for r in results if r.get("run_id")}) == 1,
    }, indent=2))


if __name__ == "__main__":
    main()
