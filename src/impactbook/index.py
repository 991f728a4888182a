"""The run catalog index (SQLite by default): derived from run folders and ledger, rebuildable.

Nothing here is a source of truth. A corrupt, stale or outdated index is rebuilt from the run folders
and the ledger (see recovery.py); `verify` compares every row with both.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import RunNotFoundError
from .hashing import sha256_file
from .ledger import Ledger
from .project import Project
from .record import RunRecord
from .store import SUMS, published_runs

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    plan_id TEXT NOT NULL,
    plan_version INTEGER NOT NULL,
    plan_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    decision TEXT NOT NULL,
    verdicts TEXT NOT NULL,
    baseline TEXT,
    candidate TEXT,
    template TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    sums_sha256 TEXT NOT NULL,
    ledger_seq INTEGER,
    labels TEXT NOT NULL DEFAULT '',
    primary_effect TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_plan ON runs (plan_id, run_id);
"""
COLUMNS = ("run_id", "plan_id", "plan_version", "plan_sha256", "status", "decision", "verdicts", "baseline",
           "candidate", "template", "started_at", "finished_at", "sums_sha256", "ledger_seq", "labels", "primary_effect")
# what a row must agree on with the run's ledger entry (row column -> ledger field)
LEDGER_FIELDS = {"plan_id": "plan_id", "plan_version": "plan_version", "plan_sha256": "plan_hash", "status": "status",
                 "decision": "decision", "sums_sha256": "sha256sums", "ledger_seq": "seq"}


class IndexUnusable(Exception):
    """The index file is corrupt or from another schema: rebuild it."""


def _row(record: RunRecord, sums_sha256: str, ledger_seq: int | None) -> tuple[Any, ...]:
    return (record.run_id, record.plan.id, record.plan.version, record.plan.sha256, record.status.value,
            record.decision.action.value, json.dumps({v.key: v.verdict.value for v in record.verdicts}),
            record.model_change.get("baseline"), record.model_change.get("candidate"), record.template.name,
            record.timings.started_at, record.timings.finished_at, sums_sha256, ledger_seq, ",".join(record.labels),
            _primary_effect(record))


def _primary_effect(record: RunRecord) -> str | None:
    primary = {v.metric for v in record.verdicts if v.role == "primary"}
    return next((e.sentence for e in record.effects if e.metric in primary), None)


@dataclass(frozen=True)
class RunIndex:
    path: Path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(self.path, timeout=30)
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and not connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                connection.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
            elif version != SCHEMA_VERSION:
                connection.close()
                raise IndexUnusable(f"schema version {version}, this release reads {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise IndexUnusable(str(exc)) from exc
        return connection

    @contextlib.contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as connection:
            try:
                yield connection
            except sqlite3.OperationalError:
                raise  # locked or disk full: the caller's business, not a corrupt index
            except sqlite3.DatabaseError as exc:
                raise IndexUnusable(str(exc)) from exc

    def add(self, record: RunRecord, sums_sha256: str, ledger_seq: int | None) -> None:
        """Insert or refresh a run's row (the folder and ledger are the truth, so the latest wins)."""
        with self._session() as connection, connection:
            connection.execute(f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(COLUMNS))})",
                               _row(record, sums_sha256, ledger_seq))

    def remove(self, run_ids: list[str]) -> None:
        with self._session() as connection, connection:
            connection.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in run_ids])

    def rows(self, plan_id: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM runs", ()
        if plan_id:
            query, args = query + " WHERE plan_id = ?", (plan_id,)
        with self._session() as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(query + " ORDER BY run_id", args).fetchall()
            try:
                return [{**dict(r), "verdicts": json.loads(r["verdicts"])} for r in rows]
            except ValueError as exc:
                raise IndexUnusable(f"a row's verdicts are not JSON ({exc})") from exc

    def find(self, run: str) -> dict[str, Any]:
        """A run by id or unique prefix ("latest" for the newest)."""
        rows = self.rows()
        if run == "latest" and rows:
            return rows[-1]
        matches = [r for r in rows if r["run_id"] == run] or [r for r in rows if r["run_id"].startswith(run)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFoundError(f"no run {run!r} in the index", where=str(self.path),
                                   hint="`impactbook runs list` shows them")
        raise RunNotFoundError(f"{run!r} matches {len(matches)} runs", hint="give more of the run id")


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


def rebuild(project: Project) -> int:
    """Rebuild from the run folders and the ledger alone into a file of its own, swapped in atomically.
    Concurrent rebuilds take turns (a lock file), so none breaks another's."""
    project.runs_dir.mkdir(parents=True, exist_ok=True)
    lock_path = project.index_path.with_name(project.index_path.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ledger_runs = Ledger(project.ledger_path).runs()
        fresh = RunIndex(project.index_path.with_name(f".{project.index_path.name}.{os.getpid()}."
                                                      f"{secrets.token_hex(4)}.rebuild"))
        try:
            count = 0
            for folder in published_runs(project):
                record = load_record(folder)
                entry = ledger_runs.get(record.run_id)
                fresh.add(record, sha256_file(folder / SUMS), entry["seq"] if entry else None)
                count += 1
            with closing(fresh._connect()):
                pass
            fresh.path.replace(project.index_path)
            for stale in ("-journal", "-wal", "-shm"):
                Path(str(project.index_path) + stale).unlink(missing_ok=True)
        finally:
            fresh.path.unlink(missing_ok=True)
    return count
