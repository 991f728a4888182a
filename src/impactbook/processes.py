"""Child processes (the input checker, the kernel) die with the process that runs them, so a killed run
leaves no orphan behind: Linux's parent-death signal, set in the child before it runs anything."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

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
