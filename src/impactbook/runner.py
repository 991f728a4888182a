"""One run of a frozen plan, stage by stage: resolve -> gates -> execute -> capture -> store -> index.

Whatever happens after the staging folder exists — a gate fails, the kernel dies, a scrap is
missing, the process is interrupted — the run is published with its status and reasons.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .capture import output_contract, read_scraps, scrap_problems
from .catalog import Catalog
from .decision import decide, final_verdicts
from .execute import KERNEL, capture_environment, execute_template
from .freezing import FrozenPlan, require_frozen
from .gates import GateReport, InputChecks, check_admissibility
from .hashing import sha256_file
from .index import RunIndex, load_record
from .inputs import resolve_inputs
from .ledger import Ledger, utc_now
from .plan import plan_from_canonical
from .project import Project
from .record import DecisionRecord, Action, PlanRef, RunRecord, Status, TemplateRef, Timings
from .report import render_report, warm_up
from .store import SUMS, Staging, abandoned_stagings, new_run_id, published_runs, write_json

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunOutcome:
    record: RunRecord
    folder: Path

    @property
    def report(self) -> Path:
        return self.folder / "report.html"


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """CI cancels with SIGTERM; turn it into KeyboardInterrupt so the run is still published as FAILED."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _WhileTheKernelWorks(threading.Thread):
    """The parent is idle while the kernel computes: warm up the report renderer then. A warm-up that
    fails costs only the time it would have saved; the real render raises properly later."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="impactbook-warm-up")

    def run(self) -> None:
        try:
            warm_up()
        except Exception:
            pass


def run_plan(project: Project, plan_path: Path | str, *, timeout_s: int | None = None,
             progress: Progress = lambda message: None) -> RunOutcome:
    recover_abandoned(project, progress)
    frozen = require_frozen(project, plan_path)          # refuses unfrozen or edited plans; nothing stored
    plan = frozen.plan
    catalog = Catalog.load(project)
    template = catalog.template(plan.template)
    template_path = project.resolve(template.path)
    inputs = resolve_inputs(project, catalog, plan.inputs)

    run_id = new_run_id(plan.id)
    with InputChecks(inputs, plan.window.time_column) as input_checks, _sigterm_as_interrupt():
        staging = Staging.create(project, run_id)
        clock = time.perf_counter()
        started = utc_now()
        draft = _draft(project, frozen, template, template_path, inputs, run_id, started)
        write_json(staging.path("run.json"), draft.model_dump(mode="json"))
        write_json(staging.path("plan.json"), plan.canonical())
        try:
            progress(f"run {run_id}: checking admissibility")
            gate = check_admissibility(frozen, template, template_path, input_checks)
            status, errors, scraps, execution = Status.COMPLETED, [], {}, None
            if not gate.admissible:
                status = Status.INADMISSIBLE
                progress(f"run {run_id}: INADMISSIBLE, the kernel will not start")
            else:
                progress(f"run {run_id}: executing {template.path} in a fresh kernel")
                side_work = _WhileTheKernelWorks()
                side_work.start()
                execution = execute_template(project, template_path, staging.path("notebook.ipynb"),
                                             plan.template_parameters(), seed=plan.seed, timeout_s=timeout_s)
                side_work.join()
                if execution.error:
                    errors.append(execution.error)
                scraps = read_scraps(staging.path("notebook.ipynb"))
                if execution.ok:
                    errors += scrap_problems(scraps, output_contract(template_path), template.path)
                status = Status.FAILED if errors else Status.COMPLETED
                if status is Status.COMPLETED and (mismatch := sample_ratio_mismatch(scraps, plan.srm_threshold)):
                    status, gate = Status.INADMISSIBLE, gate.with_inadmissible(mismatch)
        except KeyboardInterrupt as exc:
            gate, status, scraps, execution = GateReport(), Status.FAILED, {}, None
            errors = [f"interrupted before the run finished ({exc or 'SIGINT'})"]
        record = _finish(draft, plan, gate, status, errors, scraps, execution, started, clock)
        return _publish(project, staging, record, plan, progress, scraps or None)


def sample_ratio_mismatch(scraps: dict[str, Any], threshold: float) -> str | None:
    """A broken split, overall or within a segment, invalidates the comparison: the run is INADMISSIBLE,
    though it executed."""
    srm = scraps.get("srm")
    if not isinstance(srm, dict):
        return None
    scopes = {"overall": srm, **(srm.get("segments") or {})}
    broken = [f"{scope} (arms {found.get('observed')}, p = {found['p_value']:.2g})" for scope, found in scopes.items()
              if isinstance(found, dict) and isinstance(found.get("p_value"), (int, float))
              and found["p_value"] < threshold]
    if broken:
        return f"sample ratio mismatch against the planned split (chi-square p < {threshold}): " + "; ".join(broken)
    return None


def _draft(project: Project, frozen: FrozenPlan, template, template_path: Path, inputs, run_id: str,
           started: str) -> RunRecord:
    plan = frozen.plan
    return RunRecord(
        run_id=run_id, status=Status.FAILED,
        plan=PlanRef(id=plan.id, version=frozen.version, sha256=frozen.sha256, path=frozen.path,
                     frozen_at=frozen.frozen_at, title=plan.title, amendment_reason=frozen.entry.get("reason")),
        model_change=plan.model_change.model_dump(),
        template=TemplateRef(name=plan.template, path=template.path, version=template.version,
                             sha256=sha256_file(template_path) if template_path.is_file() else None),
        inputs=[i.record() for i in inputs], parameters=plan.template_parameters(), seed=plan.seed,
        environment=capture_environment(project, KERNEL), timings=Timings(started_at=started),
        gate=GateReport().record(), errors=["the run did not finish (process ended)"],
        decision=DecisionRecord(action=Action.HOLD, reason="the run did not finish"))


def _finish(draft: RunRecord, plan, gate: GateReport, status: Status, errors: list[str], scraps: dict[str, Any],
            execution, started: str, clock: float) -> RunRecord:
    verdicts = final_verdicts(plan, status, scraps.get("verdicts") or {}, gate.inadmissible, gate.deviations, errors)
    timings = Timings(started_at=started, finished_at=utc_now(), duration_s=round(time.perf_counter() - clock, 3),
                      execution_s=execution.duration_s if execution else None,
                      cells=execution.cells if execution else [])
    return draft.model_copy(update={"status": status, "gate": gate.record(), "errors": errors, "verdicts": verdicts,
                                    "timings": timings, "decision": decide(plan, status, verdicts, scraps.get("rollout"))})


def _publish(project: Project, staging: Staging, record: RunRecord, plan, progress: Progress,
             scraps: dict[str, Any] | None = None) -> RunOutcome:
    """scraps, run.json, report into staging; atomic publish; then ledger entry and index row."""
    notebook = staging.path("notebook.ipynb")
    write_json(staging.path("scraps.json"), scraps if scraps is not None else read_scraps(notebook))
    write_json(staging.path("run.json"), record.model_dump(mode="json"))
    render_report(record, plan, notebook if notebook.exists() else None, staging.path("report.html"))
    folder = staging.publish(project.runs_dir)
    sums = sha256_file(folder / SUMS)
    entry = Ledger(project.ledger_path).append("run", _ledger_body(record, sums))
    RunIndex(project.index_path).add(record, sums, entry["seq"])
    progress(f"run {record.run_id}: published {project.relative(folder)} ({record.status.value})")
    return RunOutcome(record, folder)


def _ledger_body(record: RunRecord, sums: str) -> dict[str, Any]:
    """A run's ledger entry carries the hash of its SHA256SUMS, chaining the artifacts into the ledger."""
    return {"run_id": record.run_id, "plan_id": record.plan.id, "plan_version": record.plan.version,
            "plan_hash": record.plan.sha256, "status": record.status.value,
            "decision": record.decision.action.value, "sha256sums": sums}


def recover_abandoned(project: Project, progress: Progress = lambda message: None) -> list[str]:
    """Publish runs whose process was killed as FAILED, and ledger/index runs published but not recorded."""
    recovered = []
    for staging in abandoned_stagings(project):
        try:
            draft = RunRecord.model_validate_json(staging.path("run.json").read_text(encoding="utf-8"))
            plan_data = json.loads(staging.path("plan.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # killed before its first record was written: nothing of it to keep
        plan = plan_from_canonical(plan_data)
        errors = ["the process running this run ended before it was published (killed); recovered at " + utc_now()]
        status = Status.FAILED
        verdicts = final_verdicts(plan, status, {}, [], [], errors)
        record = draft.model_copy(update={"errors": errors, "verdicts": verdicts,
                                          "decision": decide(plan, status, verdicts)})
        _publish(project, staging, record, plan, progress)
        recovered.append(record.run_id)
        progress(f"recovered killed run {record.run_id} as FAILED")
    _record_unledgered(project, progress)
    return recovered


def _record_unledgered(project: Project, progress: Progress) -> None:
    """A process killed between publish and ledger append leaves a complete folder; finish its records."""
    ledger = Ledger(project.ledger_path)
    known = ledger.runs()
    indexed = {row["run_id"] for row in RunIndex(project.index_path).rows()}
    for folder in published_runs(project):
        if folder.name in known and folder.name in indexed:
            continue
        record = load_record(folder)
        sums = sha256_file(folder / SUMS)
        entry = known.get(folder.name) or ledger.append("run", {**_ledger_body(record, sums), "recovered": True})
        if folder.name not in indexed:
            RunIndex(project.index_path).add(record, sums, entry["seq"])
        progress(f"recorded published run {folder.name} in the ledger and index")
