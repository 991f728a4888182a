"""Stage 4 of a run: execute the template with Papermill in a fresh kernel; capture the environment.

Papermill saves the output notebook after every cell, so a run that fails keeps its partial
notebook: that is what a FAILED run publishes.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat

from . import faults
from .durable import write_text
from .gitinfo import git_state
from .ledger import utc_now
from .inputs import PINS_ENV
from .processes import die_with_parent
from .project import PROJECT_ENV, Project

KERNEL = "python3"


@dataclass(frozen=True)
class Execution:
    ok: bool
    started_at: str
    finished_at: str
    duration_s: float
    error: str | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)


def capture_environment(project: Project, kernel_name: str = KERNEL) -> dict[str, Any]:
    """Enough to rebuild the environment: Python, platform, every installed distribution, git state."""
    distributions = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            distributions[name.lower()] = dist.version
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "kernel_name": kernel_name,
        "executable": sys.executable,
        "git": git_state(project.root),
        "distributions": dict(sorted(distributions.items())),
    }


def cell_timings(notebook_path: Path) -> list[dict[str, Any]]:
    """Per-cell start, end, duration and status as papermill recorded them in cell metadata."""
    if not notebook_path.exists():
        return []
    notebook = nbformat.read(notebook_path, as_version=4)
    timings = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("papermill", {})
        timings.append({"index": index, "status": meta.get("status"), "start": meta.get("start_time"),
                        "end": meta.get("end_time"), "duration_s": meta.get("duration")})
    return timings


class NotebookSaveFailed(Exception):
    """The file system refused a save of the executed notebook: a storage problem, not the kernel's."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _StagingNotebookHandler:
    """papermill saves the output notebook after every cell; through this handler each save replaces the
    file atomically, so a kill mid-save leaves the previous complete notebook, never half of one."""

    def read(self, path: str) -> str:
        with open(path, encoding="utf-8") as handle:
            return handle.read()

    def listdir(self, path: str) -> list[str]:
        return [os.path.join(path, name) for name in os.listdir(path)]

    def write(self, buf: str, path: str) -> None:
        try:
            write_text(Path(path), buf, sync=False)  # fsynced once, at publication
        except OSError as exc:
            raise NotebookSaveFailed(exc) from exc
        faults.point("notebook.saved")

    def pretty_path(self, path: str) -> str:
        return path


def _route_saves_through_handler(folder: Path) -> None:
    """papermill picks an I/O handler by path prefix (papermill.iorw); register ours for `folder` once."""
    from papermill.iorw import papermill_io

    prefix = str(folder) + os.sep
    if not any(scheme == prefix for scheme, _ in papermill_io._handlers):
        papermill_io.register(prefix, _StagingNotebookHandler())


KERNEL_LOG = "kernel.log"


def _kernel_manager_class(log: Path):
    """A kernel manager whose kernel dies with this process (jupyter_client starts kernels in a session
    of their own, so a kill of our process group would not reach them) and whose own output (start-up
    noise, the traceback of a kernel being shut down mid-cell) goes to `log`, not to the user's terminal."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelDyingWithItsRun(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            parent = os.getpid()
            kw["preexec_fn"] = lambda: die_with_parent(parent)
            with open(log, "ab") as handle:
                kw["stdout"] = kw["stderr"] = handle
                return await super()._async_launch_kernel(kernel_cmd, **kw)

    return KernelDyingWithItsRun


def execute_template(project: Project, template: Path, output: Path, parameters: dict[str, Any], *,
                     seed: int, timeout_s: int | None = None, kernel_name: str = KERNEL,
                     pins: dict[str, dict[str, Any]] | None = None,
                     on_cell: Callable[[int, int, float], None] | None = None) -> Execution:
    """Run the notebook in a fresh kernel with the project as cwd and hash randomisation fixed."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    logging.getLogger("papermill").setLevel(logging.CRITICAL)  # its errors become the run's, stated once
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    environment = {PROJECT_ENV: str(project.root), "PYTHONHASHSEED": str(seed), "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                   "MPLBACKEND": "module://matplotlib_inline.backend_inline", PINS_ENV: json.dumps(pins or {})}
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    started, clock = utc_now(), time.perf_counter()
    error = None
    _route_saves_through_handler(output.parent)
    hooks: dict[str, Callable] = {}
    if on_cell is not None:
        total = sum(1 for cell in nbformat.read(template, as_version=4).cells if cell.cell_type == "code") + 1
        started_cells = []

        def cell_started(cell, cell_index, **_):  # nbclient's hook; the +1 is papermill's injected parameters
            if cell.cell_type == "code":
                started_cells.append(cell_index)
                on_cell(len(started_cells), total, time.perf_counter() - clock)
        hooks["on_cell_start"] = cell_started
    try:
        papermill.execute_notebook(str(template), str(output), parameters=parameters, kernel_name=kernel_name,
                                   kernel_manager_class=_kernel_manager_class(output.parent / KERNEL_LOG),
                                   **hooks,
                                   cwd=str(project.root), progress_bar=False, log_output=False,
                                   execution_timeout=timeout_s, report_mode=False,
                                   # the kernel's own start-up warnings (e.g. "running over TCP without
                                   # encryption" on a local loopback kernel) are not the user's business
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except NotebookSaveFailed as exc:
        raise exc.error from None
    except PapermillExecutionError as exc:
        error = f"cell {exc.exec_count or exc.cell_index}: {exc.ename}: {exc.evalue}"
    except KeyboardInterrupt:
        error = "interrupted (SIGINT/SIGTERM) while the kernel was running"
    except Exception as exc:  # kernel death, timeout, bad notebook: all end as a FAILED run, never lost
        error = f"{type(exc).__name__}: {exc}".strip()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Execution(ok=error is None, started_at=started, finished_at=utc_now(),
                     duration_s=round(time.perf_counter() - clock, 3), error=error, cells=cell_timings(output))
