"""Site generation for many runs: `impactbook site` over N published runs (default 1,000).

One real run of the demo plan is executed; it is then republished N - 1 times under new run ids
through the store (staging, SHA256SUMS, atomic rename, ledger entry, index row), as if N runs had
happened. The site build is timed against its I/O floor in the same script: copying every stored
report once (the ratio says what the site adds beyond reading and writing the reports).

Each build is the `impactbook site` command in a fresh process, as a user runs it: from scratch
(--full), then the incremental builds: nothing changed, and after --added new runs.

    python benchmarks/site_scale.py [--runs 1000] [--added 10] [--project PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def populate(root: Path, runs: int) -> list[str]:
    from impactbook.demo import run_demo
    from impactbook.project import Project
    from impactbook.scaffold import init_project

    project = init_project(root)
    first = run_demo(Project(root)).outcome.folder
    return [first.name] + republish(project, first, runs - 1)


def republish(project, first: Path, count: int) -> list[str]:
    """Publish copies of the run in `first` under new run ids, as if they had run."""
    from impactbook.hashing import sha256_file
    from impactbook.index import load_record, open_index
    from impactbook.ledger import Ledger
    from impactbook.publication import run_ledger_body
    from impactbook.durable import write_json
    from impactbook.store import SUMS, Staging, new_run_id

    ids = []
    index = open_index(project)
    for _ in range(count):
        run_id = new_run_id("example")
        staging = Staging(run_id, project.staging_dir / run_id, None)  # nobody else knows this id
        shutil.copytree(first, staging.folder)
        staging.folder.chmod(0o755)
        (staging.folder / SUMS).chmod(0o644)
        (staging.folder / "run.json").chmod(0o644)
        record = load_record(staging.folder).model_copy(update={"run_id": run_id})
        write_json(staging.folder / "run.json", record.model_dump(mode="json"), sync=False)
        folder = staging.publish(project.runs_dir)
        sums = sha256_file(folder / SUMS)
        entry = Ledger(project.ledger_path).append("run", run_ledger_body(record, sums))
        index.add(record, sums, entry["seq"])
        ids.append(run_id)
    return ids


def site_command(root: Path, out: Path, *extra: str) -> tuple[float, dict]:
    """`impactbook site` as a user runs it (a fresh process: imports included), timed."""
    command = [str(Path(sys.executable).parent / "impactbook"), "site", "--out", str(out), "--json", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--added", type=int, default=10, help="new runs before the incremental build")
    parser.add_argument("--project", type=Path, help="keep the populated project here and reuse it next time "
                                                        "(populating 10,000 runs takes minutes)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from impactbook.project import Project

    with tempfile.TemporaryDirectory() as tmp:
        root = args.project or Path(tmp) / "project"
        start = time.perf_counter()
        if not (root / "runs").is_dir():
            ids = populate(root, args.runs)
        else:
            ids = sorted(p.name for p in (root / "runs").iterdir() if p.is_dir() and not p.name.startswith("."))
        populated = time.perf_counter() - start
        floor_dir = Path(tmp) / "floor"
        floor_dir.mkdir()
        start = time.perf_counter()
        for folder in (root / "runs").iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                shutil.copyfile(folder / "report.html", floor_dir / f"{folder.name}.html")
        floor = time.perf_counter() - start
        out = Path(tmp) / "site"
        site, summary = site_command(root, out, "--full")
        incremental_none, unchanged = site_command(root, out)
        republish(Project(root), root / "runs" / ids[-1], args.added)
        incremental_added, added = site_command(root, out)
        assert unchanged["rendered"] == 0 and added["rendered"] == args.added, (unchanged, added)
    result = {"benchmark": "site_scale", "runs": summary["runs"], "site_s": round(site, 2),
              "incremental_unchanged_s": round(incremental_none, 2),
              f"incremental_{args.added}_new_runs_s": round(incremental_added, 2),
              "copy_reports_floor_s": round(floor, 2), "ratio_to_floor": round(site / floor, 2),
              "ms_per_run": round(1000 * site / summary["runs"], 2), "populate_s": round(populated, 1),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    print(json.dumps(result, indent=2) if args.json else
          f"impactbook site for {summary['runs']} runs: {site:.2f} s ({result['ms_per_run']} ms/run); copying the "
          f"stored reports alone: {floor:.2f} s (ratio {result['ratio_to_floor']}); incremental: "
          f"{incremental_none:.2f} s unchanged, {incremental_added:.2f} s after {args.added} new runs")


if __name__ == "__main__":
    main()
