"""One run of a frozen plan, stage by stage: resolve -> gates -> execute -> capture -> store -> index.

Whatever happens after the staging folder exists — a gate fails, the kernel dies, a scrap is
missing, the process is interrupted, a bug — the run is published with its status and reasons. When
even that is impossible (the disk is full, the process is killed) the staging folder stays, locked
by nobody, and the next command publishes it (publication.reconcile).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import faults
from .durable import write_json
from .capture import UnreadableScraps, output_contract, read_scraps, scrap_problems, warm_up as warm_up_capture
from .catalog import Catalog, TemplateEntry
from .decision import decide, final_verdicts
from .execute import KERNEL, LaunchedKernel, capture_environment, execute_template
from .freezing import FrozenPlan, require_bound_template, require_frozen
from .gates import GateReport, InputChecks, check_admissibility
from .hashing import remote_url
from .inputs import VERIFIED_ENV, ResolvedInput, latest_pins, resolve_inputs
from .ledger import Ledger, parse_time, utc_now
from .processes import sigterm_as_interrupt
from .project import Project
from .publication import Progress, publish_run, reconcile
from .record import Action, DecisionRecord, EffectSummary, PlanRef, RunRecord, Status, TemplateRef, Timings
from .report import warm_up
from .results import result_problems
from .wording import effect_summaries
from .store import DRAFT, VERIFIED, Staging, new_run_id
from .template import source_hash
from .timeline import Timeline


@dataclass(frozen=True)
class RunOutcome:
    record: RunRecord
    folder: Path

    @property
    def report(self) -> Path:
        return self.folder / "report.html"


class _WhileTheKernelWorks(threading.Thread):
    """The parent is idle while the kernel computes its cells: import the scrap reader and warm up the report
    renderer then. It begins with the first cell: the gate has ruled (until then the gate and the kernel's
    start-up need both cores), and papermill is imported (two threads importing one package's modules in
    different orders can meet half-initialised modules). A warm-up that fails costs only the time it would
    have saved; the real work raises later."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="impactbook-warm-up")

    def run(self) -> None:
        try:
            warm_up_capture()
            warm_up()
        except Exception:
            pass

    def begin(self) -> None:
        if self.ident is None:
            try:
                self.start()
            except RuntimeError:  # (no thread to spare: the warm-up is skipped, the run is not)
                pass

    def finish(self) -> None:
        if self.ident is not None:
            self.join()


@dataclass(frozen=True)
class RunSpec:
    """What a run executes: a frozen plan version, the template file with the source it froze, the inputs."""

    frozen: FrozenPlan
    template: TemplateEntry
    template_path: Path
    template_source: str
    inputs: list[ResolvedInput]
    reproduces: str | None = None


def resolve_run(project: Project, plan_path: Path | str) -> RunSpec:
    """What a run of this plan would execute; refuses (nothing stored) an unfrozen or edited plan, or a
    template whose source is not the one the plan version froze."""
    frozen = require_frozen(project, plan_path)
    plan = frozen.plan
    catalog = Catalog.load(project)
    template = catalog.template(plan.template)
    template_path = project.resolve(template.path)
    template_source = source_hash(template_path, template.path)
    require_bound_template(project, frozen, template_source, template.path)
    return RunSpec(frozen, template, template_path, template_source, resolve_inputs(project, catalog, plan.inputs))


def run_plan(project: Project, plan_path: Path | str, *, timeout_s: int | None = None,
             progress: Progress = lambda message: None) -> RunOutcome:
    timeline = Timeline()
    timeline.add("startup", 0.0)                          # interpreter, imports, arguments
    with timeline.phase("reconcile"):
        reconcile(project, progress)                      # finish whatever an earlier process left
    with timeline.phase("resolve"):
        spec = resolve_run(project, plan_path)
    return execute_run(project, spec, timeout_s=timeout_s, progress=progress, timeline=timeline)


@dataclass(frozen=True)
class DryRun:
    spec: RunSpec
    gate: GateReport

    def record(self) -> dict[str, Any]:
        plan = self.spec.frozen.plan
        return {"plan_id": plan.id, "plan_version": self.spec.frozen.version, "template": self.spec.template.path,
                "template_source_sha256": self.spec.template_source, "admissible": self.gate.admissible,
                "inputs": [i.record() for i in self.spec.inputs], "parameters": sorted(plan.template_parameters()),
                **self.gate.record()}


def dry_run(project: Project, plan_path: Path | str) -> DryRun:
    """Every check a run makes before its kernel starts, storing nothing: no staging, no ledger entry."""
    spec = resolve_run(project, plan_path)
    with InputChecks(spec.inputs, spec.frozen.plan, parse_time(utc_now()), project.ledger_path) as checks:
        gate = check_admissibility(spec.frozen, spec.template, spec.template_path, checks)
    return DryRun(spec, gate)


def execute_run(project: Project, spec: RunSpec, *, timeout_s: int | None = None,
                progress: Progress = lambda message: None,
                extra: Callable[[RunRecord, dict[str, Any]], dict[str, Any]] | None = None,
                timeline: Timeline | None = None) -> RunOutcome:
    """Stage, gate beside the kernel, execute, capture, publish. `extra(record, scraps)` adds JSON files to
    the run folder (a reproduction's comparison) before it is published; `timeline` times the phases."""
    plan = spec.frozen.plan
    run_id = new_run_id(plan.id)
    timeline = timeline or Timeline()
    clock, started = time.perf_counter(), utc_now()
    stage_started = timeline.now()
    draft = _draft(project, spec, run_id, started)
    first_files = {"plan.json": _json_bytes(plan.canonical()), DRAFT: _json_bytes(draft.model_dump(mode="json")),
                   "template.ipynb": spec.template_path.read_bytes()}
    refuse_unwritable(project)
    with InputChecks(spec.inputs, plan, parse_time(started), project.ledger_path,
                     any_recorded_pin=spec.reproduces is not None, timeline=timeline) as input_checks, \
            sigterm_as_interrupt():
        staging = Staging.create(project, run_id, first_files)
        timeline.add("stage", stage_started)
        try:
            try:
                record, scraps, notebook = _work(project, staging, spec, input_checks, draft, started, clock,
                                                 timeout_s, progress, timeline)
            except OSError:
                raise
            except Exception as exc:  # a bug or data nobody foresaw: the run is still stored, with the error
                errors = [f"internal error: {type(exc).__name__}: {exc}"]
                record = _finish(draft, plan, GateReport(), Status.FAILED, errors, {}, None, started, clock, timeline)
                scraps, notebook = {}, staging.path("notebook.ipynb")
                notebook = notebook if notebook.is_file() else None
            for name, value in (extra(record, scraps) if extra else {}).items():
                staging.write(name, _json_bytes(value))
            folder = publish_run(project, staging, record, plan, scraps, notebook, progress)
        except BaseException as exc:
            staging.note_cause(f"the process stopped before publishing it ({type(exc).__name__}: {exc})")
            raise
        finally:
            staging.release()
    return RunOutcome(record, folder)


def refuse_unwritable(project: Project) -> None:
    """runs/, its staging folder and the ledger must take writes, asked before the kernel starts: a run whose
    folder could not be renamed into runs/ would do all its work only to wait for the permissions to change.
    (A change of permissions during the run is still met by recovery.)"""
    for path in (project.runs_dir, project.staging_dir, project.ledger_path):
        if path.exists() and not os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0)):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def _work(project: Project, staging: Staging, spec: RunSpec, input_checks: InputChecks, draft: RunRecord,
          started: str, clock: float, timeout_s: int | None, progress: Progress,
          timeline: Timeline) -> tuple[RunRecord, dict[str, Any], Path | None]:
    """The gate on a thread while the kernel starts; its first cell waits for the gate's ruling (execute.
    Admission). Refused: the kernel is stopped before any cell and the run is INADMISSIBLE with nothing
    of the kernel kept. Admitted: the cells, then the scraps. Returns the final record, scraps, notebook."""
    frozen, template, template_path = spec.frozen, spec.template, spec.template_path
    plan, run_id = frozen.plan, staging.run_id
    notebook = staging.path("notebook.ipynb")
    gate_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="impactbook-gate")
    kernel = None
    try:
        progress(f"run {run_id}: checking admissibility while {template.path} starts in a fresh kernel")
        admitted: Future = Future()
        kernel = LaunchedKernel(project, template_path, notebook.parent, seed=plan.seed,  # before the gate's thread
                                pins={item.name: item.pin() for item in spec.inputs},
                                environment={VERIFIED_ENV: str(staging.path(VERIFIED))}, admitted=admitted,
                                timeline=timeline)
        gate_future = gate_thread.submit(_gate, frozen, template, template_path, input_checks, timeline,
                                         staging, draft)
        gate_future.add_done_callback(lambda done: admitted.set_exception(done.exception()) if done.exception()
                                      else admitted.set_result(done.result().admissible))
        side_work, cell_progress = _WhileTheKernelWorks(), _cell_progress(run_id, progress)

        def on_cell(cell: int, total: int, elapsed: float) -> None:
            side_work.begin()
            cell_progress(cell, total, elapsed)
        execution = execute_template(project, template_path, notebook, plan.template_parameters(), kernel=kernel,
                                     timeout_s=timeout_s, on_cell=on_cell, timeline=timeline)
        if execution.interrupted:  # SIGTERM/Ctrl-C: FAILED at once, with what the kernel saved
            gate = gate_future.result() if gate_future.done() and not gate_future.exception() else GateReport()
            record = _finish(draft, plan, gate, Status.FAILED, [execution.error], {}, execution, started, clock,
                             timeline)
            return record, {}, notebook if notebook.exists() else None
        try:
            gate = gate_future.result()
        except Exception:  # a broken gate: FAILED (execute_run stores it), and nothing of the kernel is kept
            staging.discard_kernel_output()
            raise
        status, errors, scraps = Status.COMPLETED, [], {}
        if not gate.admissible:  # the kernel was stopped before its first cell (or never launched)
            staging.discard_kernel_output()
            status, execution = Status.INADMISSIBLE, None
            progress(f"run {run_id}: INADMISSIBLE, the kernel was stopped before any cell ran")
        else:
            side_work.finish()
            faults.point("execution.done")
            with timeline.phase("capture"):
                if execution.error:
                    errors.append(execution.error)
                try:
                    scraps, unreadable = read_scraps(notebook), None
                except UnreadableScraps as exc:
                    scraps, unreadable = {}, str(exc)
                    errors.append(unreadable)
                if execution.ok and not unreadable:  # (scraps that could not be read are not also "never glued")
                    errors += scrap_problems(scraps, output_contract(template_path), template.path)
                    errors += result_problems(scraps, [key for _, _, key in plan.hypothesis_keys],
                                              [m.id for m in plan.assessed])
            status = Status.FAILED if errors else Status.COMPLETED
            if status is Status.COMPLETED and (mismatch := sample_ratio_mismatch(scraps, plan.srm_threshold)):
                status, gate = Status.INADMISSIBLE, gate.with_inadmissible(mismatch)
    except KeyboardInterrupt as exc:
        gate, status, scraps, execution = GateReport(), Status.FAILED, {}, None
        errors = [f"interrupted before the run finished ({str(exc) or 'SIGINT'})"]
    finally:
        if kernel is not None:
            kernel.release()  # (one never adopted: something failed before the kernel was needed)
        gate_thread.shutdown(wait=False)
    record = _finish(draft, plan, gate, status, errors, scraps, execution, started, clock, timeline)
    return record, scraps, notebook if notebook.exists() else None


def _gate(frozen: FrozenPlan, template: TemplateEntry, template_path: Path, input_checks: InputChecks,
          timeline: Timeline, staging: Staging, draft: RunRecord) -> GateReport:
    """The gate's ruling, kept in the staged draft (a run recovered after its process died keeps its labels);
    when it admits, the identities of the files it hashed go to VERIFIED first, so the kernel (whose cells
    wait for the ruling) can trust them instead of hashing them again."""
    with timeline.phase("gate"):
        gate = check_admissibility(frozen, template, template_path, input_checks)
        ruled = draft.model_copy(update={"labels": gate.labels, "gate": gate.record()})
        staging.write(DRAFT, _json_bytes(ruled.model_dump(mode="json")))
        verified = staging.path(VERIFIED)
        if gate.admissible:
            steady = {item.name: {"path": remote_url(item.path) or str(item.path), "sha256": item.entry.sha256,
                                  "identity": facts.steady, **({"copy": str(facts.copy)} if facts.copy else {})}
                      for item, facts in zip(input_checks.inputs, input_checks.results()) if facts.steady}
            write_json(verified, steady)
    faults.point("gates.checked")
    return gate


def _cell_progress(run_id: str, progress: Progress, after_s: float = 3.0) -> Callable[[int, int, float], None]:
    """Per-cell progress on stderr once a run has taken a few seconds (quick runs stay quiet)."""
    last = [0.0]

    def report(cell: int, total: int, elapsed: float) -> None:
        if elapsed >= after_s and elapsed - last[0] >= 2.0:
            last[0] = elapsed
            progress(f"run {run_id}: cell {cell} of {total} ({elapsed:.0f} s)")
    return report


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


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


def _draft(project: Project, spec: RunSpec, run_id: str, started: str) -> RunRecord:
    frozen, template, inputs = spec.frozen, spec.template, spec.inputs
    plan = frozen.plan
    pins = latest_pins(Ledger(project.ledger_path).entries())
    return RunRecord(
        run_id=run_id, status=Status.FAILED,
        plan=PlanRef(id=plan.id, version=frozen.version, sha256=frozen.sha256, path=frozen.path,
                     frozen_at=frozen.frozen_at, title=plan.title, amendment_reason=frozen.entry.get("reason")),
        model_change=plan.model_change.model_dump(),
        template=TemplateRef(name=plan.template, path=template.path, version=template.version,
                             sha256=spec.template_source),
        inputs=[i.record((pins.get(i.name) or {}).get("seq")) for i in inputs], parameters=plan.template_parameters(),
        seed=plan.seed,
        environment=capture_environment(project, KERNEL), timings=Timings(started_at=started),
        gate=GateReport().record(), errors=["the run did not finish (process ended)"],
        decision=DecisionRecord(action=Action.HOLD, reason="the run did not finish"), reproduces=spec.reproduces)


def _finish(draft: RunRecord, plan, gate: GateReport, status: Status, errors: list[str], scraps: dict[str, Any],
            execution, started: str, clock: float, timeline: Timeline) -> RunRecord:
    verdicts = final_verdicts(plan, status, scraps.get("verdicts") or {}, gate.inadmissible, gate.deviations, errors,
                              gate.labels, gate.notes)
    timings = Timings(started_at=started, finished_at=utc_now(), duration_s=round(time.perf_counter() - clock, 3),
                      execution_s=execution.duration_s if execution else None,
                      cells=execution.cells if execution else [], phases=timeline.record(),
                      process_started_at=dt.datetime.fromtimestamp(timeline.origin, dt.timezone.utc)
                      .isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    rows = scraps.get("results") if isinstance(scraps.get("results"), list) and status is Status.COMPLETED else []
    effects = [EffectSummary(**e) for e in effect_summaries(rows, {v.key: v.verdict.value for v in verdicts})]
    return draft.model_copy(update={"status": status, "labels": gate.labels, "gate": gate.record(), "errors": errors,
                                    "verdicts": verdicts, "timings": timings, "effects": effects,
                                    "decision": decide(plan, status, verdicts, scraps.get("rollout"), gate.labels)})
