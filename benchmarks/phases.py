"""Where one `impactbook run` spent its time, without a profiler: the phases its run record keeps
(timings.phases, seconds since its process started) and, for what happens after the record is written,
the modification times of the files each later step writes (report, SHA256SUMS, ledger, index) and the
process's exit. Every figure is in seconds since the benchmark launched the command."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path


def _epoch(text: str) -> float:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).timestamp()  # papermill: naive UTC


def run_phases(root: Path, folder: Path, launched: float, exited: float) -> dict[str, list[float]]:
    """`folder`: the published run (`impactbook run --json` prints it); `root`: its project."""
    timings = json.loads((folder / "run.json").read_text())["timings"]
    offset = _epoch(timings["process_started_at"]) - launched if timings.get("process_started_at") else 0.0
    phases = {name: [round(start + offset, 2), round(end + offset, 2)]
              for name, (start, end) in timings.get("phases", {}).items()}  # none before the record kept them
    for number, cell in enumerate(timings["cells"], 1):
        if cell.get("start") and cell.get("end"):
            phases[f"cell {number}"] = [round(_epoch(cell["start"]) - launched, 2), round(_epoch(cell["end"]) - launched, 2)]
    mtime = lambda path: path.stat().st_mtime - launched  # noqa: E731
    index = max((mtime(p) for p in (root / "runs").glob("index.sqlite*")), default=None)
    marks = [("report", mtime(folder / "scraps.json"), mtime(folder / "report.html")),
             ("record_and_sums", mtime(folder / "report.html"), mtime(folder / "SHA256SUMS")),
             ("rename_seal_ledger", mtime(folder / "SHA256SUMS"), mtime(root / "runs/ledger.jsonl"))]
    if index is not None:
        marks.append(("index", mtime(root / "runs/ledger.jsonl"), index))
    marks.append(("exit", max(end for _, _, end in marks), exited - launched))
    phases.update({name: [round(start, 2), round(end, 2)] for name, start, end in marks})
    return dict(sorted(phases.items(), key=lambda item: item[1]))


def table(phases: dict[str, list[float]]) -> str:
    """A Markdown table: phase, start, end, duration."""
    rows = ["| phase | start s | end s | duration s |", "| --- | --- | --- | --- |"]
    rows += [f"| {name} | {start:.2f} | {end:.2f} | {end - start:.2f} |" for name, (start, end) in phases.items()]
    return "\n".join(rows)
