"""Stage 3: latency (p50/p95 after warm-up) and peak memory of each stage, measured on its real input.

Peak memory is measured two ways, because neither sees everything: tracemalloc sees every allocation made
through Python's allocator and NumPy's data buffers (NumPy reports them to it), but not Arrow's memory pool,
anonymous mmaps or other C libraries' own mallocs; the process's resident high-water mark sees all of
those but not memory the process already held and reused. The budget checks the larger of the two.
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ...designspecs.pipeline_validation import Stage
from .notebook_stage import NotebookStage
from .stages import StageFunction

MiB = 2**20
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class PeakMemory:
    """The peak of one call: `traced_mb` by tracemalloc, `resident_mb` as the rise of the process's resident
    set high-water mark over the call (None where the platform cannot tell); `method` says how it was read."""

    traced_mb: float
    resident_mb: float | None
    method: str

    @property
    def peak_mb(self) -> float:
        """What a memory budget checks: the larger of the two."""
        return max(self.traced_mb, self.resident_mb or 0.0)


@dataclass(frozen=True)
class StageCost:
    stage: str
    per: str
    p50_ms: float
    p95_ms: float
    budget_ms: float | None
    peak_mb: float
    memory_budget_mb: float | None
    traced_mb: float | None = None
    resident_mb: float | None = None
    method: str = ("wall clock (perf_counter), linear-interpolated percentiles; peak memory: the larger of the "
                   "tracemalloc peak and the rise of the resident high-water mark (VmHWM), separate calls")
    memory_method: str = ""


def _status_kib(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_high_water_mark() -> bool:
    """Linux >= 4.0 resets VmHWM to the current RSS on `5` written to clear_refs (proc(5))."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def resident_peak(call: Callable[[], object], interval_s: float = 0.001) -> tuple[float | None, str]:
    """The rise of the resident set during `call`, in MiB: exactly, from VmHWM after resetting it; else by
    sampling VmRSS every `interval_s` in a thread (a spike shorter than the interval can be missed)."""
    if not STATUS.exists():
        call()
        return None, "no /proc: resident memory not measured"
    if _reset_high_water_mark():
        before = _status_kib("VmRSS")
        call()
        return max(0, _status_kib("VmHWM") - before) / 1024, "resident high-water mark (VmHWM, reset before the call)"
    before, highest, done = _status_kib("VmRSS"), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            highest[0] = max(highest[0], _status_kib("VmRSS"))
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    return max(0, max(highest[0], _status_kib("VmRSS")) - before) / 1024, f"resident set sampled every {interval_s * 1000:g} ms"


def peak_memory(call: Callable[[], object]) -> PeakMemory:
    """One traced call and one untraced call (tracemalloc's own bookkeeping would inflate the resident set)."""
    tracemalloc.start()
    try:
        call()
        traced = tracemalloc.get_traced_memory()[1] / MiB
    finally:
        tracemalloc.stop()
    resident, how = resident_peak(call)
    return PeakMemory(traced, resident, f"tracemalloc peak; {how}")


def measure(stage: Stage, function: StageFunction, frame: pd.DataFrame) -> StageCost:
    """Time `repeats` calls after `warmup` unrecorded ones; per-row figures divide by the input rows. Peak
    memory comes from separate calls, so measuring it never slows the timed ones."""
    budget = stage.latency
    repeats, warmup = (budget.repeats, budget.warmup) if budget else (5, 1)
    for _ in range(warmup):
        function(frame)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(frame)
        times.append((time.perf_counter() - start) * 1000)
    scale = 1 / max(len(frame), 1) if budget and budget.per == "row" else 1.0
    p50, p95 = (float(v) * scale for v in np.percentile(times, [50, 95]))
    memory = peak_memory(lambda: function(frame))
    method = StageCost.method
    if isinstance(function, NotebookStage):  # the stage ran in its kernel: that process's rise is the stage's
        memory = PeakMemory(memory.traced_mb, function.last_peak_mb,
                            "tracemalloc peak of the harness side (Parquet round trip); the kernel's resident "
                            "high-water rise over the notebook's cells (kernel start-up excluded)")
        method += "; notebook stage: a fresh kernel per call, kernel start-up included in the latency"
    return StageCost(stage.name, budget.per if budget else "batch", p50, p95, budget.p95_ms if budget else None,
                     memory.peak_mb, stage.memory_mb, memory.traced_mb, memory.resident_mb, method, memory.method)
