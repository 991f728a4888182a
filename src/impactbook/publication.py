"""Publishing a run — artifacts, one atomic rename, ledger entry, index row — and finishing whatever a
dead process left half done, so that the run folders, the ledger and the index always come to agree.

Every step of publishing can be interrupted (faults.POINTS names them). The next command that opens
the project calls `reconcile`, which finds each case by what is on disk:

  hidden staging folder          the run never got its draft record: discarded (nothing had started)
  staging folder, no run.json    killed while working: published FAILED with the cause, salvage kept
  staging folder with run.json   the result was complete: published with its real status and verdicts
  published, folder writable     killed before sealing: sealed
  published, not in the ledger   killed before the ledger entry (its publishing mark is there): entry
                                 appended (marked recovered); with no mark, a folder put there by hand:
                                 never ledgered, indexed as NOT IN LEDGER, reported by verify
  not in the index, or differing the index row is (re)written from the folder and ledger

A folder whose owner still holds its lock is alive and is never touched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import faults
from .decision import decide, final_verdicts
from .durable import locked, storage_error, write_json
from .errors import ImpactbookError, StorageError
from .hashing import sha256_file
from .backends.index_store import IndexOfAnotherProject, IndexStore
from .backends.run_store import RunStore, open_run_store
from .index import IndexUnusable, load_record, open_index, rebuild, row_problems
from .ledger import Ledger, LedgerSnapshot, PlanVersion, utc_now
from .plan import Plan, plan_from_canonical
from .project import Project
from .record import RunRecord, Status
from .store import (CAUSE, DRAFT, PARTIAL_NOTEBOOK, PUBLISHING, SUMS, Staging, artifact_problems, hidden_stagings,
                    published_runs, publishing_mark, seal, staged_runs)

Progress = Callable[[str], None]
DAMAGED = ".damaged"


def run_ledger_body(record: RunRecord, sums: str) -> dict[str, Any]:
    """A run's ledger entry: the hash of its SHA256SUMS (chaining every artifact into the ledger) and
    what automation acts on, so neither can be edited in the folder without the ledger disagreeing."""
    return {"run_id": record.run_id, "plan_id": record.plan.id, "plan_version": record.plan.version,
            "plan_hash": record.plan.sha256, "status": record.status.value,
            "verdicts": {v.key: v.verdict.value for v in record.verdicts},
            "decision": record.decision.action.value, "sha256sums": sums}


def publish_run(project: Project, staging: Staging, record: RunRecord, plan: Plan, scraps: dict[str, Any],
                notebook: Path | None, progress: Progress = lambda message: None) -> Path:
    """scraps, report, then the final run.json (whose presence says the result is complete) into staging;
    the atomic publish; then the ledger entry and the index row. The caller holds the staging lock."""
    from .report import render_report

    write_json(staging.path("scraps.json"), scraps)
    faults.point("publish.scraps")
    results = scraps.get("results") if isinstance(scraps.get("results"), list) else None
    render_report(record, plan, notebook, staging.path("report.html"), results=results)
    faults.point("publish.report")
    write_json(staging.path("run.json"), record.model_dump(mode="json"))
    faults.point("publish.record")
    folder = staging.publish(project.runs_dir)
    _store(project, record.run_id, folder)
    _record_published(project, folder, record, progress=progress)
    progress(f"run {record.run_id}: published {project.relative(folder)} ({record.status.value})")
    return folder


def _record_published(project: Project, folder: Path, record: RunRecord, recovered: bool = False,
                      progress: Progress = lambda message: None) -> None:
    """The ledger entry (once per run, checked under the ledger lock) and the index row. The index is
    derived: when it cannot be written (disk full, locked) the run stands, and the next command adds it."""
    sums = sha256_file(folder / SUMS)
    body = {**run_ledger_body(record, sums), **({"recovered": True} if recovered else {})}
    ledger = Ledger(project.ledger_path)
    appended = ledger.append_once("run", body, "run_id")
    faults.point("publish.ledgered")
    publishing_mark(project.staging_dir, record.run_id).unlink(missing_ok=True)
    entry = appended or ledger.runs()[record.run_id]
    try:
        faults.point("index.add", project.index_path)
        _index(project).add(record, sums, entry["seq"])
    except IndexOfAnotherProject as exc:  # (another copy took the index over meanwhile: ours is not the index's now)
        progress(f"run {record.run_id}: not added to the index ({exc})")
    except Exception as exc:  # the index is derived: whatever its backend raised, the next command reconciles it
        progress(f"run {record.run_id}: the index could not be updated ({exc}); the next impactbook command adds it")
    faults.point("publish.indexed")


def _store(project: Project, run_id: str, folder: Path) -> None:
    """A remote store receives the sealed run: write-once objects, SHA256SUMS last. When it is out of reach the
    run stays published here and the next command stores it (the ledger entry waits for that command too)."""
    store = open_run_store(project)
    try:
        store.publish(run_id, folder)
    except Exception as exc:  # ours (no such bucket, not write-once) or the client's (refused, timeouts, credentials)
        said = exc.message if isinstance(exc, ImpactbookError) else f"{type(exc).__name__}: {exc}"
        where = (exc.where if isinstance(exc, ImpactbookError) else None) or store.where
        error = StorageError(f"run {run_id} is published in {project.relative(folder)} but not yet in {store.where} "
                             f"({said})", where=where,
                             hint="the next impactbook command that reaches the store finishes it")
        error.run_id = run_id  # (in --json: automation learns which run waits)
        raise error from exc


def _index(project: Project) -> IndexStore:
    return open_index(project)


@dataclass
class Reconciliation:
    """What the opening command had to finish; empty when the project was already consistent."""

    recovered: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    index_rows: list[str] = field(default_factory=list)
    index_rebuilt: str | None = None
    rows: list[dict[str, Any]] | None = field(default=None, repr=False)  # the index as checked, if left unchanged
    ledger: LedgerSnapshot | None = field(default=None, repr=False)  # the ledger, read after those rows

    @property
    def changed(self) -> bool:
        return any((self.recovered, self.finished, self.discarded, self.damaged, self.stored, self.index_rows,
                    self.index_rebuilt))


def reconcile(project: Project, progress: Progress = lambda message: None) -> Reconciliation:
    """Finish every interrupted run and bring the index in line with the run folders and the ledger."""
    done = Reconciliation()
    if not project.runs_dir.is_dir():
        return done
    for hidden in hidden_stagings(project):
        with locked(hidden) as lock:
            if lock is not None:
                shutil.rmtree(hidden)
                done.discarded.append(hidden.name)
                progress(f"discarded {project.relative(hidden)}: a run that stopped before its draft record existed "
                         "(nothing of it had started)")
    frozen: set[PlanVersion] | None = None  # read once, and only when some staging folder is left
    for folder in staged_runs(project):
        staging = Staging.adopt(folder)
        if staging is None:
            continue  # its process is alive
        try:
            frozen = Ledger(project.ledger_path).snapshot().frozen() if frozen is None else frozen
            run_id = recover_staging(project, staging, frozen, progress)
        except OSError as exc:  # one folder that cannot be finished now does not stop the others
            done.unfinished.append(folder.name)
            progress(f"could not finish interrupted run {folder.name} yet: {storage_error(exc, project.relative)}")
            continue
        finally:
            staging.release()
        (done.recovered if run_id else done.damaged).append(folder.name)
    try:
        _finish_published(project, done, progress)
    except OSError as exc:
        progress(f"could not bring the ledger and index up to date yet: {storage_error(exc, project.relative)}")
    return done


def _finish_published(project: Project, done: Reconciliation, progress: Progress) -> None:
    index = _index(project)
    try:
        read = index.rows()
        rows = {row["run_id"]: row for row in read}
    except IndexUnusable as exc:
        count = rebuild(project, skipped=progress)
        done.index_rebuilt = str(exc)
        progress(f"the run index was unusable ({exc}); rebuilt it from {count} run folders and the ledger")
        rows = {row["run_id"]: row for row in index.rows()}
    # read after the rows: a run gets its ledger entry before its index row, so every row read has its entry
    snapshot = Ledger(project.ledger_path).snapshot()
    ledger_runs, frozen = snapshot.runs(), snapshot.frozen()
    folders = published_runs(project)
    store = open_run_store(project)
    stored = _finish_storing(store, folders, ledger_runs, done, progress) if store.remote else set()
    for folder in folders:
        run_id = folder.name
        row, entry = rows.get(run_id), ledger_runs.get(run_id)
        writable = folder.stat().st_mode & 0o222
        if entry is not None and row is not None and not writable and not row_problems(row, entry):
            continue
        if entry is None and row is not None and row["ledger_seq"] is None and not writable \
                and not publishing_mark(project.staging_dir, run_id).exists():
            continue  # a folder put here by hand, already listed as not in the ledger
        with locked(folder) as lock:
            if lock is None:
                continue  # still being published by its own process
            tampered = artifact_problems(folder)
            if not tampered and entry is not None and sha256_file(folder / SUMS) != entry.get("sha256sums"):
                tampered = [f"{run_id}/{SUMS}: not the one the ledger recorded"]  # re-sealed after an edit
            if tampered:  # never ledger, index or seal what does not match its own SHA256SUMS: verify reports it
                kept = ("its ledger entry stands, nothing of it re-indexed or sealed" if entry is not None
                        else "nothing of it ledgered, indexed or sealed")
                progress(f"run {run_id} does not match its SHA256SUMS ({'; '.join(tampered[:2])}): left as it is, "
                         f"{kept}; `impactbook verify` reports it")
                done.damaged.append(run_id)
                continue
            if writable:
                seal(folder)
                if store.remote and stored is not None and run_id not in stored:  # (sealed now: stored now too)
                    try:
                        _store_sealed(store, folder, ledger_runs, stored, done, progress)
                    except Exception as exc:  # out of reach or refused: the next command tries again
                        progress(f"could not bring {store.where} up to date yet: {exc}")
            record = load_record(folder)
            if entry is None and store.remote and (stored is None or run_id not in stored):
                progress(f"run {run_id} is not in {store.where} yet: its ledger entry waits until it is")
                continue  # (the store out of reach, or the upload refused): a ledgered run is a stored run
            ours = publishing_mark(project.staging_dir, run_id).exists() and _plan_frozen(record, frozen)
            if entry is None and not ours:
                _index_unrecorded(project, index, folder, record, row, progress)
                continue
            if entry is None:
                _record_published(project, folder, record, recovered=True)
                done.finished.append(run_id)
                progress(f"recorded run {run_id} in the ledger and index: its process ended after publishing it")
            else:
                index.add(record, sha256_file(folder / SUMS), entry["seq"])
                done.index_rows.append(run_id)
                progress(f"index: {'added' if row is None else 'corrected'} the row of run {run_id} "
                         "from its folder and ledger entry")
    _remove_spent_marks(project, ledger_runs)
    if stored is None:
        return  # which runs the store holds is unknown now: no index row is judged stale
    stale = sorted(set(rows) - {f.name for f in folders} - stored)
    if not (stale or done.finished or done.index_rows or done.index_rebuilt):
        # a command that lists every run, or reads every entry, need not read them again: the two together,
        # in the order they were read (a row without its ledger entry would look unrecorded)
        done.rows, done.ledger = read, snapshot
    if stale:
        index.remove(stale)
        done.index_rows += stale
        progress(f"index: removed {len(stale)} rows of runs whose folders do not exist ({', '.join(stale[:3])}"
                 f"{', ...' if len(stale) > 3 else ''})")


def _plan_frozen(record: RunRecord, frozen: set[PlanVersion]) -> bool:
    """Did this project's ledger freeze the plan version the run records? A run of any other plan (a folder
    copied in from another project) is never published or ledgered as this project's."""
    return (record.plan.id, record.plan.version, record.plan.sha256) in frozen


def _index_unrecorded(project: Project, index: IndexStore, folder: Path, record: RunRecord, row: dict | None,
                      progress: Progress) -> None:
    """A sealed run folder with no ledger entry that no process of this project was publishing (no publishing
    mark): copied in by hand, or from another project. It is never ledgered (that would vouch for it); it is
    listed NOT IN LEDGER, and verify and gate report it."""
    if row is not None and row["ledger_seq"] is None:
        return
    index.add(record, sha256_file(folder / SUMS), None)
    progress(f"run {folder.name}: {project.relative(folder)} has no ledger entry and was not published by this "
             "project (put there by hand?): not recorded in the ledger, listed as NOT IN LEDGER; "
             "`impactbook verify` reports it")


def _remove_spent_marks(project: Project, ledger_runs: dict[str, dict]) -> None:
    """Publishing marks whose run got its ledger entry (its process died just after), or whose run is
    neither published nor staged any more."""
    if not project.staging_dir.is_dir():
        return
    for mark in project.staging_dir.glob(f"{PUBLISHING}*"):
        run_id = mark.name[len(PUBLISHING):]
        # staging first: a live run's rename moves its folder from there to runs/, never back
        if run_id in ledger_runs or not ((project.staging_dir / run_id).exists()
                                         or (project.runs_dir / run_id).exists()):
            mark.unlink(missing_ok=True)


def _finish_storing(store: RunStore, folders: list[Path], ledger_runs: dict[str, dict], done: Reconciliation,
                    progress: Progress) -> set[str] | None:
    """Put into the remote store each sealed local run it lacks (its process died between the local publish
    and the store's SHA256SUMS); returns the run ids the store holds, None when it is out of reach (later).
    A folder whose SHA256SUMS is not the one its ledger entry records is never stored: the store is
    write-once, and a wrong copy there would keep the true one out for good."""
    stored = None
    try:
        stored = set(store.published())
        for folder in folders:
            if folder.name in stored or folder.stat().st_mode & 0o222 or artifact_problems(folder):
                continue  # sealing and damage are handled below, before anything reaches the store
            with locked(folder) as lock:
                if lock is None:
                    continue  # its own process is still publishing it
                _store_sealed(store, folder, ledger_runs, stored, done, progress)
    except Exception as exc:  # out of reach or refused (whatever the client raised): the next command tries again
        progress(f"could not bring {store.where} up to date yet: {exc}")
    return stored


def _store_sealed(store: RunStore, folder: Path, ledger_runs: dict[str, dict], stored: set[str],
                  done: Reconciliation, progress: Progress) -> None:
    """Store one sealed, locked run folder whose manifest is the one its ledger entry records (if any)."""
    recorded = ledger_runs.get(folder.name, {}).get("sha256sums")
    if recorded and sha256_file(folder / SUMS) != recorded:
        progress(f"not storing run {folder.name} in {store.where}: {folder.parent.name}/{folder.name}/{SUMS} "
                 "is not the manifest its ledger entry records (run `impactbook verify`)")
        return
    store.publish(folder.name, folder)
    stored.add(folder.name)
    done.stored.append(folder.name)
    progress(f"stored run {folder.name} in {store.where}: it was published in runs/ but not yet there (a "
             "publication interrupted, or a run from before the project used this store)")


def recover_staging(project: Project, staging: Staging, frozen: set[PlanVersion],
                    progress: Progress) -> str | None:
    """Publish what a dead process left in `staging` (which we have locked). Returns the run id, or None
    when the folder is moved aside: no plan or draft (never made by impactbook), or a plan version not in
    `frozen` (this project's ledger never froze it)."""
    folder = staging.folder
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink()
    notebook = _salvage_notebook(folder / "notebook.ipynb")
    try:
        plan = plan_from_canonical(json.loads(staging.path("plan.json").read_text(encoding="utf-8")))
        complete = staging.path("run.json").is_file() and staging.path("scraps.json").is_file()
        source = "run.json" if complete else DRAFT
        record = RunRecord.model_validate_json(staging.path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return _move_aside(project, folder, f"it holds no readable plan and record ({exc})", progress)
    if not _plan_frozen(record, frozen):
        return _move_aside(project, folder, f"its run records plan {record.plan.id} version {record.plan.version} "
                                            f"({record.plan.sha256[:12]}…), which this project's ledger never froze "
                                            "(copied from another project?); it is not published", progress)
    if complete:
        scraps = json.loads(staging.path("scraps.json").read_text(encoding="utf-8"))
        how = f"finished publishing run {record.run_id} ({record.status.value}): its result was complete"
    else:
        refused = list(record.gate.get("inadmissible") or [])
        if refused:  # its gate had refused it, so no cell ran: stored as it would have been, without the kernel's
            staging.discard_kernel_output()
            notebook, status = None, Status.INADMISSIBLE
            cause = "the process was killed after its gate refused the run, before it was stored"
        else:
            status, cause = Status.FAILED, _cause(staging, notebook)
        errors = [f"interrupted: {cause}; recovered at {utc_now()}"]
        verdicts = final_verdicts(plan, status, {}, refused, list(record.gate.get("deviations") or []), errors,
                                  record.labels)
        record = record.model_copy(update={"status": status, "errors": errors, "verdicts": verdicts,
                                           "decision": decide(plan, status, verdicts, labels=record.labels)})
        scraps = {}
        how = f"recovered interrupted run {record.run_id} as {status.value} ({cause})"
    publish_run(project, staging, record, plan, scraps, notebook)
    progress(how)
    return record.run_id


def _move_aside(project: Project, folder: Path, why: str, progress: Progress) -> None:
    """A staging folder that is not a run of this project's to finish: kept in .damaged/ for a person to inspect."""
    target = project.staging_dir / DAMAGED / folder.name
    target.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(target)
    progress(f"moved {project.relative(folder)} aside to {project.relative(target)}: {why}")


def _salvage_notebook(path: Path) -> Path | None:
    """The executed notebook if it can be read; one that cannot is kept as an opaque file, never parsed
    as part of the record."""
    if not path.is_file():
        return None
    import nbformat

    try:
        nbformat.read(path, as_version=4)
        return path
    except Exception:
        path.rename(path.with_name(PARTIAL_NOTEBOOK))
        return None


def _cause(staging: Staging, notebook: Path | None) -> str:
    noted = staging.path(CAUSE)
    said = noted.read_text(encoding="utf-8", errors="replace").strip() if noted.is_file() else ""
    if said:  # (blank: room kept for a note that never came)
        return said
    where = "before its kernel started"
    if notebook is not None:
        import nbformat

        cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
        ran = sum(1 for c in cells if c.get("metadata", {}).get("papermill", {}).get("status") == "completed")
        where = (f"while its kernel was executing the template ({ran} of {len(cells)} code cells completed)"
                 if ran < len(cells) else f"after its kernel had run all {ran} code cells, before the run was stored")
    elif staging.path(PARTIAL_NOTEBOOK).is_file():
        where = "while its kernel was executing the template (the notebook it left is unreadable and kept as is)"
    return f"the process running it was killed {where}"
