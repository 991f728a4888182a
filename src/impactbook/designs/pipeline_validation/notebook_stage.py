"""Stage 2, notebook stages: a stage whose code is a notebook, run by Papermill in a fresh kernel per call.

The contract: the harness writes the stage's input frame to a Parquet file and injects its path as the
parameter `input_path`, and a path `output_path` where the notebook must write its output frame as Parquet
(`frame.to_parquet(output_path)`). Files, not scraps, because a frame of a million rows does not belong in a
notebook's JSON. The kernel runs with the project as its working directory. A failing cell ends the call
with `NotebookStageError` naming the notebook, the cell (counted among the notebook's own code cells) and
its error; the harness reports it at this stage like any stage that raises.

Cost: every call starts a kernel, so a notebook stage's latency includes kernel start-up, Papermill and
the Parquet round trip (what a pipeline running it pays per batch). Its memory runs in the kernel process,
not ours: a cell the harness adds before the notebook's first cell resets the kernel's resident high-water
mark (after start-up), and one after its last cell reports the rise, so the kernel's start-up is excluded
and the notebook's own imports are included.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...project import PROJECT_ENV

KERNEL = "python3"
MEASURE_TAG = "impactbook-stage-memory"

_START = """import pathlib as _ib_pathlib
_ib_status = _ib_pathlib.Path("/proc/self/status")
def _ib_kib(field):
    for line in _ib_status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
try:
    _ib_pathlib.Path("/proc/self/clear_refs").write_text("5")
    _ib_rss_before = _ib_kib("VmRSS")
except OSError:
    _ib_rss_before = None"""

_END = """import json as _ib_json
_ib_pathlib.Path({path!r}).write_text(_ib_json.dumps(
    None if _ib_rss_before is None else max(0, _ib_kib("VmHWM") - _ib_rss_before) / 1024))"""


class NotebookStageError(RuntimeError):
    """A notebook stage's cell raised (or the kernel died, or no output was written)."""


def project_root() -> Path:
    """Where notebook paths are resolved: the project `impactbook run` names, else the working directory."""
    return Path(os.environ.get(PROJECT_ENV) or Path.cwd()).resolve()


def _measured_copy(notebook: dict, peak_file: Path) -> dict:
    import nbformat

    copy = nbformat.from_dict(json.loads(json.dumps(notebook)))
    start = nbformat.v4.new_code_cell(_START, metadata={"tags": [MEASURE_TAG]})
    end = nbformat.v4.new_code_cell(_END.format(path=str(peak_file)), metadata={"tags": [MEASURE_TAG]})
    copy.cells = [start, *copy.cells, end]
    return copy


def _failed_cell(executed: Path) -> tuple[int | None, str]:
    """The failing cell's number among the notebook's own code cells (ours and Papermill's left out) and its
    first line, found by its error output in the saved notebook (Papermill also adds a banner cell there)."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):
        return None, ""
    own = [cell for cell in cells if cell.cell_type == "code"
           and not {MEASURE_TAG, "injected-parameters"} & set(cell.metadata.get("tags", []))]
    for number, cell in enumerate(own, 1):
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return number, (cell.source.strip().splitlines() or [""])[0]
    return None, ""


@dataclass
class NotebookStage:
    """A callable stage (frame in, frame out) that executes `notebook` (relative to `root`) with Papermill.
    `last_peak_mb` holds the kernel's resident rise of the last call (None where it cannot be read)."""

    notebook: str
    root: Path = field(default_factory=project_root)
    timeout_s: int | None = None
    last_peak_mb: float | None = None

    @property
    def path(self) -> Path:
        return self.root / self.notebook

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        import nbformat
        import papermill
        from papermill.exceptions import PapermillExecutionError

        if not self.path.is_file():
            raise NotebookStageError(f"notebook {self.notebook!r} does not exist under {self.root}")
        logging.getLogger("papermill").setLevel(logging.CRITICAL)  # its error becomes the stage's, stated once
        with tempfile.TemporaryDirectory(prefix="impactbook-stage-") as folder:
            work = Path(folder)
            source, executed = work / "stage.ipynb", work / "executed.ipynb"
            input_path, output_path, peak_file = work / "input.parquet", work / "output.parquet", work / "peak.json"
            try:
                frame.to_parquet(input_path)
            except Exception as exc:  # e.g. a column mixing numbers and text: Parquet needs one type per column
                raise NotebookStageError(f"the input cannot be passed to notebook {self.notebook!r} as Parquet: "
                                         f"{type(exc).__name__}: {exc}") from exc
            nbformat.write(_measured_copy(nbformat.read(self.path, as_version=4), peak_file), source)
            try:
                papermill.execute_notebook(str(source), str(executed), kernel_name=KERNEL, cwd=str(self.root),
                                           parameters={"input_path": str(input_path), "output_path": str(output_path)},
                                           progress_bar=False, log_output=False, execution_timeout=self.timeout_s,
                                           extra_arguments=["--IPKernelApp.log_level=ERROR"])
            except PapermillExecutionError as exc:
                number, first_line = _failed_cell(executed)
                where = f"cell {number}" + (f" ({first_line!r})" if first_line else "") if number else f"cell index {exc.cell_index}"
                raise NotebookStageError(f"notebook {self.notebook!r} failed in {where}: {exc.ename}: {exc.evalue}") from None
            except Exception as exc:  # kernel death, timeout
                raise NotebookStageError(f"notebook {self.notebook!r} did not run: {type(exc).__name__}: {exc}") from exc
            if not output_path.exists():
                raise NotebookStageError(f"notebook {self.notebook!r} wrote no output: it must write its frame as "
                                         f"Parquet to the injected `output_path`")
            self.last_peak_mb = json.loads(peak_file.read_text()) if peak_file.exists() else None
            return pd.read_parquet(output_path)
