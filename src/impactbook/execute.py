"""Stage 4 of a run: execute the template with Papermill in a fresh kernel; capture the environment.

Papermill saves the output notebook after every cell, so a run that fails keeps its partial
notebook: that is what a FAILED run publishes.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import math
import os
import platform
import signal
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat

from . import faults
from .durable import write_text
from .gitinfo import git_state
from .ledger import parse_time, utc_now
from .inputs import PINS_ENV
from .processes import dying_with_this_process
from .project import PROJECT_ENV, Project
from .timeline import Timeline

KERNEL = "python3"


@dataclass(frozen=True)
class Execution:
    ok: bool
    started_at: str
    finished_at: str
    duration_s: float
    error: str | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)
    refused: bool = False  # the gate refused (or failed) while the kernel started: no cell ran
    interrupted: bool = False  # SIGINT/SIGTERM while the kernel ran


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


def _kernel_manager_class(log: Path, admission: "Admission | None" = None, timeline: Timeline | None = None):
    """A kernel manager whose kernel dies with this process (jupyter_client starts kernels in a session
    of their own, so a kill of our process group would not reach them) and whose own output (start-up
    noise, the traceback of a kernel being shut down mid-cell) goes to `log`, not to the user's terminal.
    With an `admission`, no kernel is launched once the gate has refused, and one launched is killed
    the moment it refuses. Its client is ready as soon as the kernel answers (see _prompt_client_class), and
    a kernel it kills is seen gone within 10 ms, not jupyter_client's 100 ms polls (a kill ends every run)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    prompt_client = _prompt_client_class()

    class KernelDyingWithItsRun(AsyncKernelManager):
        @default("client_factory")
        def _prompt_client(self) -> type:
            return prompt_client

        async def _async_wait(self, pollinterval: float = 0.1) -> None:
            await super()._async_wait(pollinterval=min(pollinterval, 0.01))

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["preexec_fn"] = dying_with_this_process()
            if admission is not None:
                admission.before_launch()
            if timeline is not None:  # papermill's import and preparation, then the launch (ends when it answers)
                timeline.add("kernel_prepare", timeline.phases.get("kernel_prepare", [timeline.now()])[0])
                timeline.add("kernel_start", timeline.now())
            with open(log, "ab") as handle:
                kw["stdout"] = kw["stderr"] = handle
                launched = await super()._async_launch_kernel(kernel_cmd, **kw)
            if admission is not None:
                admission.launched(self.provisioner.pid)
            return launched

    return KernelDyingWithItsRun


def _prompt_client_class() -> type:
    """jupyter_client's client, ready when the kernel first answers: its `wait_for_ready` then drains IOPub
    until it has been silent for 0.2 s, a pause on every run's critical path that nbclient does not need (it
    reads only the replies and outputs whose parent is a request of its own). The rest is jupyter_client's:
    ask kernel_info until the shell channel answers and IOPub is seen connected, fail if the kernel dies or
    the timeout passes."""
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient

    class PromptKernelClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (math.inf if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    reply = None
                if reply is not None and reply["msg_type"] == "kernel_info_reply":
                    try:
                        await self.iopub_channel.get_msg(timeout=0.2)  # (IOPub connected: its status arrived)
                    except Empty:
                        pass
                    else:
                        self._handle_kernel_info_reply(reply)
                        return
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    return PromptKernelClient


class NotAdmitted(Exception):
    """The gate refused the run (or broke) while the kernel started: no cell may run."""


class Admission:
    """The gate's ruling (a future: True admits) that the kernel waits for before its first cell.

    The kernel starts while the gate still checks the inputs (the gate's SQL and hashing release the
    GIL, and start-up is the kernel's own process), but no cell runs before the ruling: the hook on the
    first cell awaits it. A refusal, or a gate that raised, skips a launch not yet made and kills a
    kernel already launched, so an INADMISSIBLE run never reaches its analysis."""

    def __init__(self, ruling: Future) -> None:
        self.ruling = ruling
        self.kernel_pid: int | None = None
        self._lock = threading.Lock()
        ruling.add_done_callback(self._ruled)

    @property
    def refused(self) -> bool:
        return self.ruling.done() and (self.ruling.exception() is not None or not self.ruling.result())

    def _ruled(self, _: Future) -> None:
        with self._lock:
            if self.refused and self.kernel_pid is not None:
                _kill(self.kernel_pid)

    def before_launch(self) -> None:
        with self._lock:
            if self.refused:
                raise NotAdmitted("the gate refused the run before its kernel was launched")

    def launched(self, pid: int) -> None:
        with self._lock:
            self.kernel_pid = pid
            if self.refused:
                _kill(pid)

    async def before_first_cell(self) -> None:
        try:
            admitted = await asyncio.wrap_future(self.ruling)
        except Exception as exc:
            raise NotAdmitted(f"the gate failed ({type(exc).__name__})") from None
        if not admitted:
            raise NotAdmitted("the gate refused the run")


class LaunchedKernel:
    """The run's kernel, launched before the gate's thread starts and before papermill is imported (~1 s
    that was on every run's critical path): it starts and imports the template's modules beside both.
    nbclient adopts it, started, through `manager_class`, and owns it from then on: it connects, runs the
    cells and shuts it down as one it launched itself.

    Launched from the calling thread, as nbclient would (see _run_async): a kernel dies with the thread that
    forked it (PR_SET_PDEATHSIG). Launched before any other thread imports papermill: a thread importing
    jupyter_client.manager while another imports papermill (which imports it too, by another path) can meet
    it half-initialised."""

    def __init__(self, project: Project, template: Path, folder: Path, *, seed: int, kernel_name: str = KERNEL,
                 pins: dict[str, dict[str, Any]] | None = None, environment: dict[str, str] | None = None,
                 admitted: Future | None = None, timeline: Timeline | None = None) -> None:
        if timeline is not None:
            timeline.add("kernel_prepare", timeline.now())
        self.admission = Admission(admitted) if admitted is not None else None
        self.kernel_name = kernel_name
        self.adopted = False
        self._manager: Any = None
        self._error: Exception | None = None
        environment = {**os.environ, **(environment or {}), PROJECT_ENV: str(project.root),
                       "PYTHONHASHSEED": str(seed), "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                       "MPLBACKEND": "module://matplotlib_inline.backend_inline", PINS_ENV: json.dumps(pins or {})}
        preload = _preload_argument(preloaded_modules(template, project.root)) if admitted is not None else []
        # its start-up warnings (e.g. "running over TCP without encryption" on a local loopback kernel) are not
        # the user's business; its history is kept in memory, as nbclient has it for the kernels it launches
        arguments = ["--IPKernelApp.log_level=ERROR", *preload, "--HistoryManager.hist_file=:memory:"]
        self.base_class = _kernel_manager_class(folder / KERNEL_LOG, self.admission, timeline)
        try:
            self._manager = self.base_class(kernel_name=kernel_name)
            _run_async(self._manager.start_kernel, cwd=str(project.root), env=environment, extra_arguments=arguments)
        except Exception as exc:  # (NotAdmitted, a kernel that cannot start): raised where nbclient adopts it
            self._error = exc
            self.release()  # (a kernel forked before the error)
        except BaseException:  # SIGINT/SIGTERM mid-launch: no kernel is left behind
            self.release()
            raise

    @property
    def pid(self) -> int | None:
        provisioner = getattr(self._manager, "provisioner", None)
        return provisioner.pid if provisioner is not None else None

    def manager_class(self) -> type:
        """A kernel manager class whose construction hands over the kernel manager launched here."""
        launched = self

        class AdoptedKernel(self.base_class):
            def __new__(cls, *args: Any, **kwargs: Any):
                if launched._error is not None:
                    raise launched._error
                if launched.adopted:  # (a restart): a kernel nbclient launched would lack the run's environment
                    raise RuntimeError("the run's kernel was already adopted; it is not restarted")
                launched.adopted = True
                return launched._manager  # (not an AdoptedKernel: its __init__ is not run again)

        return AdoptedKernel

    def release(self) -> None:
        """Stop a kernel nbclient never adopted (papermill failed before it needed one, or the launch did)."""
        if self._manager is not None and not self.adopted and self._manager.has_kernel:
            try:
                _run_async(self._manager.shutdown_kernel, now=True)
            except Exception:
                if self.pid:
                    _kill(self.pid)


def _run_async(coroutine_function: Callable[..., Any], **kwargs: Any) -> Any:
    """As nbclient runs the kernel manager's coroutines (jupyter_core's run_sync): on this thread's event
    loop, or, when one is already running here (e.g. under Playwright's sync API), on jupyter_core's task
    runner thread for this thread, which lives as long as the process (so a kernel forked there lives on)."""
    from jupyter_core.utils import run_sync

    return run_sync(coroutine_function)(**kwargs)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def preloaded_modules(template: Path, project_root: Path) -> list[str]:
    """The modules a template imports at the top level of its code cells, to import while the kernel
    starts (kernel start-up overlaps the gate; importing runs no template code and reads no data).
    Only modules the environment provides: the project's own (found under its folder, beside the data)
    are left to the template's cells, which run after the gate; `impactbook` itself is the framework."""
    import ast
    import importlib.util

    names: list[str] = []
    for cell in nbformat.read(template, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics: that cell's imports stay where they are
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    root = project_root.resolve()
    kept = []
    for name in dict.fromkeys(names):
        top = name.split(".")[0]
        if top != "impactbook" and ((root / f"{top}.py").exists() or (root / top).is_dir()):
            continue  # the kernel runs in the project folder, where this name is the project's own module
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        if origin is not None and (top == "impactbook" or not origin.is_relative_to(root)):
            kept.append(name)
    return kept


def _preload_argument(modules: list[str]) -> list[str]:
    """ipykernel runs `exec_lines` before it answers its first request: the imports happen during
    start-up, silently (a module that fails to import fails again, loudly, in the template's cell)."""
    if not modules:
        return []
    code = (f"for __impactbook_module in {tuple(modules)!r}:\n    try:\n        __import__(__impactbook_module)\n"
            "    except Exception:\n        pass\ndel __impactbook_module")
    return [f"--IPKernelApp.exec_lines={code}"]


def execute_template(project: Project, template: Path, output: Path, parameters: dict[str, Any], *,
                     kernel: LaunchedKernel, timeout_s: int | None = None,
                     on_cell: Callable[[int, int, float], None] | None = None,
                     timeline: Timeline | None = None) -> Execution:
    """Run the notebook in `kernel` (launched for this run: fresh, the project as cwd, hash randomisation
    fixed, the run's environment). With an admission (the gate's ruling, still pending when it launched), the
    kernel imports the template's modules meanwhile and its first cell waits for the ruling (see Admission)."""
    admission = kernel.admission
    started, clock = utc_now(), time.perf_counter()
    error, interrupted = None, False
    import papermill
    from papermill.exceptions import PapermillExecutionError

    logging.getLogger("papermill").setLevel(logging.CRITICAL)  # its errors become the run's, stated once
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    _route_saves_through_handler(output.parent)
    total = sum(1 for cell in nbformat.read(template, as_version=4).cells if cell.cell_type == "code") + 1
    started_cells: list[int] = []
    first = [True]

    async def cell_started(cell, cell_index, **_):  # nbclient's hook (awaited); the +1 is papermill's parameters
        if first[0]:
            first[0] = False
            if timeline is not None and "kernel_start" in timeline.phases:
                timeline.add("kernel_start", timeline.phases["kernel_start"][0])
            if admission is not None:
                ready = timeline.now() if timeline is not None else 0.0
                await admission.before_first_cell()
                if timeline is not None:
                    timeline.add("gate_wait", ready)
        if cell.cell_type == "code" and on_cell is not None:
            started_cells.append(cell_index)
            on_cell(len(started_cells), total, time.perf_counter() - clock)
    try:
        papermill.execute_notebook(str(template), str(output), parameters=parameters, kernel_name=kernel.kernel_name,
                                   kernel_manager_class=kernel.manager_class(),
                                   on_cell_start=cell_started,
                                   cwd=str(project.root), progress_bar=False, log_output=False,
                                   execution_timeout=timeout_s, report_mode=False,
                                   # once the last cell has answered, the kernel holds nothing of the run's:
                                   # stop it at once rather than wait for its interpreter's teardown
                                   shutdown_kernel="immediate")
    except NotebookSaveFailed as exc:
        raise exc.error from None
    except PapermillExecutionError as exc:
        error = f"cell {exc.exec_count or exc.cell_index}: {exc.ename}: {exc.evalue}"
    except KeyboardInterrupt as exc:  # (its text: the signal that sigterm_as_interrupt turned into it)
        error, interrupted = f"interrupted ({str(exc) or 'SIGINT'}) while the kernel was running", True
    except Exception as exc:  # kernel death, timeout, bad notebook: all end as a FAILED run, never lost
        error = f"{type(exc).__name__}: {exc}".strip()
    finally:
        kernel.release()
    refused = error is not None and not interrupted and admission is not None and admission.refused
    cells = [] if refused else cell_timings(output)
    if timeline is not None:
        _cells_phase(timeline, cells)
    return Execution(ok=error is None, started_at=started, finished_at=utc_now(),
                     duration_s=round(time.perf_counter() - clock, 3), error=error, cells=cells, refused=refused,
                     interrupted=interrupted)


def _cells_phase(timeline: Timeline, cells: list[dict[str, Any]]) -> None:
    """The cells as papermill timed them (UTC in cell metadata), then the kernel's shutdown, on the run's clock."""
    import datetime as dt

    def seconds(text: str) -> float:
        moment = parse_time(text)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)  # papermill writes naive UTC
        return moment.timestamp() - timeline.origin

    timed = [c for c in cells if c.get("start") and c.get("end")]
    if timed:
        start, end = seconds(timed[0]["start"]), seconds(timed[-1]["end"])
        timeline.add("cells", start, end)
        timeline.add("kernel_stop", end)
