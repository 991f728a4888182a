"""The run catalog index (SQLite by default): derived from run folders and ledger, rebuildable."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RunNotFoundError
from .hashing import sha256_file
from .ledger import Ledger
from .project import Project
from .record import RunRecord
from .store import SUMS, published_runs

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
    ledger_seq INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_plan ON runs (plan_id, run_id);
"""
COLUMNS = ("run_id", "plan_id", "plan_version", "plan_sha256", "status", "decision", "verdicts", "baseline",
           "candidate", "template", "started_at", "finished_at", "sums_sha256", "ledger_seq")


def _row(record: RunRecord, sums_sha256: str, ledger_seq: int | None) -> tuple[Any, ...]:
    return (record.run_id, record.plan.id, record.plan.version, record.plan.sha256, record.status.value,
            record.decision.action.value, json.dumps({v.metric: v.verdict.value for v in record.verdicts}),
            record.model_change.get("baseline"), record.model_change.get("candidate"), record.template.name,
            record.timings.started_at, record.timings.finished_at, sums_sha256, ledger_seq)


@dataclass(frozen=True)
class RunIndex:
    path: Path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30)
        connection.executescript(SCHEMA)
        return connection

    def add(self, record: RunRecord, sums_sha256: str, ledger_seq: int | None) -> None:
        with closing(self._connect()) as connection, connection:
            connection.execute(f"INSERT INTO runs VALUES ({','.join('?' * len(COLUMNS))})",
                               _row(record, sums_sha256, ledger_seq))

    def rows(self, plan_id: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM runs", ()
        if plan_id:
            query, args = query + " WHERE plan_id = ?", (plan_id,)
        with closing(self._connect()) as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(query + " ORDER BY run_id", args).fetchall()
        return [{**dict(r), "verdicts": json.loads(r["verdicts"])} for r in rows]

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
                                   hint="`impactbook runs list` shows them; `impactbook index rebuild` if runs/ was copied")
        raise RunNotFoundError(f"{run!r} matches {len(matches)} runs", hint="give more of the run id")


def load_record(folder: Path) -> RunRecord:
    return RunRecord.model_validate_json((folder / "run.json").read_text(encoding="utf-8"))


def rebuild(project: Project) -> int:
    """Rebuild from the run folders and the ledger alone, into a new file swapped in atomically."""
    ledger_runs = Ledger(project.ledger_path).runs()
    fresh = RunIndex(project.index_path.with_suffix(".rebuild.sqlite"))
    fresh.path.unlink(missing_ok=True)
    count = 0
    for folder in published_runs(project):
        record = load_record(folder)
        entry = ledger_runs.get(record.run_id)
        fresh.add(record, sha256_file(folder / SUMS), entry["seq"] if entry else None)
        count += 1
    with closing(fresh._connect()):
        pass
    fresh.path.replace(project.index_path)
    return count
