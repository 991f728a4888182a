"""Stage 3 of a run: admissibility checks, all before the kernel runs a cell (it starts beside them).

A failed gate makes the run INADMISSIBLE (stored, never executed: runner.py stops the kernel first). Time is checked against the data,
not only the calendar: rows dated after the run began make it INADMISSIBLE unless the data is declared
synthetic (then the run is SIMULATED and its clock is the end of the data); a fixed-horizon plan looked
at before its window closes is an INTERIM look; an outcome window that opened before the freeze turns
every verdict DEVIATED, unless the plan registered itself as retrospective (then it is RETROSPECTIVE).
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import TemplateEntry
from .datacheck import FileChecker, InputFacts, check_input
from .freezing import FrozenPlan
from .hashing import remote_url, warehouse_url
from .inputs import COPIES_PREFIX, ResolvedInput, latest_pins, pin_problem
from .ledger import Ledger
from .plan import Plan
from .scratch import ScratchFolder
from .template import source_hash
from .timeline import Timeline

SIMULATED, RETROSPECTIVE, INTERIM = "SIMULATED", "RETROSPECTIVE", "INTERIM"


@dataclass(frozen=True)
class GateReport:
    inadmissible: list[str] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)
    data_window: dict[str, str | None] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    clock: str | None = None
    notes: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def admissible(self) -> bool:
        return not self.inadmissible

    def record(self) -> dict[str, object]:
        return {"inadmissible": self.inadmissible, "deviations": self.deviations, "data_window": self.data_window,
                "labels": self.labels, "clock": self.clock, "notes": self.notes, "inputs": self.inputs}

    def with_inadmissible(self, reason: str) -> "GateReport":
        """A finding made after execution (e.g. sample ratio mismatch) that still voids the run."""
        return GateReport([*self.inadmissible, reason], self.deviations, self.data_window, self.labels, self.clock,
                          self.notes, self.inputs)


def template_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """The template's `parameters` cell, read with papermill's own inspector: name -> default and help."""
    import papermill

    quiet = logging.getLogger("papermill")  # its warnings, not its errors; never louder than the run made it
    if quiet.getEffectiveLevel() < logging.ERROR:  # (this runs on the gate's thread beside the kernel's start)
        quiet.setLevel(logging.ERROR)
    return dict(papermill.inspect_notebook(str(path)))


def template_parameter_names(path: Path) -> list[str]:
    return list(template_parameters(path))


def parameter_problems(template_path: Path, injected: list[str]) -> tuple[list[str], list[str]]:
    """(problems, notes). A parameter the plan supplies that the template does not declare is an error
    (papermill itself only warns: nteract/papermill#818), and so is one marked `# required` that the plan
    leaves out; any other declared parameter keeps its default, and the note says which."""
    declared = template_parameters(template_path)
    if not declared:
        return [f"{template_path.name}: has no cell tagged 'parameters'"], []
    problems, notes = [], []
    for name in sorted(set(injected) - set(declared)):
        close = difflib.get_close_matches(name, list(declared), n=1)
        problems.append(f"parameters.{name}: the template's parameters cell does not declare it"
                        + (f"; did you mean {close[0]!r}?" if close else f" (it declares {sorted(declared)})"))
    defaults = sorted(set(declared) - set(injected))
    required = [name for name in defaults if re.search(r"\brequired\b", (declared[name].get("help") or "").lower())]
    if required:
        problems.append(f"parameters: the template marks {required} as required, and the plan does not supply "
                        "them (add them under the plan's `parameters:`)")
    used = [f"{name} = {declared[name].get('default')}" for name in defaults if name not in required]
    if used:
        notes.append(f"template defaults used: {', '.join(used)}")
    return problems, notes


def check_admissibility(frozen: FrozenPlan, template: TemplateEntry, template_path: Path,
                        input_checks: "InputChecks") -> GateReport:
    """Template pin and parameters here; the data checks from `input_checks` (already running)."""
    inadmissible, template_notes = template_problems(frozen, template, template_path)
    if input_checks.ledger_path:
        entries = Ledger(input_checks.ledger_path).entries()
        inadmissible += [p for p in (pin_problem(item, latest_pins(entries), entries if input_checks.any_recorded_pin
                                                 else None) for item in input_checks.inputs) if p]
    facts = input_checks.results()
    for found in facts:
        inadmissible += found.problems
    primary = facts[0] if facts else InputFacts("")
    window = {"start": primary.first_time, "end": primary.last_time}
    labels, clock, time_problems, notes = time_labels(frozen.plan, facts, input_checks.now)
    time_problems += outside_the_window(frozen.plan, primary)
    notes += template_notes
    return GateReport(inadmissible + time_problems, window_deviations(frozen, window), window, labels,
                      clock.isoformat().replace("+00:00", "Z"), notes, [f.record() for f in facts])


def outside_the_window(plan: Plan, primary: InputFacts) -> list[str]:
    """Data none of whose rows is dated inside the window has nothing to analyse: said here, by name, rather
    than by the analysis dividing by zero units."""
    window = plan.window
    if window.time_column is None or window.time_type != "date" or not primary.first_time or not primary.last_time:
        return []
    first, last = _utc(primary.first_time).date(), _utc(primary.last_time).date()
    if last < window.start or first > window.end:
        return [f"window: no row of datasets.{primary.name} is dated inside the window ({window.start} to "
                f"{window.end}); its {window.time_column} runs from {first} to {last}"]
    return []


def time_labels(plan: Plan, facts: list[InputFacts], now: dt.datetime) -> tuple[list[str], dt.datetime, list[str],
                                                                               list[str]]:
    """Labels, the run's clock, and the time problems: the clock is now, or the end of the data's last
    day when the data is synthetic; real rows from the future are impossible."""
    labels, problems, notes = [], [], []
    primary = facts[0] if facts else InputFacts("")
    clock = now
    if any(f.synthetic for f in facts):
        labels.append(SIMULATED)
        if primary.last_time:
            clock = dt.datetime.combine(_utc(primary.last_time).date() + dt.timedelta(days=1), dt.time(),
                                        dt.timezone.utc)
        notes.append(f"synthetic data: the run's clock is the end of the data ({clock:%Y-%m-%d %H:%M}Z)")
    else:
        for found in facts:
            if found.future_rows:
                problems.append(f"datasets.{found.name}: {found.future_rows:,} rows are dated after the run began "
                                f"({now:%Y-%m-%dT%H:%M:%SZ}; latest {found.last_time}): outcomes cannot come from "
                                "the future (if the data is generated, declare `synthetic: true` in catalog.yaml)")
    if plan.registration.mode == "retrospective":
        labels.append(RETROSPECTIVE)
    window_closes = dt.datetime.combine(plan.window.end + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    if plan.rollout is None and plan.accrues_outcomes and clock < window_closes:
        labels.append(INTERIM)
        notes.append(f"interim look: the fixed-horizon window closes at the end of {plan.window.end} and the clock "
                     f"says {clock:%Y-%m-%d %H:%M}Z; its verdicts cannot ship")
    return labels, clock, problems, notes


def template_problems(frozen: FrozenPlan, template: TemplateEntry, template_path: Path) -> tuple[list[str], list[str]]:
    """(problems, notes) of the template: its pin and its parameters cell against what the plan injects."""
    plan = frozen.plan
    if not template_path.is_file():
        return [f"templates.{plan.template}.path: template {template.path} does not exist"], []
    problems = []
    actual = source_hash(template_path, template.path)
    if template.sha256 and actual != template.sha256:
        problems.append(f"templates.{plan.template}.sha256: template {template.path} does not match its "
                        f"pin (pinned source {template.sha256[:12]}…, file is {actual[:12]}…; after review: "
                        f"`impactbook template add {plan.template} {template.path}`)")
    parameters, notes = parameter_problems(template_path, list(plan.template_parameters()))
    return problems + parameters, notes


def window_deviations(frozen: FrozenPlan, window: dict[str, str | None]) -> list[str]:
    """Outcomes dated before the freeze could have been seen before preregistration. (Rows outside the
    plan's window are not a deviation: the analysis leaves them out, and counts them as excluded.)"""
    plan = frozen.plan
    if plan.registration.mode == "retrospective":  # declared: outcomes existed; labelled, not deviated
        return []
    start = dt.datetime.combine(plan.window.start, dt.time(), dt.timezone.utc)
    if start < frozen.frozen_time:
        return [f"window.start: the plan's outcome window starts {plan.window.start}, before the plan was frozen "
                f"({frozen.frozen_at}): outcomes may have been seen before preregistration"]
    return []


class InputChecks:
    """The data checks (hash, contract, plan columns, time; SQL in DuckDB, which releases the GIL) on a
    thread, started as soon as the inputs are resolved, while this thread records the draft and checks
    the template: the second core shortens the time before the kernel may start."""

    def __init__(self, inputs: list[ResolvedInput], plan: Plan, now: dt.datetime, ledger_path: Path | None = None,
                 any_recorded_pin: bool = False, timeline: Timeline | None = None) -> None:
        self.inputs, self.plan, self.now, self.ledger_path = inputs, plan, now, ledger_path
        self.timeline = timeline
        self.any_recorded_pin = any_recorded_pin  # a reproduction uses the pin its run used, not the latest
        self.pool: ThreadPoolExecutor | None = None
        self.futures: list = []
        self.copies: Path | None = None  # objects in a store, copied as hashed, for the kernel; removed at exit
        self.scratch: ScratchFolder | None = None  # (the folder of copies: a killed run's is swept by a later one)
        self.checker: FileChecker | None = None

    def role(self, item: ResolvedInput) -> str | None:
        feedback = self.plan.rollout.feedback if self.plan.rollout is not None else None
        if feedback is not None and item.parameter == feedback.input:
            return "feedback"
        drift = self.plan.rollout.drift if self.plan.rollout is not None else None
        if drift is not None and item.parameter == drift.reference:
            return "drift_reference"
        return "primary" if item is self.inputs[0] else None

    def __enter__(self) -> "InputChecks":
        if any(remote_url(item.path) for item in self.inputs):
            self.scratch = ScratchFolder(COPIES_PREFIX)
            self.copies = self.scratch.path
        if any(not warehouse_url(item.entry.uri) for item in self.inputs):  # (a file to check)
            self.checker = FileChecker()  # started on the calling thread: it dies with the thread that started it
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="impactbook-inputs")
        self.futures = [self.pool.submit(self._check, item) for item in self.inputs]
        if self.checker is not None:
            self.pool.submit(self.checker.close)  # the last task: the helper's memory is gone before the cells run
        return self

    def _check(self, item: ResolvedInput) -> InputFacts:
        with self.timeline.phase(f"inputs.{item.name}") if self.timeline else nullcontext():
            return check_input(item, self.plan, self.now, self.role(item), self.copies, self.checker)

    def results(self) -> list[InputFacts]:
        out = []
        for item, future in zip(self.inputs, self.futures):
            try:
                out.append(future.result())
            except Exception as exc:  # a check that broke: say so, never pass the gate silently
                out.append(InputFacts(item.name, problems=[f"datasets.{item.name}: the input check failed "
                                                            f"({type(exc).__name__}: {exc})"]))
        return out

    def __exit__(self, *exc_info) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.checker is not None:
            self.checker.close()
        if self.scratch is not None:
            self.scratch.remove()


def _utc(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
