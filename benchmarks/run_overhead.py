"""Overhead of `impactbook run` over a bare `papermill` execution of the same template.

In one process, alternate the two commands on the demo data (200k users) in a scratch copy of
the project, several times; report each wall time and the median ratio, and where the last
`impactbook run` spent its time (phases.py). Target: <= 1.10 (issue 13; it was 1.25 in issue 2).

    python benchmarks/run_overhead.py [--repeats 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from phases import run_phases, table  # noqa: E402


def scratch_project(folder: Path) -> Path:
    from impactbook.demo import run_demo
    from impactbook.project import Project

    for item in ("catalog.yaml", "plans/example.yaml", "templates/ab_test.ipynb", "runs/ledger.jsonl"):
        (folder / item).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / item, folder / item)
    run_demo(Project(folder))  # data, pin, freeze; also warms the OS file cache for both contenders
    return folder


def timed(command: list[str], cwd: Path) -> tuple[float, dict]:
    """Wall seconds, and what the phases need: when the command was launched and exited, its stdout."""
    start, launched = time.perf_counter(), time.time()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed, exited = time.perf_counter() - start, time.time()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, {"launched": launched, "exited": exited, "stdout": done.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from impactbook.plan import load_plan

    with tempfile.TemporaryDirectory() as tmp:
        root = scratch_project(Path(tmp) / "project")
        parameters = Path(tmp) / "parameters.json"
        parameters.write_text(json.dumps(load_plan(root / "plans/example.yaml").template_parameters()))
        bin_dir = Path(sys.executable).parent
        ours = [str(bin_dir / "impactbook"), "run", "plans/example.yaml", "--json"]
        bare = [str(bin_dir / "papermill"), "templates/ab_test.ipynb", str(Path(tmp) / "bare.ipynb"),
                "-f", str(parameters), "-k", "python3", "--cwd", str(root), "--no-progress-bar"]
        rows = []
        for _ in range(args.repeats):
            (impactbook_s, last), (papermill_s, _) = timed(ours, root), timed(bare, root)
            rows.append({"impactbook_s": impactbook_s, "papermill_s": papermill_s})
        phases = run_phases(root, Path(json.loads(last["stdout"])["folder"]), last["launched"], last["exited"])
    ratios = [r["impactbook_s"] / r["papermill_s"] for r in rows]
    result = {"benchmark": "run_overhead", "repeats": args.repeats, "rows": rows,
              "median_impactbook_s": statistics.median(r["impactbook_s"] for r in rows),
              "median_papermill_s": statistics.median(r["papermill_s"] for r in rows),
              "median_ratio": statistics.median(ratios),
              "ratio_quartiles": [round(q, 3) for q in statistics.quantiles(ratios, n=4)] if len(ratios) > 1 else None,
              "target_ratio": 1.10, "phases_s": phases,
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for index, (row, ratio) in enumerate(zip(rows, ratios), 1):
            print(f"{index}: impactbook {row['impactbook_s']:.2f} s, papermill {row['papermill_s']:.2f} s, ratio {ratio:.3f}")
        print(f"median ratio {result['median_ratio']:.3f} (target <= 1.10), quartiles {result['ratio_quartiles']}; "
              f"medians {result['median_impactbook_s']:.2f} s vs {result['median_papermill_s']:.2f} s "
              f"(ratio of medians {result['median_impactbook_s'] / result['median_papermill_s']:.3f})\n")
        print(f"the last impactbook run, phase by phase:\n{table(phases)}")


if __name__ == "__main__":
    main()
