"""Where a run's time goes: each phase's start and end in seconds since the command's process started,
kept in the run record (timings.phases) so any stored run says it without a profiler."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator


def process_started() -> float:
    """The epoch second this process started (Linux: its start in clock ticks since boot, against the
    uptime, both to 10 ms), else now: the interpreter's start-up and imports then count in the first phase."""
    try:
        with open("/proc/self/stat") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


class Timeline:
    """Phases by name -> [start, end] seconds since `origin` (the process start). Phases run on several
    threads (the gate beside the kernel), so they may overlap: that overlap is what the record shows."""

    def __init__(self, origin: float | None = None) -> None:
        self.origin = process_started() if origin is None else origin
        self.phases: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() - self.origin

    def add(self, name: str, start: float, end: float | None = None) -> None:
        with self._lock:
            self.phases[name] = [round(start, 3), round(self.now() if end is None else end, 3)]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = self.now()
        try:
            yield
        finally:
            self.add(name, start)

    def record(self) -> dict[str, list[float]]:
        with self._lock:
            return dict(sorted(self.phases.items(), key=lambda item: item[1]))
