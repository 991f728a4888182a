"""`impactbook run` end to end on a large table (issue 13 item 1): pin, gates (contract and plan checks
in SQL over the pinned Parquet file), kernel, publish, report — wall time and the peak RSS of the
whole process tree (sampled every 20 ms), against two references in the same session: bare
Papermill on the same template and parameters, and the old admissibility gate's approach (pandas
loads every row to check the contract).

    python benchmarks/run_scale.py [--rows 100000000] [--naive-rows N] [--refused] [--json]

Targets: 100M rows <= 15 s and <= 1.5 GiB for the whole tree; at 10M rows >= 3x faster and >= 4x
less memory than the run measured before the gate moved to SQL (11.9 s, 1.79 GB; RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab_scale import OUT, generate, plan  # noqa: E402  (the same cached table and plan as ab_scale.py)
from phases import run_phases, table  # noqa: E402


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
    contract = {"unique": ["user_id"], "columns": {
        "user_id": {"type": "int", "min": 0}, "variant": {"type": "str", "allowed": ["control", "treatment"]},
        "platform": {"type": "str", "allowed": ["ios", "android", "web"]}, "date": {"type": "date"},
        "pre_revenue": {"type": "float", "min": 0}, "revenue": {"type": "float", "min": 0, "max": revenue_max},
        "converted": {"type": "int", "allowed": [0, 1]}}}
    from impactbook.catalog import Contract

    Catalog.load(project).pin_dataset("exposures", data, contract=Contract.model_validate(contract), synthetic=True)
    spec = plan().canonical()
    spec["inputs"] = {"experiment": "exposures"}
    spec["registration"] = {"mode": "retrospective", "reason": "a benchmark on a generated table"}
    dump_yaml(spec, project.root / "plans/scale.yaml")
    freeze_plan(project, "plans/scale.yaml")
    return project.root


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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from impactbook.plan import load_plan

    OUT.mkdir(parents=True, exist_ok=True)  # the table's cache, and the projects timed beside it
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        root = project_for(args.rows, Path(tmp) / "project")
        parameters = Path(tmp) / "parameters.json"
        parameters.write_text(json.dumps(load_plan(root / "plans/scale.yaml").template_parameters(), default=str))
        bin_dir = Path(sys.executable).parent
        ours = measured([str(bin_dir / "impactbook"), "run", "plans/scale.yaml", "--json"], root)
        record = json.loads(ours.pop("stdout"))
        phases = run_phases(root, Path(record["folder"]), ours.pop("launched"), ours.pop("exited"))
        bare = measured([str(bin_dir / "papermill"), "templates/ab_test.ipynb", str(Path(tmp) / "bare.ipynb"),
                         "-f", str(parameters), "-k", "python3", "--cwd", str(root), "--no-progress-bar"], root)
        for key in ("stdout", "launched", "exited"):
            bare.pop(key)
        refused = {}
        if args.refused:
            broken = project_for(args.rows, Path(tmp) / "refused", revenue_max=1.0)
            refused = measured([str(bin_dir / "impactbook"), "run", "plans/scale.yaml", "--json"], broken, exits=(3, 4))
            refused["status"] = json.loads(refused.pop("stdout")).get("status")
            for key in ("launched", "exited"):
                refused.pop(key)
    naive = naive_gate(args.naive_rows) if args.naive_rows else {"stdout": "", "launched": 0, "exited": 0}
    for key in ("stdout", "launched", "exited"):
        naive.pop(key)
    result = {"benchmark": "run_scale", "rows": args.rows, "impactbook_run": ours, "status": record["status"],
              "bare_papermill": bare, "ratio_to_papermill": round(ours["seconds"] / bare["seconds"], 3),
              **({"refused_by_the_contract": refused} if refused else {}),
              f"old_gate_pandas_load_{args.naive_rows}_rows": naive, "phases_s": phases,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                         f"{round(psutil.virtual_memory().total / 2**30)} GiB, Python {platform.python_version()}"}
    print(json.dumps(result, indent=2) if args.json else f"{json.dumps({k: v for k, v in result.items() if k != 'phases_s'}, indent=2)}\n\n{table(phases)}")


if __name__ == "__main__":
    main()
