"""Child processes (the input checker, the kernel, the site's helpers) die with the process that runs them,
so a killed command leaves no orphan behind: Linux's parent-death signal, set in the child before it runs
anything."""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

PR_SET_PDEATHSIG = 1


def dying_with_this_process() -> Callable[[], None]:
    """A Popen preexec_fn that has the child SIGKILLed when this process dies. The C library is found here, in
    the parent (a lookup in the forked child would run ldconfig there), and the death signal follows the thread
    that forked, so children are started from the main thread."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()  # (the symbols this process already has)

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
    return arm


def usable_cores() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Helper:
    """`python -P -m MODULE ARGS...` on the second core, answering lines of JSON with lines of JSON: work a
    command hands off so that it runs beside its own. Only where there is a second core; it runs with -P (no
    module in the current folder shadows one of its imports), in its own process group (a Ctrl-C to the command
    is the command's to handle: it would kill the helper mid-work) and dies with this process. A helper that dies,
    misses its deadline or answers nonsense is killed and answers None from then on: the caller does the work
    itself, so a helper can only make a command faster (or its own process leaner), never change what it does."""

    def __init__(self, module: str, *args: str) -> None:
        self._process: subprocess.Popen | None = None
        if usable_cores() > 1:
            try:
                self._process = subprocess.Popen([sys.executable, "-P", "-m", module, *args], stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, process_group=0,
                                                 preexec_fn=dying_with_this_process())
            except (OSError, subprocess.SubprocessError):  # no process to spare, or the child could not be set up
                self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def send(self, value: Any, deadline: float) -> bool:
        """`value` written as one line before `deadline` (time.monotonic; the helper may still be importing)?"""
        if self._process is None:
            return False
        if _write_all(self._process.stdin, (json.dumps(value) + "\n").encode(), deadline):
            return True
        self.close()
        return False

    def receive(self, deadline: float) -> Any:
        """Its next line, parsed; None (and the helper killed) when there is none by `deadline` or it is not JSON."""
        if self._process is None:
            return None
        try:
            return json.loads(_read_line(self._process.stdout, deadline))
        except ValueError:  # none in time (b""), or not JSON
            self.close()
            return None

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()  # it holds nothing: its only output is what it answered
            process.wait()
            for pipe in (process.stdin, process.stdout):
                try:
                    pipe.close()
                except OSError:  # (a broken pipe to a killed helper)
                    pass

    def __enter__(self) -> "Helper":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _write_all(pipe: Any, data: bytes, deadline: float) -> bool:
    """Everything written before `deadline` (a helper reads once its imports are done)?"""
    fd = pipe.fileno()
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        if not _ready(fd, select.POLLOUT, deadline):
            return False
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue
        except OSError:  # (it died: a broken pipe)
            return False
    return True


def _read_line(pipe: Any, deadline: float) -> bytes:
    """One line, or b"" at end of file or past `deadline`."""
    fd, chunks = pipe.fileno(), []
    while True:
        if not _ready(fd, select.POLLIN, deadline):
            return b""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


def _ready(fd: int, event: int, deadline: float) -> bool:
    """Is `fd` readable or writable (or closed at the other end) before `deadline`? poll, not select: a
    process with 1,024 files open gets descriptors select cannot watch."""
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """CI cancels with SIGTERM; turn it into KeyboardInterrupt so a run is still published as FAILED (and a
    batch stops its runs that way)."""
    def handler(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


PARENT_ENV = "IMPACTBOOK_DIE_WITH_PARENT"


def die_with_parent_if_asked() -> None:
    """A run started by a batch (backends/executors.py) is told its parent's pid through PARENT_ENV and arms
    SIGTERM as its own parent-death signal: when the batch or the Dask worker that started it is killed, the
    run stops and is stored FAILED (interrupted) instead of running on, unreported, beside a rerun. Armed by
    the child itself: the batch starts runs from threads, where a preexec_fn is unsafe."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if str(os.getppid()) != parent:  # the parent died before the signal was armed
        print("error: the batch that started this run has already stopped; not run", file=sys.stderr)
        raise SystemExit(1)
