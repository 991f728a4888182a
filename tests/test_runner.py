"""runner.py: a run of a frozen plan end to end, and every way it can go wrong — each still stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from impactbook.audit import verify
from impactbook.catalog import Catalog
from impactbook.errors import PlanChangedError, PlanError, PlanNotFrozenError
from impactbook.index import RunIndex
from impactbook.ledger import Ledger
from impactbook.record import Action, Status, Verdict
from impactbook.store import published_runs
from impactbook.freezing import amend_plan, freeze_plan
from conftest import PLAN, edit_template, edit_yaml, read_json, relabel_a_row, run, run_variant, write_data


def test_completed_run_publishes_every_artifact_read_only(frozen_project):
    outcome = run(frozen_project)
    record = outcome.record
    assert record.status is Status.COMPLETED
    assert {v.metric: v.verdict for v in record.verdicts} == {"conversion": Verdict.CONFIRMED,
                                                              "revenue_per_user": Verdict.CONFIRMED,
                                                              "revenue_per_session": Verdict.CONFIRMED}
    assert record.decision.action is Action.SHIP
    files = sorted(p.name for p in outcome.folder.iterdir() if p.name != "kernel.log")  # kept only if the kernel spoke
    assert files == ["SHA256SUMS", "notebook.ipynb", "plan.json", "report.html", "run.json", "scraps.json",
                     "template.ipynb"]
    assert all((p.stat().st_mode & 0o222) == 0 for p in outcome.folder.iterdir())
    stored = read_json(outcome.folder / "run.json")
    assert stored["plan"]["sha256"] == record.plan.sha256 and stored["seed"] == 20261122
    assert stored["inputs"][0]["sha256"] == Catalog.load(frozen_project).dataset("demo_experiment").sha256
    env = stored["environment"]
    assert env["python"] and env["kernel_name"] == "python3" and "papermill" in env["distributions"]
    assert {"commit", "dirty"} <= set(env["git"])
    assert stored["timings"]["cells"] and all(c["duration_s"] is not None for c in stored["timings"]["cells"])
    assert not list(frozen_project.staging_dir.iterdir())
    ledger_entry = Ledger(frozen_project.ledger_path).runs()[record.run_id]
    assert RunIndex(frozen_project.index_path).find(record.run_id)["ledger_seq"] == ledger_entry["seq"]
    assert verify(frozen_project).intact


def test_two_runs_of_the_same_frozen_plan_give_identical_scraps_and_new_folders(frozen_project):
    first, second = run(frozen_project), run(frozen_project)
    assert first.record.run_id != second.record.run_id and first.record.run_id < second.record.run_id
    assert (first.folder / "scraps.json").read_bytes() == (second.folder / "scraps.json").read_bytes()
    assert read_json(first.folder / "scraps.json")["verdicts"]


def test_unfrozen_or_edited_plan_is_refused_and_nothing_is_stored(project):
    with pytest.raises(PlanNotFrozenError):
        run(project)
    freeze_plan(project, PLAN)
    edit_yaml(project.root / PLAN, (("alpha",), 0.1))
    with pytest.raises(PlanChangedError):
        run(project)
    assert published_runs(project) == []


def test_input_hash_mismatch_makes_the_run_inadmissible_without_a_kernel(frozen_project):
    data = frozen_project.root / "data/demo_experiment.csv"
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-1]))  # drop the last row: same schema, different bytes
    outcome = run(frozen_project)
    assert outcome.record.status is Status.INADMISSIBLE
    assert "datasets.demo_experiment.sha256: input data/demo_experiment.csv does not match its pin" in \
        outcome.record.gate["inadmissible"][0]
    assert not (outcome.folder / "notebook.ipynb").exists(), "the kernel must not start"
    assert {v.verdict for v in outcome.record.verdicts} == {Verdict.INADMISSIBLE}
    assert outcome.record.decision.action is Action.HOLD
    assert "does not match its pin" in (outcome.folder / "report.html").read_text()


def test_contract_violation_makes_the_run_inadmissible_naming_the_column(project):
    relabel_a_row(project)
    freeze_plan(project, PLAN)
    outcome = run(project)
    assert outcome.record.status is Status.INADMISSIBLE
    problems = outcome.record.gate["inadmissible"]
    assert any(p.startswith("datasets.demo_experiment.contract.columns.variant: fails allowed ['control', "
                            "'treatment'] (1 rows; e.g. 'holdout')") for p in problems), problems


def test_unknown_parameter_makes_the_run_inadmissible_with_a_suggestion(project):
    edit_yaml(project.root / PLAN, (("parameters",), {"sede": 100}))
    freeze_plan(project, PLAN)
    outcome = run(project)
    assert outcome.record.status is Status.INADMISSIBLE
    assert "parameters.sede: the template's parameters cell does not declare it; did you mean 'seed'?" in \
        outcome.record.gate["inadmissible"]


def test_an_optional_template_parameter_keeps_its_default_and_says_so(project):
    def add_parameter(notebook):
        notebook.cells[1].source += "\nsegment = 'platform'  # an optional knob"
    outcome = run_variant(project, "with_segment", add_parameter)
    assert outcome.record.status is Status.COMPLETED
    assert "template defaults used: segment = 'platform'" in outcome.record.gate["notes"]


def test_a_required_template_parameter_the_plan_leaves_out_makes_the_run_inadmissible(project):
    def add_parameter(notebook):
        notebook.cells[1].source += "\nsegment = 'platform'  # required: the segment to report on"
    outcome = run_variant(project, "with_required", add_parameter)
    assert "the template marks ['segment'] as required" in outcome.record.gate["inadmissible"][0]


def test_a_template_edited_after_the_freeze_is_refused_until_an_amendment_records_it(frozen_project):
    template = frozen_project.root / "templates/ab_test.ipynb"
    notebook = nbformat.read(template, as_version=4)
    notebook.cells[2].source += "\nprint('a quiet change to the analysis')"
    nbformat.write(notebook, template)
    with pytest.raises(PlanChangedError, match="froze source"):
        run(frozen_project)
    assert published_runs(frozen_project) == [] and not list(frozen_project.staging_dir.glob("*")), "no kernel, nothing"
    with pytest.raises(PlanError, match="has changed since it was pinned"):
        amend_plan(frozen_project, PLAN, "print a line")
    Catalog.load(frozen_project).pin_template("ab_test", template)
    version = amend_plan(frozen_project, PLAN, "print a line")
    assert version.version == 2 and version.template_sha256 != Ledger(frozen_project.ledger_path).entries()[1][
        "template"]["source_sha256"]
    assert run(frozen_project).record.status is Status.COMPLETED


def test_run_all_and_save_does_not_change_the_template_source(frozen_project):
    from impactbook.template import source_hash
    template = frozen_project.root / "templates/ab_test.ipynb"
    before = source_hash(template)
    executed = run(frozen_project).folder / "notebook.ipynb"
    notebook = nbformat.read(executed, as_version=4)  # what "Run All + Save" leaves: outputs, counts, metadata
    notebook.cells = [c for c in notebook.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    nbformat.write(notebook, template)
    assert source_hash(template) == before
    assert run(frozen_project).record.status is Status.COMPLETED, "no amendment needed"
    pin = Catalog.load(frozen_project).pin_template("ab_test", template)
    assert pin.stripped_outputs and not pin.changed and pin.entry.version == 1


def test_notebook_that_raises_is_stored_failed_with_its_partial_notebook(project):
    def explode(notebook):
        notebook.cells.insert(4, nbformat.v4.new_code_cell("raise RuntimeError('model registry unreachable')"))
    outcome = run_variant(project, "explodes", explode)
    record = outcome.record
    assert record.status is Status.FAILED
    assert "RuntimeError: model registry unreachable" in record.errors[0]
    notebook = nbformat.read(outcome.folder / "notebook.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert {v.verdict for v in record.verdicts} == {Verdict.INADMISSIBLE}
    assert record.decision.action is Action.HOLD
    assert verify(project).intact


def test_kernel_that_dies_is_stored_failed(project):
    def die(notebook):
        notebook.cells.insert(4, nbformat.v4.new_code_cell("import os\nos._exit(9)"))
    outcome = run_variant(project, "dies", die)
    assert outcome.record.status is Status.FAILED
    assert "DeadKernelError" in outcome.record.errors[0] or "died" in outcome.record.errors[0].lower()
    assert (outcome.folder / "notebook.ipynb").exists()


def test_missing_scrap_fails_the_run_naming_the_scrap(project):
    def forget_verdicts(notebook):
        for cell in notebook.cells:
            cell.source = cell.source.replace("ib.glue(name, value)", 'ib.glue(name, value) if name != "verdicts" else None')
    outcome = run_variant(project, "forgetful", forget_verdicts)
    assert outcome.record.status is Status.FAILED
    assert "scrap 'verdicts': missing (the template declares it but never glued it)" in outcome.record.errors


def test_mistyped_scrap_fails_the_run(project):
    def wrong_type(notebook):
        for cell in notebook.cells:
            cell.source = cell.source.replace("ib.glue(name, value)", 'ib.glue(name, 0.5 if name == "srm" else value)')
    outcome = run_variant(project, "mistyped", wrong_type)
    assert "scrap 'srm': expected object, got float" in outcome.record.errors


def _sleepy(project):
    def sleep(notebook):
        notebook.cells.insert(3, nbformat.v4.new_code_cell("import time\ntime.sleep(120)"))
    edit_template(project, "sleepy", sleep)
    freeze_plan(project, PLAN)


def test_cell_timeout_is_stored_failed(project):
    _sleepy(project)
    outcome = run(project, timeout_s=3)
    assert outcome.record.status is Status.FAILED
    assert "timed out" in outcome.record.errors[0].lower() or "timeout" in outcome.record.errors[0].lower()


def _start_run_and_wait_for_kernel(project) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN], cwd=project.root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        notebooks = list(project.staging_dir.glob("*/notebook.ipynb"))
        if notebooks and "time.sleep" in notebooks[0].read_text():
            time.sleep(2)  # a few cells in: the kernel is inside the sleep
            return process
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the run never reached the kernel")


def test_killed_run_leaves_no_half_published_folder_and_is_recovered_as_failed(project):
    _sleepy(project)
    process = _start_run_and_wait_for_kernel(project)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert published_runs(project) == [], "nothing may be published by a killed process"
    assert RunIndex(project.index_path).rows() == []
    assert [s.name for s in project.staging_dir.iterdir()], "its work in progress is kept, not lost"
    report = verify(project)
    assert any("interrupted before publication" in p for p in report.problems), report.problems

    from impactbook.publication import reconcile
    recovered = reconcile(project).recovered
    assert len(recovered) == 1
    folder = published_runs(project)[0]
    record = read_json(folder / "run.json")
    assert record["status"] == "FAILED" and "killed" in record["errors"][0]
    assert "SIMULATED" in record["labels"] and record["gate"]["labels"] == record["labels"], \
        "the gate's ruling outlives the process that made it"
    assert (folder / "notebook.ipynb").exists(), "the partial notebook is kept"
    shown = subprocess.run([sys.executable, "-m", "impactbook", "runs", "show", folder.name], cwd=project.root,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "never finished" in shown.stdout and "None" not in shown.stdout, shown.stdout
    assert [r["run_id"] for r in RunIndex(project.index_path).rows()] == [folder.name]
    assert verify(project).intact


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_sigterm_or_ctrl_c_during_execution_publishes_a_failed_run_naming_it(project, name):
    _sleepy(project)
    process = _start_run_and_wait_for_kernel(project)
    process.send_signal(getattr(signal, name))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 5, stderr
    folder = published_runs(project)[0]
    record = read_json(folder / "run.json")
    assert record["status"] == "FAILED" and record["errors"] == [f"interrupted ({name}) while the kernel was running"]
    assert verify(project).intact


def test_ctrl_c_while_the_gate_still_checks_publishes_a_failed_run_naming_it(frozen_project):
    from impactbook.faults import FAULT_ENV

    process = subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN], cwd=frozen_project.root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, FAULT_ENV: "sleep=60@gates.checked"})
    deadline = time.time() + 120
    while time.time() < deadline and not list(frozen_project.staging_dir.glob("2*")):
        time.sleep(0.1)
    time.sleep(5)  # the kernel is up; the run waits for its gate
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 5, stderr
    record = read_json(published_runs(frozen_project)[0] / "run.json")
    [error] = record["errors"]
    assert record["status"] == "FAILED" and error.startswith("interrupted") and "(SIGINT)" in error, error


def test_window_before_freeze_runs_but_every_verdict_is_deviated(tmp_path):
    from conftest import make_project
    project = make_project(tmp_path / "late")
    edit_yaml(project.root / PLAN, (("window", "start"), "2026-01-01"), (("window", "end"), "2026-01-14"))
    import datetime as dt
    write_data(project, dt.date(2026, 1, 1))
    freeze_plan(project, PLAN)
    outcome = run(project)
    record = outcome.record
    assert record.status is Status.COMPLETED
    assert {v.verdict for v in record.verdicts} == {Verdict.DEVIATED}
    assert {v.statistical_verdict for v in record.verdicts} == {Verdict.CONFIRMED}
    assert any("before the plan was frozen" in d for d in record.gate["deviations"])
    assert record.decision.action is Action.HOLD
    assert "before the plan was frozen" in (outcome.folder / "report.html").read_text()


def test_sample_ratio_mismatch_makes_an_executed_run_inadmissible(tmp_path):
    from conftest import make_project
    project = make_project(tmp_path / "srm", treatment_share=0.53)
    freeze_plan(project, PLAN)
    outcome = run(project)
    record = outcome.record
    assert record.status is Status.INADMISSIBLE
    assert (outcome.folder / "notebook.ipynb").exists(), "the analysis ran; its numbers are kept"
    assert any(r.startswith("sample ratio mismatch") and "overall (arms" in r for r in record.gate["inadmissible"])
    assert {v.verdict for v in record.verdicts} == {Verdict.INADMISSIBLE}
    assert record.decision.action is Action.HOLD


def test_sample_ratio_mismatch_within_a_segment_is_found():
    from impactbook.runner import sample_ratio_mismatch
    scraps = {"srm": {"p_value": 0.4, "observed": {"control": 10, "treatment": 10},
                      "segments": {"platform=web": {"p_value": 1e-6, "observed": {"control": 900, "treatment": 1100}},
                                   "platform=ios": {"p_value": 0.5, "observed": {"control": 5, "treatment": 5}}}}}
    found = sample_ratio_mismatch(scraps, 0.001)
    assert "platform=web" in found and "platform=ios" not in found and "overall" not in found
    assert sample_ratio_mismatch({"srm": {"p_value": 0.2, "segments": {}}}, 0.001) is None


def test_a_scrap_output_scrapbook_cannot_read_fails_the_run_naming_it(project):
    """Capture reads every scrap output of the notebook: one that breaks scrapbook's schema (written by hand,
    here with no data) is a failed run stored with the reason, not a crash of the command."""
    def hand_written(notebook):
        notebook.cells.insert(4, nbformat.v4.new_code_cell(
            "from IPython.display import display\n"
            "display({'application/scrapbook.scrap.json+json': {'name': 'note', 'data': None, 'encoder': 'json',"
            " 'version': 1}}, metadata={'scrapbook': {'name': 'note', 'data': True, 'display': False}}, raw=True)"))
    outcome = run_variant(project, "unreadable", hand_written)
    assert outcome.record.status is Status.FAILED
    assert [e for e in outcome.record.errors if e.startswith(
        "notebook.ipynb: a scrap output that cannot be read, so no scrap is read: ScrapbookDataException: Scrap "
        "payload (name=note)")]
    assert verify(project).intact


@pytest.mark.parametrize("payload", ["'a string payload'", "[1, 2]",
                                     "{'name': 'note', 'data': 1, 'encoder': 'json', 'version': '1'}",
                                     "{'name': 'note', 'data': deep, 'encoder': 'json', 'version': 1}"])
def test_any_hand_written_scrap_output_is_an_unreadable_scrap_not_an_internal_error(project, payload):
    def hand_written(notebook):
        notebook.cells.insert(4, nbformat.v4.new_code_cell(
            "from IPython.display import display\ndeep = 1\nfor _ in range(250):\n    deep = {'a': deep}\n"
            f"display({{'application/scrapbook.scrap.json+json': {payload}}}, "
            "metadata={'scrapbook': {'name': 'note', 'data': True, 'display': False}}, raw=True)"))
    outcome = run_variant(project, "odd", hand_written)
    assert outcome.record.status is Status.FAILED
    assert [e for e in outcome.record.errors if e.startswith("notebook.ipynb: a scrap output that cannot be read")]
    assert not [e for e in outcome.record.errors if "internal error" in e or "never glued" in e], outcome.record.errors
