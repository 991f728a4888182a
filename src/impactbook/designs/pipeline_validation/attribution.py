"""Stage 5: which changed stage explains how much of a downstream change — swap the changed stages from
baseline to candidate one at a time, in pipeline order, and credit each with the step it causes (a
sequential decomposition; its shares depend on the order, which is the plan's stage order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd


@dataclass(frozen=True)
class Attribution:
    stage: str
    metric: str
    before: float
    after: float
    contribution: float
    method: str = "sequential one-stage swap, in pipeline order"


def sequential_swap(changed: list[str], score: Callable[[set[str]], dict[str, float]]) -> list[Attribution]:
    """`score(swapped)` gives the metric means with the stages in `swapped` at their candidate version."""
    found, swapped = [], set()
    previous = score(swapped)
    for stage in changed:
        swapped = swapped | {stage}
        current = score(swapped)
        found += [Attribution(stage, m, previous[m], current[m], current[m] - previous[m]) for m in current]
        previous = current
    return found


def as_frame(attributions: list[Attribution]) -> pd.DataFrame:
    return pd.DataFrame([a.__dict__ for a in attributions])
