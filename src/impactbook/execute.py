"""Stage 4 of a run: execute the template with Papermill in a fresh kernel; capture the environment.

Papermill saves the output notebook after every cell, so a run that fails keeps its partial
notebook: that is what a FAILED run publishes.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat

from .gitinfo import git_state
from .ledger import utc_now
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


def execute_template(project: Project, template: Path, output: Path, parameters: dict[str, Any], *,
                     seed: int, timeout_s: int | None = None, kernel_name: str = KERNEL,
                     on_cell: Callable[[int, int], None] | None = None) -> Execution:
    """Run the notebook in a fresh kernel with the project as cwd and hash randomisation fixed."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    logging.getLogger("papermill").setLevel(logging.ERROR)
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    environment = {PROJECT_ENV: str(project.root), "PYTHONHASHSEED": str(seed), "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                   "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    started, clock = utc_now(), time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(str(template), str(output), parameters=parameters, kernel_name=kernel_name,
                                   cwd=str(project.root), progress_bar=False, log_output=False,
                                   execution_timeout=timeout_s, report_mode=False,
                                   # the kernel's own start-up warnings (e.g. "running over TCP without
                                   # encryption" on a local loopback kernel) are not the user's business
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])
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
