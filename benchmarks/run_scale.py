"""`impactbook run` end to end on a large table (issue 13 item 1): pin, gates (contract and plan checks
in SQL over the pinned Parquet file), kernel, publish, report — wall time and the peak RSS of the
whole process tree (sampled every 20 ms), against two references in the same session: bare
Papermill on the same template and parameters, and the old admissibility gate's approach (pandas
loads every row to check the contract).

    python benchmarks/run_scale.py [--rows 100000000] [--naive-rows N] [--refused] [--baseline [REV]]
                                   [--repeats N] [--json]

Targets: 100M rows <= 15 s and <= 1.5 GiB for the whole tree; at 10M rows >= 3x faster and >= 4x
less memory than the run measured when issue 13 was filed (11.9 s, 1.79 GB; RESULTS.md). `--baseline`
measures that run again in the same session, "same script, same run" as the issue asks: the code of
FILED (the issue's "landed code") is built once into benchmarks/out/baseline-REV/ with its own venv,
given the same table in a project set up with its own API, and timed alternately with today's code.
With it, each round also times bare Papermill on the same template over a 1,000-row table: an estimate of the
floor of a run that executes the template in a fresh kernel, and so of the most "faster" can reach here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab_scale import OUT, generate, plan  # noqa: E402  (the same cached table and plan as ab_scale.py)
from phases import run_phases, table  # noqa: E402

FILED = "14f78d9"  # main when issue 13 was filed (its run overhead, 1.24-1.26x, is the one the issue quotes)
FLOOR_ROWS = 1_000  # bare Papermill on a table this small: about the least a fresh-kernel run of the template takes

# The filing-day project, made with that code's own API (init_project, pin_dataset, freeze_plan, its ab_scale
# plan). Its gate's `type: int` refuses the table's int32 `converted` (one of the findings), so that
# column is left out of its contract: the run reaches its kernel, and its gate checks one column fewer.
BASELINE_SETUP = """
import json, os, sys
from pathlib import Path
table, folder, benchmarks = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
sys.path.insert(0, benchmarks)
from ab_scale import plan
from impactbook.catalog import Catalog, Contract
from impactbook.freezing import freeze_plan
from impactbook.scaffold import init_project
from impactbook.yamlio import dump_yaml
project = init_project(folder)
data = folder / "data/exposures.parquet"
data.parent.mkdir(parents=True, exist_ok=True)
os.link(table, data) if table.stat().st_dev == data.parent.stat().st_dev else data.symlink_to(table)
Catalog.load(project).pin_dataset("exposures", data, Contract.model_validate(json.loads(sys.argv[4])))
spec = plan().model_dump(mode="json", exclude_none=True)
spec["inputs"] = {"experiment": "exposures"}
dump_yaml(spec, folder / "plans/scale.yaml")
freeze_plan(project, "plans/scale.yaml")
"""


def measured(command: list[str], cwd: Path, exits: tuple[int, ...] = (0,)) -> dict:
    """Wall seconds, the peak of the summed RSS of the process and all its descendants, and each one's peak
    (the kernel's apart from the command's own)."""
    clock, launched = time.perf_counter(), time.time()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root, peak, each = psutil.Process(process.pid), 0, {}
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            sizes = {p: p.memory_info().rss for p in tree if p.is_running()}
            peak = max(peak, sum(sizes.values()))
            for member, size in sizes.items():
                name = "kernel" if member != root and "ipykernel" in " ".join(member.cmdline()) else member.name()
                each[name] = max(each.get(name, 0), size)
        except psutil.Error:
            pass
        time.sleep(0.02)
    out, err = process.communicate()
    seconds, exited = time.perf_counter() - clock, time.time()
    if process.returncode not in exits:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{err[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak / 2**20),
            "peak_rss_mib_by_process": {name: round(size / 2**20) for name, size in each.items()}, "stdout": out, "launched": launched,
            "exited": exited, "exit_code": process.returncode}


def contract(revenue_max: float | None = None) -> dict:
    """The table's data contract (`revenue_max`: one the data breaks)."""
    return {"unique": ["user_id"], "columns": {
        "user_id": {"type": "int", "min": 0}, "variant": {"type": "str", "allowed": ["control", "treatment"]},
        "platform": {"type": "str", "allowed": ["ios", "android", "web"]}, "date": {"type": "date"},
        "pre_revenue": {"type": "float", "min": 0}, "revenue": {"type": "float", "min": 0, "max": revenue_max},
        "converted": {"type": "int", "allowed": [0, 1]}}}


def project_for(rows: int, folder: Path, revenue_max: float | None = None) -> Path:
    """A project with the table pinned under its contract (`revenue_max`: a contract the data breaks)."""
    from impactbook.catalog import Catalog
    from impactbook.freezing import freeze_plan
    from impactbook.scaffold import init_project
    from impactbook.yamlio import dump_yaml

    table = generate(rows)
    project = init_project(folder)
    data = project.resolve(Path("data/exposures.parquet"))
    data.parent.mkdir(parents=True, exist_ok=True)
    os.link(table, data) if table.stat().st_dev == data.parent.stat().st_dev else data.symlink_to(table)
    from impactbook.catalog import Contract

    Catalog.load(project).pin_dataset("exposures", data, contract=Contract.model_validate(contract(revenue_max)),
                                      synthetic=True)
    spec = plan().canonical()
    spec["inputs"] = {"experiment": "exposures"}
    spec["registration"] = {"mode": "retrospective", "reason": "a benchmark on a generated table"}
    dump_yaml(spec, project.root / "plans/scale.yaml")
    freeze_plan(project, "plans/scale.yaml")
    return project.root


def baseline_bin(revision: str) -> Path:
    """The `bin` folder of a venv holding the code at `revision` (built once: git archive, venv, pip install)."""
    repository = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(repository), "rev-parse", "--short", f"{revision}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    folder = OUT / f"baseline-{commit}"
    if not (folder / "built").exists():
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "src").mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(repository), "archive", commit], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(folder / "src")], input=archive.stdout, check=True)
        subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
        subprocess.run([str(folder / "venv/bin/pip"), "install", "-q", f"{folder / 'src'}[bench]"], check=True)
        (folder / "built").write_text(commit + "\n")
    return folder / "venv/bin"


def baseline_project(bin_dir: Path, rows: int, folder: Path) -> Path:
    source = bin_dir.parent.parent / "src"
    filed = contract()
    del filed["columns"]["converted"]  # (see BASELINE_SETUP)
    subprocess.run([str(bin_dir / "python"), "-c", BASELINE_SETUP, str(generate(rows)), str(folder),
                    str(source / "benchmarks"), json.dumps(filed)], check=True, capture_output=True)
    return folder


def median_of(measures: list[dict]) -> dict:
    """The median run's seconds and peak, and every run's, of runs alternated with the other contender's."""
    return {"seconds": statistics.median(m["seconds"] for m in measures),
            "peak_rss_mib": statistics.median(m["peak_rss_mib"] for m in measures),
            "each": [{k: m[k] for k in ("seconds", "peak_rss_mib", "peak_rss_mib_by_process", "exit_code")}
                     for m in measures]}


def bare_papermill(root: Path, output: Path, parameters: Path) -> dict:
    """Papermill alone on the project's template and parameters: the same notebook in a fresh kernel."""
    bin_dir = Path(sys.executable).parent
    bare = measured([str(bin_dir / "papermill"), "templates/ab_test.ipynb", str(output), "-f", str(parameters),
                     "-k", "python3", "--cwd", str(root), "--no-progress-bar"], root)
    for key in ("stdout", "launched", "exited"):
        bare.pop(key)
    return bare


def naive_gate(rows: int) -> dict:
    """The old gate's cost: pandas loads every row of the table to check the contract."""
    code = ("import pandas as pd, sys; f = pd.read_parquet(sys.argv[1]); "
            "assert f['user_id'].is_unique and f['variant'].isin(['control', 'treatment']).all()")
    return measured([sys.executable, "-c", code, str(generate(rows))], Path.cwd())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--naive-rows", type=int, default=10_000_000, help="0: skip the old gate's reference")
    parser.add_argument("--refused", action="store_true", help="also time a run the data contract refuses "
                                                                   "(revenue max 1: most rows break it)")
    parser.add_argument("--baseline", nargs="?", const=FILED, metavar="REV",
                        help=f"also time the code at REV (default {FILED}, the code issue 13 was filed against) in the "
                             "same session, alternating with today's; ratios of the medians")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each contender (with --baseline)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from impactbook.plan import load_plan

    OUT.mkdir(parents=True, exist_ok=True)  # the table's cache, and the projects timed beside it
    import compileall

    import impactbook  # compiled as pip compiles an installed package (the baseline's is): an editable install under
    compileall.compile_dir(Path(impactbook.__file__).parent, quiet=1)  # PYTHONDONTWRITEBYTECODE=1 never is
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        root = project_for(args.rows, Path(tmp) / "project")
        parameters = Path(tmp) / "parameters.json"
        parameters.write_text(json.dumps(load_plan(root / "plans/scale.yaml").template_parameters(), default=str))
        bin_dir = Path(sys.executable).parent
        ours = measured([str(bin_dir / "impactbook"), "run", "plans/scale.yaml", "--json"], root)
        record = json.loads(ours.pop("stdout"))
        phases = run_phases(root, Path(record["folder"]), ours.pop("launched"), ours.pop("exited"))
        bare = bare_papermill(root, Path(tmp) / "bare.ipynb", parameters)
        refused = {}
        if args.refused:
            broken = project_for(args.rows, Path(tmp) / "refused", revenue_max=1.0)
            refused = measured([str(bin_dir / "impactbook"), "run", "plans/scale.yaml", "--json"], broken, exits=(3, 4))
            refused["status"] = json.loads(refused.pop("stdout")).get("status")
            for key in ("launched", "exited"):
                refused.pop(key)
        baseline = {}
        if args.baseline:
            old_bin = baseline_bin(args.baseline)
            old_root = baseline_project(old_bin, args.rows, Path(tmp) / "baseline")
            tiny = project_for(FLOOR_ROWS, Path(tmp) / "floor")
            tiny_parameters = Path(tmp) / "floor-parameters.json"
            tiny_parameters.write_text(json.dumps(load_plan(tiny / "plans/scale.yaml").template_parameters(),
                                                  default=str))
            old_runs, new_runs, floors = [], [ours], []
            for repeat in range(args.repeats):
                old_runs.append(measured([str(old_bin / "impactbook"), "run", "plans/scale.yaml", "--json"], old_root))
                if repeat:
                    new_runs.append(measured([str(bin_dir / "impactbook"), "run", "plans/scale.yaml", "--json"], root))
                floors.append(bare_papermill(tiny, Path(tmp) / "floor.ipynb", tiny_parameters))
            before, after, floor = median_of(old_runs), median_of(new_runs), median_of(floors)
            baseline = {"revision": args.baseline, "baseline": before, "today": after,
                        "faster": round(before["seconds"] / after["seconds"], 2),
                        "less_memory": round(before["peak_rss_mib"] / after["peak_rss_mib"], 2),
                        "targets": "at 10M rows: faster >= 3, less_memory >= 4",
                        f"floor_bare_papermill_{FLOOR_ROWS}_rows": floor,
                        "filed_over_floor": round(before["seconds"] / floor["seconds"], 2)}
    naive = naive_gate(args.naive_rows) if args.naive_rows else {"stdout": "", "launched": 0, "exited": 0}
    for key in ("stdout", "launched", "exited"):
        naive.pop(key)
    result = {"benchmark": "run_scale", "rows": args.rows, "impactbook_run": ours, "status": record["status"],
              "bare_papermill": bare, "ratio_to_papermill": round(ours["seconds"] / bare["seconds"], 3),
              **({"refused_by_the_contract": refused} if refused else {}),
              **({"same_run_against_the_filed_code": baseline} if baseline else {}),
              f"old_gate_pandas_load_{args.naive_rows}_rows": naive, "phases_s": phases,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                         f"{round(psutil.virtual_memory().total / 2**30)} GiB, Python {platform.python_version()}"}
    print(json.dumps(result, indent=2) if args.json else f"{json.dumps({k: v for k, v in result.items() if k != 'phases_s'}, indent=2)}\n\n{table(phases)}")


if __name__ == "__main__":
    main()
