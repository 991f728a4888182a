"""Where many runs execute: a local process pool (default) or a Dask distributed cluster.

Every run is the same `impactbook run PLAN --json` command in its own process (so its own fresh
kernel), whatever the executor: it publishes through the same lock-protected protocol as a run
started by hand, so results are identical to sequential runs and a failing run never stops the
others. A Dask worker must see the project folder at the same path (a shared file system).
The registry is passed in, never a global (STYLE §2): `executors().get("dask", scheduler=...)`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RunJob:
    """One run to make: a plan path (as given) in a project folder."""

    number: int
    plan: str
    project: str
    timeout_s: int | None = None


@dataclass(frozen=True)
class JobResult:
    """How one run ended: the command's exit code and its `--json` summary, or the one-line error."""

    job: RunJob
    exit_code: int
    summary: dict[str, Any] | None
    error: str | None
    seconds: float
    worker: str = field(default="")


def run_job(job: RunJob) -> JobResult:
    """Run one plan as `impactbook run PLAN --json` in a child process and read its summary."""
    command = [sys.executable, "-m", "impactbook", "run", job.plan, "--json", "--project", job.project]
    if job.timeout_s is not None:
        command += ["--timeout", str(job.timeout_s)]
    clock = time.perf_counter()
    done = subprocess.run(command, cwd=job.project, capture_output=True, text=True)
    seconds = time.perf_counter() - clock
    summary = None
    try:
        parsed = json.loads(done.stdout) if done.stdout.strip() else None
        summary = parsed if isinstance(parsed, dict) else None
    except json.JSONDecodeError:
        pass
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    error = lines[-1].removeprefix("error: ") if summary is None else None
    if summary is None and error is None:
        error = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}, no output"])[-1]
    return JobResult(job, done.returncode, summary, error, seconds, worker=os.uname().nodename + f":{os.getpid()}")


class Executor(Protocol):
    """Runs jobs, calling `on_done` with each result as it finishes (in completion order)."""

    name: str

    def run(self, jobs: Iterable[RunJob], on_done: Callable[[JobResult], None]) -> list[JobResult]: ...


@dataclass
class LocalExecutor:
    """A pool of `workers` concurrent run processes on this machine (default: one per core)."""

    workers: int | None = None
    name: str = "local"

    def run(self, jobs: Iterable[RunJob], on_done: Callable[[JobResult], None]) -> list[JobResult]:
        results = []
        with ThreadPoolExecutor(max_workers=self.workers or os.cpu_count() or 1) as pool:
            for future in as_completed([pool.submit(run_job, job) for job in jobs]):
                results.append(future.result())
                on_done(results[-1])
        return sorted(results, key=lambda result: result.job.number)


@dataclass
class DaskExecutor:
    """Jobs submitted to a Dask distributed scheduler at `scheduler` (e.g. tcp://10.0.0.5:8786)."""

    scheduler: str
    name: str = "dask"

    def run(self, jobs: Iterable[RunJob], on_done: Callable[[JobResult], None]) -> list[JobResult]:
        try:
            from distributed import Client, as_completed as completed
        except ImportError:  # pragma: no cover - depends on the installation
            raise ExecutorError("the dask executor needs Dask distributed: pip install 'impactbook[dask]'") from None
        try:
            client = Client(self.scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from None
        results = []
        try:
            futures = [client.submit(run_job, job, pure=False, key=f"impactbook-run-{job.number}-{time.time_ns()}")
                       for job in jobs]
            for future in completed(futures):
                results.append(future.result())
                on_done(results[-1])
        finally:
            client.close()
        return sorted(results, key=lambda result: result.job.number)


class ExecutorError(RuntimeError):
    """An executor cannot start (its library is missing, its scheduler unreachable)."""


@dataclass
class Executors:
    """The registry of executors by name; `get(name, **options)` builds one."""

    factories: dict[str, Callable[..., Executor]] = field(default_factory=dict)

    def register(self, name: str, factory: Callable[..., Executor]) -> None:
        self.factories[name] = factory

    def get(self, name: str, **options: Any) -> Executor:
        if name not in self.factories:
            raise ExecutorError(f"unknown executor {name!r} (choose from {', '.join(self.factories)})")
        return self.factories[name](**options)


def executors() -> Executors:
    """The executors impactbook ships: `local` (workers=N) and `dask` (scheduler=ADDRESS)."""
    registry = Executors()
    registry.register("local", lambda workers=None, scheduler=None: LocalExecutor(workers))

    def dask(workers=None, scheduler=None) -> Executor:
        if not scheduler:
            raise ExecutorError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
        return DaskExecutor(scheduler)

    registry.register("dask", dask)
    return registry
