"""The run catalog index (SQLite by default, PostgreSQL by URL; see backends/): derived from run folders and ledger, rebuildable.

Nothing here is a source of truth. A corrupt, stale or outdated index is rebuilt from the run folders
and the ledger (see recovery.py); `verify` compares every row with both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote, urlsplit

from .backends.index_store import (IndexOfAnotherProject, IndexOfAnotherStore, IndexStore, IndexStores, IndexUnusable,
                                   default_index_stores, index_row)
from .backends.run_store import RunStore, cache_dir, open_run_store
from .backends.sqlite_index import SqliteIndexStore
from .catalog import project_setting
from .errors import ProjectError, StorageError
from .hashing import sha256_file
from .ledger import Ledger
from .project import Project
from .record import RunRecord
from .store import SUMS, published_runs

# what a row must agree on with the run's ledger entry (row column -> ledger field)
LEDGER_FIELDS = {"plan_id": "plan_id", "plan_version": "plan_version", "plan_sha256": "plan_hash", "status": "status",
                 "decision": "decision", "sums_sha256": "sha256sums", "ledger_seq": "seq"}
INDEX_ENV = "IMPACTBOOK_INDEX"
__all__ = ["IndexUnusable", "RunIndex", "SharedIndexUnusable", "index_url", "open_index", "load_record",
           "rebuilt_only_when_asked", "row_problems", "rebuild", "run_folder"]

RunIndex = SqliteIndexStore  # the default backend, addressed by its file


class SharedIndexUnusable(ProjectError):
    """An unusable index outside runs/ with a local run store: whose runs it listed cannot be read, and
    rebuilding it from this copy's runs would hand it to this copy, so only `impactbook index rebuild` does."""


def rebuilt_only_when_asked(index: IndexStore, run_store: RunStore) -> bool:
    """Whether an unusable `index` is rebuilt only by `impactbook index rebuild` (SharedIndexUnusable): it lies
    outside runs/ (it records a run store) and this copy's run store is local, so it may list another copy's."""
    return index.run_store is not None and not run_store.remote


def index_url(project: Project) -> str:
    """$IMPACTBOOK_INDEX (e.g. postgresql://host/db), else catalog.yaml's `settings.index`, else the SQLite
    file at today's path."""
    if url := os.environ.get(INDEX_ENV):
        return url
    if (url := project_setting(project, "index")) and urlsplit(url).scheme == "sqlite":
        # catalog.yaml comes with the project (a pull request can change it): its SQLite file stays in runs/,
        # where a rebuild may replace it, never a file of the user's elsewhere
        path = Path(unquote(urlsplit(url).path))
        if path.resolve().parent != project.runs_dir.resolve():  # (a sub-folder of runs/ would pass for a run)
            raise ProjectError(f"{project.relative(project.catalog_path)}: settings.index {url!r} is not a file "
                               f"directly in the project's {project.relative(project.runs_dir)}/ folder",
                               hint=f"remove it (default: {project.relative(project.index_path)}), or set {INDEX_ENV} "
                                    "on this machine")
    return url or "sqlite://" + quote(str(project.index_path.resolve()))


def open_index(project: Project, stores: IndexStores | None = None) -> IndexStore:
    """The project's index store, chosen by its URL among `stores` (default: SQLite and PostgreSQL); at first
    use it checks that it holds this project's runs (IndexStore.own)."""
    index = (stores or default_index_stores()).open(index_url(project))
    path = getattr(index, "path", None)
    path = path.resolve() if path is not None else None  # (through a symlink, or runs/../runs/)
    if path == project.index_path.resolve():
        index.owned = True  # runs/index.sqlite is impactbook's own: whatever is there may be rebuilt
        return index.expect_owner(Ledger(project.ledger_path).identity())  # (it lives in its run store)
    if (other := _project_whose_own_index(path)) is not None:
        raise IndexOfAnotherProject(
            f"the run index is the own index of the project at {other.root} (its runs/ folder lists its runs), not "
            "an index this project may share; used here, each project would remove the other's runs from it as "
            "runs it has no folder for, so it is left as it is", where=index.where,
            hint=f"unset {INDEX_ENV}, or point it at a file outside every project's runs/ folder")
    return index.expect_owner(Ledger(project.ledger_path).identity(), lambda: open_run_store(project).identity())


def _project_whose_own_index(path: Path | None) -> Project | None:
    """The project whose runs/index.sqlite `path` (resolved) is (another clone's, say), if any: a project's own
    file records no run store, so the ownership check between copies cannot see that it lists its runs."""
    if path is None:
        return None
    other = Project(path.parent.parent)
    return other if other.catalog_path.is_file() and other.index_path.resolve() == path else None


def shown_where(project: Project, index: IndexStore) -> str:
    """The index as users read it: runs/index.sqlite, or its URL without credentials."""
    return index.where if "://" in index.where else project.relative(index.where)


def load_record(folder: Path) -> RunRecord:
    return RunRecord.model_validate_json((folder / "run.json").read_text(encoding="utf-8"))


def row_problems(row: dict[str, Any], entry: dict[str, Any] | None) -> list[str]:
    """Where an index row disagrees with the run's ledger entry (the index is derived; the ledger wins)."""
    if entry is None:
        return ["no ledger entry records this run"]
    problems = [f"{column} is {row[column]!r}, the ledger says {entry.get(field)!r}"
                for column, field in LEDGER_FIELDS.items() if row.get(column) != entry.get(field)]
    if "verdicts" in entry and row.get("verdicts") != entry["verdicts"]:
        problems.append(f"verdicts are {row.get('verdicts')}, the ledger says {entry['verdicts']}")
    return problems


def run_folder(project: Project, run_id: str, run_store: RunStore | None = None) -> Path:
    """A published run's folder to read: runs/<run id> when this machine has it, else a read-only copy fetched
    from the remote run store into runs/.cache/<run id>-<manifest hash>/."""
    local = project.runs_dir / run_id
    run_store = run_store or open_run_store(project)
    if local.is_dir() or not run_store.remote or run_id not in run_store.published():
        return local
    return run_store.fetch(run_id, cache_dir(project))


def _unsealed_record(folder: Path, entry: dict[str, Any] | None) -> str | None:
    """Why the run.json the index would be rebuilt from is not the one published, if it is not: its SHA256SUMS
    differs from the one the ledger recorded, or it differs from its line there. Two small files per run; the
    other artifacts are `verify`'s (the index holds only what run.json says)."""
    from .backends.run_store import parse_sums

    sums = folder / SUMS
    if not sums.is_file():
        return f"{SUMS} is missing"
    if entry is not None and sha256_file(sums) != entry.get("sha256sums"):
        return f"its {SUMS} is not the one the ledger recorded"
    recorded = parse_sums(sums.read_bytes()).get("run.json")
    if not (folder / "run.json").is_file() or sha256_file(folder / "run.json") != recorded:
        return f"run.json does not match {SUMS}"
    return None


def rebuild(project: Project, stores: IndexStores | None = None, run_store: RunStore | None = None,
            skipped: Callable[[str], None] = lambda message: None, take_over: bool = False) -> int:
    """Rebuild from the run folders (and a remote run store's runs) and the ledger alone; the index store swaps
    the content in atomically and concurrent rebuilds take turns. A stored run that cannot be read whole (an
    object that does not match its SHA256SUMS, one missing) is left out and told to `skipped`: one damaged
    run must not leave every other run unindexed (`verify` names it). `take_over`: an index that lists another
    copy's run store is handed to this copy (`impactbook index rebuild` asks for it; nothing else does)."""
    project.runs_dir.mkdir(parents=True, exist_ok=True)
    ledger_runs = Ledger(project.ledger_path).runs()
    run_store = run_store or open_run_store(project)
    folders = {folder.name: folder for folder in published_runs(project)}
    if run_store.remote:  # the store is the truth: what it holds, read from a fetched copy when not local
        for run_id in sorted(set(run_store.published()) - set(folders)):
            try:
                folders[run_id] = run_store.fetch(run_id, cache_dir(project))
            except (ProjectError, StorageError) as exc:
                hint = "" if exc.hint else " (run `impactbook verify`)"
                skipped(f"run {run_id} left out of the index: {exc}{hint}")
    rows = []
    for run_id, folder in sorted(folders.items()):
        if problem := _unsealed_record(folder, ledger_runs.get(run_id)):
            skipped(f"run {run_id} left out of the index: {problem} (run `impactbook verify`)")
            continue
        record = load_record(folder)
        if record.run_id != run_id:
            skipped(f"run {run_id} left out of the index: its run.json names run {record.run_id} "
                    "(run `impactbook verify`)")
            continue
        entry = ledger_runs.get(record.run_id)
        rows.append(index_row(record, sha256_file(folder / SUMS), entry["seq"] if entry else None))
    index = open_index(project, stores)
    try:
        index.own()  # never replace another project's runs, nor, unless asked to, another copy's of this one
    except IndexOfAnotherStore:
        if not take_over:
            raise
    except IndexUnusable as exc:  # an older or broken index: replaced whole, if it cannot be another copy's
        if rebuilt_only_when_asked(index, run_store) and not take_over:
            raise SharedIndexUnusable(
                f"the run index is unusable ({exc}); it is outside runs/, where it may list the runs of another "
                "copy of this project, so it is not rebuilt from this copy's runs unasked", where=index.where,
                hint="run `impactbook index rebuild` in the copy whose runs it lists") from exc
    index.replace_all(rows, store=index.run_store() if take_over and index.run_store is not None else None)
    index.own(again=True)  # (a replaced SQLite file is claimed anew)
    return len(rows)
