"""Stage 3 of a run: admissibility checks, all before a kernel starts.

A failed gate makes the run INADMISSIBLE (stored, never executed); a window that opens before
the freeze lets the run execute but turns every verdict DEVIATED.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import TemplateEntry
from .freezing import FrozenPlan
from .hashing import sha256_file
from .inputs import ResolvedInput, contract_problems, hash_problem, read_dataset


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
                        inputs: list[ResolvedInput]) -> GateReport:
    plan = frozen.plan
    inadmissible: list[str] = []
    deviations: list[str] = []
    window: dict[str, str | None] = {"start": None, "end": None}

    if not template_path.is_file():
        inadmissible.append(f"templates.{plan.template}.path: template {template.path} does not exist")
    else:
        actual = sha256_file(template_path)
        if template.sha256 and actual != template.sha256:
            inadmissible.append(f"templates.{plan.template}.sha256: template {template.path} does not match its "
                                f"pin (pinned {template.sha256[:12]}…, file is {actual[:12]}…)")
        inadmissible += parameter_problems(template_path, list(plan.template_parameters()))

    for item in inputs:
        if problem := hash_problem(item):
            inadmissible.append(problem)
            continue
        frame = read_dataset(item.path, item.entry)
        if item.entry.contract is None:
            inadmissible.append(f"datasets.{item.name}.contract: input has no data contract")
        else:
            inadmissible += contract_problems(frame, item.entry.contract, item.name)
        if plan.window.time_column in frame:
            times = frame[plan.window.time_column]
            window = {"start": _iso(times.min()), "end": _iso(times.max())}

    freeze_day = frozen.frozen_time
    start = dt.datetime.combine(plan.window.start, dt.time(), dt.timezone.utc)
    if start < freeze_day:
        deviations.append(f"window.start: the plan's outcome window starts {plan.window.start}, before the plan was "
                          f"frozen ({frozen.frozen_at}): outcomes may have been seen before preregistration")
    if window["start"] and _utc(window["start"]) < freeze_day:
        deviations.append(f"data window: the outcome data starts {window['start']}, before the plan was frozen "
                          f"({frozen.frozen_at})")
    if window["start"] and (_utc(window["start"]).date() < plan.window.start
                            or _utc(window["end"]).date() > plan.window.end):
        deviations.append(f"data window: the outcome data spans {window['start']} to {window['end']}, outside the "
                          f"plan's window {plan.window.start} to {plan.window.end}")
    return GateReport(inadmissible, deviations, window)


def _iso(value) -> str | None:
    try:
        return value.isoformat()
    except AttributeError:
        return None if value is None else str(value)


def _utc(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
