"""The run index in one SQLite file beside the runs: the default, no server needed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from .index_store import MIGRATIONS, SCHEMA_VERSION, IndexStore, IndexUnusable, Row, check_schema


@dataclass
class SqliteIndexStore(IndexStore):
    path: Path

    @classmethod
    def from_url(cls, url: str) -> "SqliteIndexStore":
        """`sqlite:///abs/path.sqlite` (three slashes and an absolute path)."""
        return cls(Path(unquote(urlsplit(url).path)))

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def start_over(self) -> str:
        return f"delete {self.path.name}"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(self.path, timeout=30)
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                version = _create_schema(connection)
            if version != SCHEMA_VERSION:
                connection.close()
                check_schema(version, self.where, self.start_over)
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

    def _fetch(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        with self._session() as connection:
            return connection.execute(sql, args).fetchall()

    def _write(self, sql: str, rows: list[Row]) -> None:
        with self._session() as connection, connection:
            connection.executemany(sql, rows)

    def replace_all(self, rows: Iterable[Row]) -> None:
        """Write a file of its own and swap it in (rename is atomic); a lock file makes rebuilds take turns."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._refuse_a_newer_schema()
            fresh = SqliteIndexStore(self.path.with_name(f".{self.path.name}.{os.getpid()}."
                                                         f"{secrets.token_hex(4)}.rebuild"))
            try:
                fresh._write(fresh._upsert(), list(rows))
                fresh.path.replace(self.path)
                for stale in ("-journal", "-wal", "-shm"):
                    Path(str(self.path) + stale).unlink(missing_ok=True)
            finally:
                fresh.path.unlink(missing_ok=True)

    def _refuse_a_newer_schema(self) -> None:
        """A rebuild replaces a corrupt or older file, never one a newer release wrote (check_schema)."""
        try:
            with closing(sqlite3.connect(self.path.absolute().as_uri() + "?mode=ro", uri=True)) as connection:
                found = connection.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError:  # missing or not a database: nothing to keep
            return
        if found > SCHEMA_VERSION:
            check_schema(found, self.where, self.start_over)


def _create_schema(connection: sqlite3.Connection) -> int:
    """Create the tables of an empty file and return the schema version found.

    Python's sqlite3 runs CREATE statements outside any transaction, one commit each, so a second
    process could see tables without a version yet and refuse the file. BEGIN IMMEDIATE takes the
    write lock first: one process creates everything and sets the version in one commit, the others
    wait, then read its version. A file with tables but no version is not ours and stays refused."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and not connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
            for statement in MIGRATIONS[SCHEMA_VERSION]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            version = SCHEMA_VERSION
        connection.execute("COMMIT")
    except BaseException:
        connection.rollback()
        raise
    return version
