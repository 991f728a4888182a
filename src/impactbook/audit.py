"""Verify: recompute every artifact hash and the ledger's hash chain, tie each run to its one ledger
entry, and compare the derived index with both. `gate` acts only on a run that passes these checks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends.index_store import IndexFromNewerRelease, IndexOfAnotherProject
from .backends.run_store import UNLISTED, UNLISTED_IN_CHANGED, RunStore, StoreMarkUnusable, open_run_store
from .durable import locked
from .errors import ProjectError, RunNotFoundError, StorageError
from .hashing import sha256_file
from .index import (IndexUnusable, load_record, open_index, rebuilt_only_when_asked, row_problems, run_folder,
                    shown_where)
from .ledger import Ledger, PlanVersion, chain_problems, frozen_versions
from .project import Project
from .publication import DAMAGED
from .record import GATE_EXIT, Action, RunRecord
from .store import SUMS, artifact_problems, hidden_stagings, published_runs, publishing_mark, staged_runs


@dataclass(frozen=True)
class VerifyReport:
    checked_runs: list[str]
    ledger_entries: int
    problems: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    def record(self) -> dict[str, object]:
        return {"intact": self.intact, "checked_runs": self.checked_runs, "ledger_entries": self.ledger_entries,
                "problems": self.problems, "in_progress": self.in_progress}


def ledger_problems(ledger: Ledger) -> tuple[list[dict[str, Any]], list[str]]:
    """The entries, and what is wrong with the chain: edits, gaps, a plan version or a run recorded twice."""
    try:
        entries = ledger.entries()
    except Exception as exc:  # an unreadable ledger is itself the finding
        return [], [str(exc)]
    return entries, chain_problems(entries, ledger.path.name)[0] + recorded_twice(entries, ledger.path.name)


def recorded_twice(entries: list[dict[str, Any]], name: str) -> list[str]:
    """A plan version or a run recorded more than once."""
    problems = []
    versions = Counter((e.get("plan_id"), e.get("version")) for e in entries if e.get("kind") in ("freeze", "amend"))
    problems += [f"{name}: plan {plan!r} version {version} is recorded {count} times"
                 for (plan, version), count in versions.items() if count > 1]
    runs = Counter(e.get("run_id") for e in entries if e.get("kind") == "run")
    problems += [f"{name}: run {run} is recorded {count} times" for run, count in runs.items() if count > 1]
    return problems


def record_problems(record: RunRecord, entry: dict[str, Any]) -> list[str]:
    """Where run.json disagrees with the run's ledger entry on what automation acts on."""
    found = []
    if entry.get("status") != record.status.value:
        found.append(f"status is {record.status.value}, the ledger says {entry.get('status')}")
    if entry.get("decision") != record.decision.action.value:
        found.append(f"decision is {record.decision.action.value}, the ledger says {entry.get('decision')}")
    verdicts = {v.key: v.verdict.value for v in record.verdicts}
    if "verdicts" in entry and entry["verdicts"] != verdicts:
        found.append(f"verdicts are {verdicts}, the ledger says {entry['verdicts']}")
    return found


def run_problems(project: Project, folder: Path, entry: dict[str, Any] | None, frozen: set[PlanVersion],
                 record: RunRecord | None = None, kept: dict[str, bytes] | None = None) -> list[str]:
    """Everything that would make a published run untrustworthy, each named by its path; `frozen`: the plan
    versions the ledger froze (a run of another plan is not this project's); `record` is its run.json when
    the caller has already read it; `kept` receives the artifacts' bytes as hashed."""
    shown = project.relative(project.runs_dir)
    problems = [f"{shown}/{p}" for p in artifact_problems(folder, kept)]
    name = folder.name
    if entry is None:
        if publishing_mark(project.staging_dir, name).exists():  # killed between its rename and its entry
            return problems + [f"{shown}/{name}: not recorded in the ledger yet: its run was stopped after it was "
                               "published, before its ledger entry; the next impactbook command (e.g. `impactbook "
                               "runs list`) appends the entry and indexes it"]
        return problems + [f"{shown}/{name}: not recorded in the ledger"]
    if (entry.get("plan_id"), entry.get("plan_version"), entry.get("plan_hash")) not in frozen:
        problems.append(f"{shown}/{name}: ran plan {entry.get('plan_id')} version {entry.get('plan_version')} "
                        f"({str(entry.get('plan_hash'))[:12]}…), which this ledger never froze (ledger entry "
                        f"{entry['seq']}): not a run of this project's preregistered plans")
    if (folder / SUMS).is_file() and sha256_file(folder / SUMS) != entry.get("sha256sums"):
        problems = against_a_changed_manifest(f"{shown}/{name}/{SUMS}", entry, problems)
    if not problems:
        try:
            record = record or load_record(folder)
        except (OSError, ValueError) as exc:
            return [f"{shown}/{name}/run.json: unreadable ({exc})"]
        problems += [f"{shown}/{name}/run.json: {p} (entry {entry['seq']})" for p in record_problems(record, entry)]
    if folder.stat().st_mode & 0o222:
        problems.append(f"{shown}/{name}: folder is writable (not sealed: publication was interrupted, or its permissions were changed)")
    return problems


def verify(project: Project, runs: list[str] | None = None, anchor_files: list[Path] | None = None) -> VerifyReport:
    """Everything, or the runs named; the ledger is checked against every git-tag anchor and `anchor_files`."""
    from .anchors import anchor_problems, file_anchors, git_anchors

    ledger = Ledger(project.ledger_path)
    entries, problems = ledger_problems(ledger)
    anchors = git_anchors(project) + [a for path in anchor_files or [] for a in file_anchors(path)]
    problems += anchor_problems(entries, anchors, project.relative(project.ledger_path))
    ledger_runs = {e["run_id"]: e for e in entries if e.get("kind") == "run"}
    folders = {f.name: f for f in published_runs(project)}
    store = open_run_store(project)
    stored = set(store.published()) if store.remote else set()  # a remote store is the truth; runs/ a copy
    shown = project.relative(project.runs_dir)
    publishing = {name for name, folder in folders.items() if name not in ledger_runs and _publishing_now(folder)}
    in_progress: list[str] = sorted(publishing)  # live runs between their rename and their ledger entry
    if runs:
        known = sorted(set(folders) | stored)
        chosen = []
        for wanted in runs:
            matches = [name for name in known if name == wanted] or [n for n in known if n.startswith(wanted)]
            if len(matches) != 1:
                raise RunNotFoundError(f"{wanted!r} matches {len(matches)} runs in {store.where}")
            chosen.append(matches[0])
    else:
        chosen = sorted(set(folders) | stored)
        if not store.remote:
            problems += [f"{shown}/{name}: ledger records this run but its folder is missing"
                         for name in sorted(set(ledger_runs) - set(folders))]
        problems += _staging_problems(project, in_progress)
        unledgered = {name for name in folders if name not in ledger_runs  # (said once, by run_problems)
                      and publishing_mark(project.staging_dir, name).exists()}
        problems += _index_problems(project, (set(folders) | stored) - publishing - unledgered, ledger_runs,
                                    publishing | unledgered)
    frozen = frozen_versions(entries)
    for name in chosen:
        if name in folders and name not in publishing:
            problems += run_problems(project, folders[name], ledger_runs.get(name), frozen)
    if store.remote:
        problems += store_problems(store, ledger_runs, stored, chosen if runs else None)
    return VerifyReport(chosen, len(entries), problems, in_progress)


def _publishing_now(folder: Path) -> bool:
    """A published folder whose owner still holds its lock: a live run between its rename and its ledger
    entry, not a problem (publication.py: the lock moves with the folder)."""
    with locked(folder) as lock:
        return lock is None


def against_a_changed_manifest(manifest: str, entry: dict[str, Any], found: list[str]) -> list[str]:
    """A manifest unlike the one the ledger recorded comes first, and a file it does not list is not called
    added: the manifest may have lost its line."""
    return [f"{manifest}: does not match the hash in ledger entry {entry['seq']}"] + \
        [problem.replace(UNLISTED, UNLISTED_IN_CHANGED) for problem in found]


def store_problems(store: RunStore, ledger_runs: dict[str, dict[str, Any]], stored: set[str],
                   runs: list[str] | None) -> list[str]:
    """A remote store checked on its own: every object re-hashed from the store against its SHA256SUMS, that
    manifest against the run's ledger entry; with no runs named, also the runs the ledger records that the
    store lacks and the publications to it that were interrupted (objects without SHA256SUMS)."""
    wanted = runs if runs is not None else sorted(stored | set(ledger_runs))
    problems = []
    for run_id in wanted:
        found = store.problems(run_id)
        entry = ledger_runs.get(run_id)
        if entry is None and run_id in stored:
            found.append(f"{store.where}/{run_id}: not recorded in the ledger")
        elif entry is not None and run_id in stored and store.manifest_sha256(run_id) != entry.get("sha256sums"):
            found = against_a_changed_manifest(store.key_url(run_id, SUMS), entry, found)
        problems += found
    if runs is None:
        problems += [f"{store.where}/{run_id}/: objects without {SUMS}: its publication to the store was "
                     "interrupted, so it is not published; the next impactbook command where it ran finishes it"
                     for run_id in store.unfinished() if run_id not in ledger_runs]
        problems += [f"{url}: an object outside every run's folder (its key has no run id); impactbook never "
                     "writes one there" for url in store.strays()]
    return problems


def _staging_problems(project: Project, in_progress: list[str]) -> list[str]:
    problems = []
    hidden = set(hidden_stagings(project))
    for folder in [*staged_runs(project), *hidden]:
        with locked(folder) as lock:
            if lock is None:
                in_progress.append(folder.name)
            elif folder in hidden:
                problems.append(f"{project.relative(folder)}: a run stopped before its draft record existed; the "
                                "next impactbook command discards it (nothing of it had started)")
            else:
                problems.append(f"{project.relative(folder)}: a run was interrupted before publication; the next "
                                "impactbook command publishes it as FAILED")
    damaged = project.staging_dir / DAMAGED
    if damaged.is_dir():
        problems += [f"{project.relative(p)}: a staging folder that was no run of this project's to finish (no "
                     "readable plan and record, or a plan its ledger never froze) was moved here; inspect it and "
                     "delete it" for p in sorted(damaged.iterdir())]
    return problems


def _index_problems(project: Project, folders: set[str], ledger_runs: dict[str, dict[str, Any]],
                    publishing: set[str]) -> list[str]:
    try:
        index = open_index(project)
    except IndexOfAnotherProject as exc:  # (another project's own runs/index.sqlite)
        return [str(exc)]
    shown = shown_where(project, index)
    try:
        rows = {row["run_id"]: row for row in index.rows()}
    except (IndexFromNewerRelease, IndexOfAnotherProject) as exc:
        return [f"{shown}: {exc.message} ({exc.hint})"]
    except StoreMarkUnusable as exc:
        return [str(exc)]
    except IndexUnusable as exc:
        if rebuilt_only_when_asked(index, open_run_store(project)):
            return [f"{shown}: unusable ({exc}); `impactbook index rebuild` in the copy whose runs it lists "
                    "rebuilds it"]
        return [f"{shown}: unusable ({exc}); the next impactbook command rebuilds it"]
    problems = [f"{shown}: run {run_id} has a row but no folder"
                for run_id in sorted(set(rows) - set(folders) - publishing)]
    problems += [f"{shown}: run {run_id} is missing" for run_id in sorted(set(folders) - set(rows))]
    for run_id, row in sorted(rows.items()):
        if run_id in folders:
            problems += [f"{shown}: run {run_id}: {p}" for p in row_problems(row, ledger_runs.get(run_id))]
    return problems


HUMAN_ACTIONS = {"advance": Action.SHIP, "hold": Action.HOLD, "rollback": Action.ROLLBACK}


@dataclass(frozen=True)
class GateCheck:
    """What `gate` acts on: a run whose artifacts, ledger entry and record agree, and the decision that
    stands — the latest human decision recorded for it, else the automatic one. `record` is None when the
    run's objects in a remote store could not be fetched whole: it does not verify, and there is no decision."""

    run_id: str
    record: RunRecord | None
    problems: list[str]
    human: dict[str, Any] | None

    @property
    def action(self) -> Action | None:
        if self.record is None:
            return None
        return HUMAN_ACTIONS[self.human["action"]] if self.human else self.record.decision.action

    @property
    def exit_code(self) -> int:
        return 3 if self.problems or self.action is None else GATE_EXIT[self.action]

    def summary(self) -> dict[str, Any]:
        if self.record is None:
            return {"run_id": self.run_id, "verified": False, "problems": self.problems, "automatic_decision": None,
                    "decision": None, "human_decision": self.human, "exit_code": self.exit_code}
        return {**self.record.summary(), "verified": not self.problems, "problems": self.problems,
                "automatic_decision": self.record.decision.action.value, "decision": self.action.value,
                "human_decision": self.human, "exit_code": self.exit_code}


def gate_check(project: Project, run: str) -> GateCheck:
    """Verify the run's folder against SHA256SUMS, the ledger chain, and its one ledger entry before its
    decision may reach automation. A run kept only in a remote store is fetched first; one whose objects
    cannot be fetched whole (changed, missing) does not verify, and its problems are the store's (a store out
    of reach is an error, exit 1: nothing could be checked)."""
    entries, problems = ledger_problems(Ledger(project.ledger_path))
    try:
        run_id = open_index(project).find(run)["run_id"]
    except RunNotFoundError:  # not indexed: a run the ledger records whose folder is gone does not verify
        ledgered = sorted({e["run_id"] for e in entries if e.get("kind") == "run"
                           and str(e.get("run_id", "")).startswith(run)})
        if len(ledgered) != 1:
            raise
        shown = f"{project.relative(project.runs_dir)}/{ledgered[0]}"
        return GateCheck(ledgered[0], None, problems + [f"{shown}: ledger records this run but its folder is "
                                                        "missing"], None)
    store = open_run_store(project)
    entry = next((e for e in entries if e.get("kind") == "run" and e.get("run_id") == run_id), None)
    humans = [e for e in entries if e.get("kind") == "decision" and e.get("run_id") == run_id]
    human = {k: humans[-1].get(k) for k in ("seq", "time", "action", "by", "reason", "automatic", "override")} \
        if humans else None
    try:
        folder = run_folder(project, run_id, store)
    except (ProjectError, StorageError):  # a changed or missing object; a store out of reach raises again here
        found = store_problems(store, {run_id: entry} if entry else {}, set(store.published()), [run_id])
        if not found:
            raise
        return GateCheck(run_id, None, problems + found, human)
    if not folder.is_dir():
        raise RunNotFoundError(f"run folder {project.relative(folder)} is missing", hint="run `impactbook verify`")
    problems += run_problems(project, folder, entry, frozen_versions(entries))
    if store.remote:  # the store is the truth: its objects re-hashed, its SHA256SUMS against the ledger
        problems += store_problems(store, {run_id: entry} if entry else {}, set(store.published()), [run_id])
    return GateCheck(run_id, load_record(folder), problems, human)
