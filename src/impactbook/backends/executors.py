"""Where many runs execute: a local process pool (default) or a Dask distributed cluster.

Every run is the same `impactbook run PLAN --json` command in its own process (so its own fresh
kernel), whatever the executor: it publishes through the same lock-protected protocol as a run
started by hand, so results are identical to sequential runs and a failing run never stops the
others. A Dask worker must see the project folder at the same path (a shared file system).
The registry is passed in, never a global (STYLE §2): `executors().get("dask", scheduler=...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..processes import PARENT_ENV


@dataclass(frozen=True)
class RunJob:
    """One run to make: a plan path (as given) in a project folder."""

    number: int
    plan: str
    project: str
    timeout_s: int | None = None


@dataclass(frozen=True)
class JobResult:
    """How one run ended: the command's exit code (negative: killed by that signal; None: its process never
    ran here) and its `--json` summary, or the one-line error."""

    job: RunJob
    exit_code: int | None
    summary: dict[str, Any] | None
    error: str | None
    seconds: float
    worker: str = field(default="")


def run_job(job: RunJob, started: Callable[[subprocess.Popen], None] = lambda process: None) -> JobResult:
    """Run one plan as `impactbook run PLAN --json` in a child process and read its summary. The child dies
    with this process (processes.PARENT_ENV); `started` is told of it, so an interrupted batch can stop it."""
    command = [sys.executable, "-m", "impactbook", "run", job.plan, "--json", "--project", job.project]
    if job.timeout_s is not None:
        command += ["--timeout", str(job.timeout_s)]
    clock = time.perf_counter()
    process = subprocess.Popen(command, cwd=job.project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, PARENT_ENV: str(os.getpid())})
    started(process)
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - clock
    summary = None
    try:
        parsed = json.loads(stdout) if stdout.strip() else None
        summary = parsed if isinstance(parsed, dict) and "run_id" in parsed else None  # not an {"error": ...}
    except json.JSONDecodeError:
        pass
    error = None if summary is not None else failure(process.returncode, stderr)
    return JobResult(job, process.returncode, summary, error, seconds, worker=os.uname().nodename + f":{os.getpid()}")


def failure(exit_code: int, stderr: str) -> str:
    """Why a run reported no summary: its last `error:` line, or how its process ended when it said nothing
    (killed by a signal, out of memory)."""
    said = [line.removeprefix("error: ") for line in stderr.splitlines() if line.startswith("error:")]
    if said:
        return said[-1]
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return (f"its process was killed by {name} before it reported; the next impactbook command finishes a run "
                "it had begun (as FAILED, or with its result if it was already published)")
    return (stderr.strip().splitlines() or [f"exit code {exit_code}, no output"])[-1]


class Executor(Protocol):
    """Runs jobs, calling `on_done` with each result as it finishes (in completion order) and `note` with
    anything the user should know while they wait."""

    name: str

    def run(self, jobs: Iterable[RunJob], on_done: Callable[[JobResult], None],
            note: Callable[[str], None] = lambda message: None) -> list[JobResult]: ...


class _Children:
    """The batch's run processes, so that an interrupted batch stops them (each then stores its run FAILED,
    interrupted) instead of leaving them to run on unreported; one started after the interrupt stops at once."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []
        self.stopping = False
        self.lock = threading.Lock()

    def started(self, process: subprocess.Popen) -> None:
        with self.lock:
            self.processes.append(process)
            if self.stopping:
                process.terminate()

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            for process in self.processes:
                if process.poll() is None:
                    process.terminate()


@dataclass
class LocalExecutor:
    """A pool of `workers` concurrent run processes on this machine (default: one per core)."""

    workers: int | None = None
    name: str = "local"

    def run(self, jobs: Iterable[RunJob], on_done: Callable[[JobResult], None],
            note: Callable[[str], None] = lambda message: None) -> list[JobResult]:
        results, children = [], _Children()
        with ThreadPoolExecutor(max_workers=self.workers or os.cpu_count() or 1) as pool:
            futures = {pool.submit(run_job, job, children.started): job for job in jobs}
            try:
                for future in as_completed(futures):
                    results.append(future.result())
                    on_done(results[-1])
            except BaseException as exc:  # Ctrl-C, SIGTERM: no new run starts, and the running ones store FAILED
                pool.shutdown(wait=False, cancel_futures=True)
                children.stop()
                note("interrupted: stopping the runs in progress (each is stored FAILED, interrupted)")
                reported = {result.job.number for result in results}
                for future, job in futures.items():  # the stopped runs report too (they end within seconds)
                    if job.number not in reported:
                        results.append(future.result() if not future.cancelled() else _not_started(job))
                raise BatchInterrupted(str(exc) or "SIGINT", _in_order(results)) from exc
        return _in_order(results)


def run_once(job: RunJob, marker: str) -> JobResult:
    """A Dask task: run the job unless an earlier attempt began it or its batch is gone. When a worker dies
    mid-run, Dask runs its tasks again elsewhere; the run the dead worker started has stopped with it (stored
    FAILED), and a second run of the plan would be one the batch never reports. A scheduler-side Event marks the
    first attempt. A Dask task cannot be interrupted, so the run process is stopped by hand once the batch no
    longer wants it (`_Wanted`)."""
    from distributed import Event

    wanted = _Wanted()
    begun = Event(marker)
    if begun.is_set():
        return JobResult(job, None, None, "the Dask worker running it died; a run it had begun stopped with it "
                                          "(stored FAILED), and it was not started again: a plan runs at most once "
                                          "per batch entry", 0.0)
    if not wanted():
        return JobResult(job, None, None, "its batch stopped before it began; not started", 0.0)
    begun.set()
    return run_job(job, wanted.stop_when_unwanted)


class _Wanted:
    """Whether the batch still wants this Dask task: the scheduler releases a batch's tasks when the batch is
    interrupted or its client dies (even by SIGKILL, its connection closes), and the worker marks a running one
    cancelled. Its run process is then sent SIGTERM, so it stores its run FAILED, interrupted, instead of
    publishing a run no one will report."""

    POLL_S = 0.5

    def __init__(self) -> None:
        from distributed import get_worker

        self.worker = get_worker()
        self.key = self.worker.get_current_task()

    def __call__(self) -> bool:
        task = self.worker.state.tasks.get(self.key)
        return task is not None and task.state == "executing"

    def stop_when_unwanted(self, process: subprocess.Popen) -> None:
        def watch() -> None:
            while process.poll() is None:
                if not self():
                    process.terminate()
                    return
                time.sleep(self.POLL_S)

        threading.Thread(target=watch, name=f"impactbook-watch-{self.key}", daemon=True).start()


@dataclass
class DaskExecutor:
    """Jobs submitted to a Dask distributed scheduler at `scheduler` (e.g. tcp://10.0.0.5:8786)."""

    scheduler: str
    name: str = "dask"

    def run(self, jobs: Iterable[RunJob], on_done: Callable[[JobResult], None],
            note: Callable[[str], None] = lambda message: None) -> list[JobResult]:
        try:
            from distributed import Client, Event, as_completed as completed
        except ImportError:  # pragma: no cover - depends on the installation
            raise ExecutorError("the dask executor needs Dask distributed: pip install 'impactbook[dask]'") from None
        for name in ("distributed", "distributed.client"):  # its reconnect tracebacks: each lost run says it
            logging.getLogger(name).setLevel(logging.CRITICAL)
        scheme = self.scheduler.partition("://")[0] if "://" in self.scheduler else "tcp"
        if scheme != "tcp":  # tls:// needs certificates, ucx:// and inproc:// other set-ups: none configured here
            raise ExecutorError(f"--scheduler {self.scheduler}: impactbook connects to Dask schedulers over tcp:// "
                                "(tcp://host:8786 or host:8786)")
        try:
            client = Client(self.scheduler, timeout="20s")
        except Exception as exc:  # (distributed raises OSError, TimeoutError, ValueError, TypeError, ...)
            said = str(exc) or type(exc).__name__
            raise ExecutorError(f"cannot reach the Dask scheduler at {self.scheduler}: {said}") from None
        results, jobs, futures = [], list(jobs), {}
        keys = {job.number: f"impactbook-run-{job.number}-{time.time_ns()}" for job in jobs}
        try:
            futures = {client.submit(run_once, job, f"{keys[job.number]}-begun", pure=False, key=keys[job.number]):
                       job for job in jobs}
            if not client.scheduler_info().get("workers"):
                note(f"the Dask scheduler at {self.scheduler} has no worker yet: the runs wait until one joins")
            for future in completed(futures):
                results.append(self._result(future, futures[future]))
                on_done(results[-1])
        except BaseException as exc:  # Ctrl-C, SIGTERM: released tasks never start, running ones stop (`_Wanted`)
            with contextlib.suppress(Exception):
                client.cancel(list(futures))
            note("interrupted: stopping the runs in progress on the Dask workers (each is stored FAILED, "
                 "interrupted)")
            reported = {result.job.number for result in results}
            results += [JobResult(job, None, None, "stopped with its batch: a run it had begun on a Dask worker is "
                                                   "stored FAILED (interrupted); see `impactbook runs list`", 0.0)
                        for job in jobs if job.number not in reported]
            raise BatchInterrupted(str(exc) or "SIGINT", _in_order(results)) from exc
        finally:
            with contextlib.suppress(Exception):
                for key in keys.values():
                    Event(f"{key}-begun", client=client).clear()
            with contextlib.suppress(Exception):
                client.close()
        return _in_order(results)

    def _result(self, future: Any, job: RunJob) -> JobResult:
        """The task's result, or why Dask lost it (scheduler gone, a run that killed its workers): the batch
        reports that run and goes on with the others."""
        try:
            return future.result()
        except (Exception, asyncio.CancelledError) as exc:
            said = " ".join(str(exc).split())
            return JobResult(job, None, None, f"Dask lost this run ({type(exc).__name__}: {said}); if its process "
                                              "had started it may still finish: see `impactbook runs list`", 0.0)


class BatchInterrupted(KeyboardInterrupt):
    """A batch stopped by Ctrl-C or SIGTERM, with what each of its runs came to (finished, stopped and stored
    FAILED, or never started), so the batch still reports every run."""

    def __init__(self, signal_name: str, results: list[JobResult]) -> None:
        super().__init__(signal_name)
        self.results = results


def _in_order(results: list[JobResult]) -> list[JobResult]:
    return sorted(results, key=lambda result: result.job.number)


def _not_started(job: RunJob) -> JobResult:
    return JobResult(job, None, None, "its batch stopped before it began; not started", 0.0)


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
    def local(workers=None, scheduler=None) -> Executor:
        if scheduler:
            raise ExecutorError("--scheduler is for --executor dask; the local executor runs on this machine")
        return LocalExecutor(workers)

    def dask(workers=None, scheduler=None) -> Executor:
        if workers:
            raise ExecutorError("--workers is for --executor local; a Dask cluster runs as many runs at once as "
                                "its workers have threads")
        if not scheduler:
            raise ExecutorError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
        return DaskExecutor(scheduler)

    registry.register("local", local)
    registry.register("dask", dask)
    return registry
