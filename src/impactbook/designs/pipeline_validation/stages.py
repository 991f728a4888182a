"""Stage 2: resolve each stage's entry point, run the stages in order, and check the contract at every
output boundary, so a failure is reported at the stage where it first appears, with rows and examples."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ...designspecs.pipeline_validation import Contract, Stage
from .notebook_stage import NotebookStage, project_root

StageFunction = Callable[[pd.DataFrame], pd.DataFrame]
EXAMPLES = 3


def load_entry_point(entry_point: str) -> StageFunction:
    """`package.module:function` -> the function (a plan names code, never a path)."""
    module, _, name = entry_point.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"entry point {entry_point!r} cannot be loaded: {exc}") from exc


def load_stage(code: str, root: Path | None = None) -> StageFunction:
    """A stage version: a notebook path (ending in .ipynb, relative to the project) or an entry point."""
    if code.endswith(".ipynb"):
        return NotebookStage(code, root or project_root())
    return load_entry_point(code)


def identity(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


@dataclass(frozen=True)
class Violation:
    stage: str
    rule: str
    column: str | None
    rows: int
    examples: list


@dataclass(frozen=True)
class PipelineRun:
    output: pd.DataFrame | None
    outputs: dict[str, pd.DataFrame] = field(repr=False)
    violations: dict[str, list[Violation]]
    failed_stage: str | None = None
    error: str | None = None

    @property
    def first_failure(self) -> str | None:
        """The first stage whose boundary broke its contract (or which raised)."""
        for stage, found in self.violations.items():
            if found or stage == self.failed_stage:
                return stage
        return self.failed_stage


def _type_ok(series: pd.Series, kind: str) -> bool:
    checks = {"number": pd.api.types.is_numeric_dtype, "integer": pd.api.types.is_integer_dtype,
              "string": lambda s: pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s),
              "boolean": pd.api.types.is_bool_dtype}
    return bool(checks[kind](series)) and not (kind == "number" and pd.api.types.is_bool_dtype(series))


def check_boundary(stage: str, contract: Contract, before: pd.DataFrame, after: pd.DataFrame) -> list[Violation]:
    """Every way `after` breaks `contract`: missing columns, wrong types, out-of-range values, null rates
    above the ceiling, and an output/input row ratio outside its bounds."""
    found = []
    for column, rule in contract.columns.items():
        if column not in after:
            found.append(Violation(stage, "missing column", column, len(after), []))
            continue
        series = after[column]
        if rule.type and not _type_ok(series, rule.type):
            odd = series[series.map(lambda v: not isinstance(v, (int, float, np.number)))] if rule.type in ("number", "integer") else series
            found.append(Violation(stage, f"type is {series.dtype}, expected {rule.type}", column, len(odd),
                                   odd.head(EXAMPLES).tolist()))
            continue
        values = series.to_numpy()
        nulls = np.isnan(values) if values.dtype.kind == "f" else pd.isna(values)
        null_count = int(nulls.sum())
        if null_count > rule.max_null_rate * len(values):
            found.append(Violation(stage, f"null rate {null_count / len(values):.4f} > {rule.max_null_rate}", column,
                                   null_count, after.index[nulls][:EXAMPLES].tolist()))
        if (rule.min is not None or rule.max is not None) and values.dtype.kind not in "fiub":
            found.append(Violation(stage, f"type is {series.dtype}: a range needs numbers", column, len(values),
                                   values[:EXAMPLES].tolist()))
        elif rule.min is not None or rule.max is not None:
            with np.errstate(invalid="ignore"):  # NaN compares False: nulls are the null rate's business
                outside = np.zeros(len(values), bool)
                if rule.min is not None:
                    outside |= values < rule.min
                if rule.max is not None:
                    outside |= values > rule.max
            if outside.any():
                found.append(Violation(stage, f"outside [{rule.min}, {rule.max}]", column, int(outside.sum()),
                                       values[outside][:EXAMPLES].tolist()))
    if contract.row_ratio is not None and len(before):
        ratio = len(after) / len(before)
        if not contract.row_ratio[0] <= ratio <= contract.row_ratio[1]:
            found.append(Violation(stage, f"row ratio {ratio:.4f} outside {list(contract.row_ratio)}", None, len(after), []))
    return found


def run_pipeline(stages: list[Stage], functions: dict[str, StageFunction], frame: pd.DataFrame,
                 check: bool = True) -> PipelineRun:
    """Run the stages in order on `frame` (each takes the previous output); a stage that raises ends the
    run there, recorded as its failure rather than crashing the assessment."""
    outputs, violations = {}, {}
    current = frame
    for stage in stages:
        try:
            result = functions[stage.name](current)
        except Exception as exc:  # a perturbation may break a stage: that is a finding, not a crash
            violations[stage.name] = []
            return PipelineRun(None, outputs, violations, stage.name, f"{type(exc).__name__}: {exc}")
        violations[stage.name] = check_boundary(stage.name, stage.contract, current, result) if check else []
        outputs[stage.name] = current = result
    return PipelineRun(current, outputs, violations)
