"""Fault benchmark: N runs killed with SIGKILL at random moments, M runs overlapping, then recovery by the
next command, `verify`, `index rebuild` and a consistency check. Prints one JSON summary.

    python benchmarks/faults.py [--kills 50] [--overlapping 8] [--seed 1]

Every number in the summary but the counts of runs must be 0 (and verify's exit code 0) for the run
store to keep its promise: nothing half-published, nothing orphaned, no result altered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from impactbook.catalog import Catalog
from impactbook.demo import DATASET, DEMO_CONTRACT, generate_demo_data
from impactbook.freezing import freeze_plan
from impactbook.index import RunIndex
from impactbook.ledger import Ledger
from impactbook.scaffold import init_project
from impactbook.store import published_runs

PLAN = "plans/example.yaml"


def impactbook(root: Path, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "impactbook", *args], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--overlapping", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="impactbook-faults-")) / "project"
    project = init_project(root)
    start = dt.date.today() + dt.timedelta(days=1)
    data = generate_demo_data(project.resolve("data/demo_experiment.csv"), start, 14, users=20_000,
                              conversion_lift=0.03)
    Catalog.load(project).pin_dataset(DATASET, data, contract=DEMO_CONTRACT, synthetic=True)
    freeze_plan(project, PLAN)

    clock = time.perf_counter()
    reference = impactbook(root, "run", PLAN, "--json")
    out, err = reference.communicate()
    reference_id = json.loads(out)["run_id"]
    reference_scraps = (project.runs_dir / reference_id / "scraps.json").read_bytes()
    duration = time.perf_counter() - clock

    killed_at = []
    for _ in range(args.kills):
        delay = rng.uniform(0.05, duration * 1.05)
        process = impactbook(root, "run", PLAN, start_new_session=True)
        time.sleep(delay)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            killed_at.append(round(delay, 2))
        process.wait()

    half_published = [f.name for f in published_runs(project) if not (f / "SHA256SUMS").is_file()]
    processes = []
    for number in range(args.overlapping):
        processes.append(impactbook(root, "run", PLAN, "--json"))  # the first one recovers every killed run
        time.sleep(rng.uniform(0.2, 1.5))
    for process in processes:
        process.communicate()
    overlapping_ok = sum(p.returncode == 0 for p in processes)

    listed = impactbook(root, "runs", "list", "--json")
    listed.communicate()
    verify = impactbook(root, "verify", "--json")
    verify_out, _ = verify.communicate()
    rebuild = impactbook(root, "index", "rebuild")
    rebuild.communicate()

    folders = {f.name for f in published_runs(project)}
    ledger_runs = set(Ledger(project.ledger_path).runs())
    indexed = {row["run_id"] for row in RunIndex(project.index_path).rows()}
    statuses: dict[str, int] = {}
    changed = []
    for name in folders:
        record = json.loads((project.runs_dir / name / "run.json").read_text())
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
        if record["status"] == "COMPLETED" and (project.runs_dir / name / "scraps.json").read_bytes() != reference_scraps:
            changed.append(name)
    orphans = [p.name for p in project.staging_dir.iterdir()] if project.staging_dir.exists() else []
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "runs_started": 1 + args.kills + args.overlapping, "killed": len(killed_at),
        "finished_before_the_kill": args.kills - len(killed_at), "overlapping_completed": overlapping_ok,
        "published_runs": len(folders), "statuses": statuses,
        "half_published_folders": len(half_published), "orphan_staging_folders_left": len(orphans),
        "completed_runs_whose_result_changed": len(changed), "verify_exit_code": verify.returncode,
        "verify_problems": json.loads(verify_out)["problems"][:5] if verify_out else None,
        "index_equals_folders_equals_ledger": folders == ledger_runs == indexed,
        "seconds_per_clean_run": round(duration, 2), "project": str(root),
    }
    print(json.dumps(summary, indent=2))
    bad = (summary["half_published_folders"] or summary["orphan_staging_folders_left"]
           or summary["completed_runs_whose_result_changed"] or summary["verify_exit_code"]
           or not summary["index_equals_folders_equals_ledger"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
