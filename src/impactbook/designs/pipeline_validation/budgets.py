"""Stage 3: latency (p50/p95 after warm-up) and peak memory of each stage, measured on its real input."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...designspecs.pipeline_validation import Stage
from .stages import StageFunction


@dataclass(frozen=True)
class StageCost:
    stage: str
    per: str
    p50_ms: float
    p95_ms: float
    budget_ms: float | None
    peak_mb: float
    memory_budget_mb: float | None
    method: str = "wall clock (perf_counter), linear-interpolated percentiles; peak by tracemalloc"


def measure(stage: Stage, function: StageFunction, frame: pd.DataFrame) -> StageCost:
    """Time `repeats` calls after `warmup` unrecorded ones; per-row figures divide by the input rows. Peak
    memory comes from one separate traced call, so tracing never slows the timed ones."""
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
    tracemalloc.start()
    try:
        function(frame)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return StageCost(stage.name, budget.per if budget else "batch", p50, p95, budget.p95_ms if budget else None,
                     peak, stage.memory_mb)
