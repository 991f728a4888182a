"""The template's parameters turned into a design and frames: the frozen plan's `design:` when injected, a
plan or design YAML file when run by hand; and the shipped example's frames from its deterministic generator
(catalog inputs come through impactbook.notebook.load_input, pins checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ...designspecs.pipeline_validation import PipelineValidationDesign
from ...errors import PlanError
from ...yamlio import load_yaml


def design_parameter(plan: str | dict[str, Any]) -> PipelineValidationDesign:
    """The design of a plan (dict injected by `impactbook run`, or a YAML path holding a plan or a design)."""
    data = plan if isinstance(plan, dict) else load_yaml(Path(plan), PlanError, str(plan))
    data = data.get("design", data)
    return PipelineValidationDesign.model_validate(dict(data))


def example_frames(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shipped example's evaluation month and its drift reference (the month before, with prices and
    popularity drifted), both from the deterministic generator."""
    from ...examples import ranking_pipeline as example

    return example.generate(seed=seed), example.generate(seed=seed + 2, drift=0.3)
