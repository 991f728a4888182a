"""Site generation for many runs: `impactbook site` over N published runs (default 1,000).

One real run of the demo plan is executed; it is then republished N - 1 times under new run ids
through the store (staging, SHA256SUMS, atomic rename, ledger entry, index row), as if N runs had
happened. The site build is timed against its I/O floor in the same script: copying every stored
report once (the ratio says what the site adds beyond reading and writing the reports).

Then the incremental builds: nothing changed, and after --added new runs.

    python benchmarks/site_scale.py [--runs 1000] [--added 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--added", type=int, default=10, help="new runs before the incremental build")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from impactbook.project import Project
    from impactbook.website import build_site

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        start = time.perf_counter()
        ids = populate(root, args.runs)
        populated = time.perf_counter() - start
        floor_dir = Path(tmp) / "floor"
        floor_dir.mkdir()
        start = time.perf_counter()
        for folder in (root / "runs").iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                shutil.copyfile(folder / "report.html", floor_dir / f"{folder.name}.html")
        floor = time.perf_counter() - start
        start = time.perf_counter()
        summary = build_site(Project(root), Path(tmp) / "site", full=True)
        site = time.perf_counter() - start
        start = time.perf_counter()
        unchanged = build_site(Project(root), Path(tmp) / "site")
        incremental_none = time.perf_counter() - start
        republish(Project(root), root / "runs" / ids[0], args.added)
        start = time.perf_counter()
        added = build_site(Project(root), Path(tmp) / "site")
        incremental_added = time.perf_counter() - start
        assert unchanged.rendered == 0 and added.rendered == args.added, (unchanged.rendered, added.rendered)
    result = {"benchmark": "site_scale", "runs": summary.runs, "site_s": round(site, 2),
              "incremental_unchanged_s": round(incremental_none, 2),
              f"incremental_{args.added}_new_runs_s": round(incremental_added, 2),
              "copy_reports_floor_s": round(floor, 2), "ratio_to_floor": round(site / floor, 2),
              "ms_per_run": round(1000 * site / summary.runs, 2), "populate_s": round(populated, 1),
              "machine": f"{platform.machine()}, Python {platform.python_version()}"}
    print(json.dumps(result, indent=2) if args.json else
          f"site for {summary.runs} runs: {site:.2f} s ({result['ms_per_run']} ms/run); copying the stored "
          f"reports alone: {floor:.2f} s (ratio {result['ratio_to_floor']}); incremental: "
          f"{incremental_none:.2f} s unchanged, {incremental_added:.2f} s after {args.added} new runs")


if __name__ == "__main__":
    main()
