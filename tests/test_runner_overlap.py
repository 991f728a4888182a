"""runner.py: the gate runs beside the kernel's start-up, and no cell runs before it has ruled — a refusal or
a broken gate stops the kernel before the analysis, and the run is stored as it was without the overlap."""

from __future__ import annotations

import time

import nbformat
import psutil

from impactbook import runner
from impactbook.audit import verify
from impactbook.faults import FAULT_ENV
from impactbook.freezing import freeze_plan
from impactbook.ledger import Ledger
from impactbook.record import Status, Verdict
from conftest import PLAN, edit_template, relabel_a_row, run

MARKER = "analysis_ran.txt"


def _template_marking_its_first_cell(project) -> None:
    """The template's first cell after the parameters leaves a file behind: proof that a cell ran."""
    def change(notebook):
        index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
        notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(f"open({MARKER!r}, 'w').write('ran')"))
    edit_template(project, "ab_marked", change)


def _live_kernels() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _without_kernels(deadline_s: float = 10.0) -> bool:
    end = time.monotonic() + deadline_s
    while _live_kernels():
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


def test_the_gate_runs_while_the_kernel_starts_and_the_first_cell_waits_for_it(frozen_project, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "sleep=6@inputs.checking")  # a data check slower than start-up, as at 100M rows
    record = run(frozen_project).record
    assert record.status is Status.COMPLETED, record.errors
    phases = record.timings.phases
    gate, launch, cells = phases["gate"], phases["kernel_start"], phases["cells"]
    assert launch[0] < gate[1], f"the kernel was launched after the gate ended: {phases}"
    assert cells[0] >= gate[1], f"a cell started before the gate had ruled: {phases}"
    assert phases["gate_wait"][1] >= gate[1] - 0.01
    assert all(start <= end for start, end in phases.values())
    assert [name for name in ("startup", "resolve", "stage", "capture") if name not in phases] == []


def test_an_inadmissible_run_stops_its_kernel_before_any_cell_and_keeps_nothing_of_it(project, monkeypatch):
    _template_marking_its_first_cell(project)
    relabel_a_row(project)
    freeze_plan(project, PLAN)
    monkeypatch.setenv(FAULT_ENV, "sleep=4@inputs.checking")  # the kernel is up before the gate refuses
    outcome = run(project)
    record = outcome.record
    assert record.status is Status.INADMISSIBLE
    assert any("contract.columns.variant: fails allowed" in p for p in record.gate["inadmissible"]), record.gate
    assert {v.verdict for v in record.verdicts} == {Verdict.INADMISSIBLE}
    assert "kernel_start" in record.timings.phases and "cells" not in record.timings.phases
    assert record.timings.cells == [] and record.timings.execution_s is None, "the record says nothing ran"
    assert not (project.root / MARKER).exists(), "a cell ran before the gate's refusal"
    assert sorted(p.name for p in outcome.folder.iterdir()) == ["SHA256SUMS", "plan.json", "report.html", "run.json",
                                                                "scraps.json", "template.ipynb"]
    assert _without_kernels(), "the kernel outlived its refused run"
    assert Ledger(project.ledger_path).runs()[record.run_id]["status"] == "INADMISSIBLE"
    assert verify(project).intact


def test_a_gate_that_raises_ends_the_run_failed_stored_and_its_kernel_stopped(project, monkeypatch):
    _template_marking_its_first_cell(project)
    freeze_plan(project, PLAN)

    def broken_gate(*args, **kwargs):
        time.sleep(4)  # long enough for the kernel to be up and waiting
        raise RuntimeError("a bug in the gate")
    monkeypatch.setattr(runner, "check_admissibility", broken_gate)
    outcome = run(project)
    record = outcome.record
    assert record.status is Status.FAILED
    assert record.errors == ["internal error: RuntimeError: a bug in the gate"]
    assert not (project.root / MARKER).exists(), "a cell ran although the gate never ruled"
    assert not (outcome.folder / "notebook.ipynb").exists() and not (outcome.folder / "kernel.log").exists()
    assert _without_kernels(), "the kernel outlived its failed run"
    assert Ledger(project.ledger_path).runs()[record.run_id]["status"] == "FAILED"
    assert verify(project).intact
