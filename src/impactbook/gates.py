"""Stage 3 of a run: admissibility checks, all before a kernel starts.

A failed gate makes the run INADMISSIBLE (stored, never executed); a window that opens before
the freeze lets the run execute but turns every verdict DEVIATED.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import TemplateEntry
from .freezing import FrozenPlan
from .hashing import sha256_file
from .inputs import ResolvedInput, check_input


@dataclass(frozen=True)
class GateReport:
    inadmissible: list[str] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)
    data_window: dict[str, str | None] = field(default_factory=dict)

    @property
    def admissible(self) -> bool:
        return not self.inadmissible

    def record(self) -> dict[str, object]:
        return {"inadmissible": self.inadmissible, "deviations": self.deviations, "data_window": self.data_window}

    def with_inadmissible(self, reason: str) -> "GateReport":
        """A finding made after execution (e.g. sample ratio mismatch) that still voids the run."""
        return GateReport([*self.inadmissible, reason], self.deviations, self.data_window)


def template_parameter_names(path: Path) -> list[str]:
    """The names in the template's `parameters` cell, read with papermill's own inspector."""
    import papermill

    logging.getLogger("papermill").setLevel(logging.ERROR)
    return list(papermill.inspect_notebook(str(path)))


def parameter_problems(template_path: Path, injected: list[str]) -> list[str]:
    """Unknown or missing parameters are errors here (papermill itself only warns: nteract/papermill#818)."""
    declared = template_parameter_names(template_path)
    if not declared:
        return [f"{template_path.name}: has no cell tagged 'parameters'"]
    problems = []
    unknown = sorted(set(injected) - set(declared))
    missing = sorted(set(declared) - set(injected))
    if unknown:
        problems.append(f"parameters: the plan supplies {unknown}, which the template's parameters cell does not "
                        f"declare (it declares {declared})")
    if missing:
        problems.append(f"parameters: the template declares {missing}, which the plan does not supply "
                        "(add them under the plan's `parameters:` or `inputs:`)")
    return problems


def check_admissibility(frozen: FrozenPlan, template: TemplateEntry, template_path: Path,
                        input_checks: "InputChecks") -> GateReport:
    """Template pin and parameters here; input pins and contracts from `input_checks` (already running)."""
    window: dict[str, str | None] = {"start": None, "end": None}
    inadmissible = template_problems(frozen, template, template_path)
    for problems, span in input_checks.results():
        inadmissible += problems
        window = span or window
    return GateReport(inadmissible, window_deviations(frozen, window), window)


def template_problems(frozen: FrozenPlan, template: TemplateEntry, template_path: Path) -> list[str]:
    plan = frozen.plan
    if not template_path.is_file():
        return [f"templates.{plan.template}.path: template {template.path} does not exist"]
    problems = []
    actual = sha256_file(template_path)
    if template.sha256 and actual != template.sha256:
        problems.append(f"templates.{plan.template}.sha256: template {template.path} does not match its "
                        f"pin (pinned {template.sha256[:12]}…, file is {actual[:12]}…)")
    return problems + parameter_problems(template_path, list(plan.template_parameters()))


def window_deviations(frozen: FrozenPlan, window: dict[str, str | None]) -> list[str]:
    """Outcomes dated before the freeze could have been seen before preregistration."""
    plan = frozen.plan
    deviations = []
    start = dt.datetime.combine(plan.window.start, dt.time(), dt.timezone.utc)
    if start < frozen.frozen_time:
        deviations.append(f"window.start: the plan's outcome window starts {plan.window.start}, before the plan was "
                          f"frozen ({frozen.frozen_at}): outcomes may have been seen before preregistration")
    if window.get("start") and _utc(window["start"]) < frozen.frozen_time:
        deviations.append(f"data window: the outcome data starts {window['start']}, before the plan was frozen "
                          f"({frozen.frozen_at})")
    if window.get("start") and (_utc(window["start"]).date() < plan.window.start
                                or _utc(window["end"]).date() > plan.window.end):
        deviations.append(f"data window: the outcome data spans {window['start']} to {window['end']}, outside the "
                          f"plan's window {plan.window.start} to {plan.window.end}")
    return deviations


class InputChecks:
    """Input checks (hash, pandas + pandera contract) in a forked process, started as soon as the
    inputs are resolved, while this process records the draft and checks the template (papermill
    import, parameters): the second core shortens the time before the kernel may start. Runs inline
    when forking is unsafe (other threads alive) or unavailable."""

    def __init__(self, inputs: list[ResolvedInput], time_column: str) -> None:
        self.inputs, self.time_column = inputs, time_column
        self.pool = None
        self.futures = []

    def __enter__(self) -> "InputChecks":
        if self.inputs and threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
            self.futures = [self.pool.submit(check_input, item, self.time_column) for item in self.inputs]
        return self

    def results(self) -> list[tuple[list[str], dict[str, str | None]]]:
        if self.pool is None:
            return [check_input(item, self.time_column) for item in self.inputs]
        out = []
        for item, future in zip(self.inputs, self.futures):
            try:
                out.append(future.result())
            except Exception as exc:  # the checking process died: say so, never pass the gate silently
                out.append(([f"datasets.{item.name}: input check failed ({type(exc).__name__}: {exc})"], {}))
        self.pool.shutdown(wait=True)
        return out

    def __exit__(self, *exc_info) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _utc(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
