"""Child processes (the input checker, the kernel, the site's helpers) die with the process that runs them,
so a killed command leaves no orphan behind: Linux's parent-death signal, set in the child before it runs
anything."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Call in the child (a Popen preexec_fn or a pool initializer): SIGKILL it when its parent dies.
    The death signal follows the thread that forked, so children are started from the main thread."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


class Helper:
    """`python -P -m MODULE ARGS...` on the second core, answering lines of JSON with lines of JSON: work a
    command hands off so that it runs beside its own. Only where there is a second core; it runs with -P (no
    module in the current folder shadows one of its imports) and dies with this process. A helper that dies,
    misses its deadline or answers nonsense is killed and answers None from then on: the caller does the work
    itself, so a helper can only make a command faster, never change what it does."""

    def __init__(self, module: str, *args: str) -> None:
        self._process: subprocess.Popen | None = None
        if (os.cpu_count() or 1) > 1:
            parent = os.getpid()
            try:
                self._process = subprocess.Popen([sys.executable, "-P", "-m", module, *args], stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                 preexec_fn=lambda: die_with_parent(parent))
            except OSError:  # no process to spare: the caller does the work
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
        if not select.select([], [fd], [], max(0.0, deadline - time.monotonic()))[1]:
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
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return b""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)
