"""The run index in one SQLite file beside the runs: the default, no server needed."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from ..durable import read_regular
from .index_store import (MIGRATIONS, SCHEMA_VERSION, STORE_TABLE, IndexStore, IndexUnusable, NotAnIndexFile, Row,
                          check_schema)


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
INDEX_SETTINGS = "$IMPACTBOOK_INDEX and catalog.yaml's settings.index"


@dataclass
class SqliteIndexStore(IndexStore):
    path: Path
    owned: bool = False  # the project's own runs/index.sqlite: a file there that is not SQLite is rebuilt
    takes_turns: bool = True  # (False for a rebuild's own new file, which no one else opens)
    store_table: bool | None = None  # whether the file has index_store (None: not looked yet)

    @classmethod
    def from_url(cls, url: str) -> "SqliteIndexStore":
        """`sqlite:///abs/path.sqlite` (three slashes and an absolute path)."""
        path = unquote(urlsplit(url).path)
        if not path.startswith("/") or path.endswith("/") or not Path(path).name:
            raise NotAnIndexFile(f"the SQLite index URL {url!r} names no file: it takes an absolute path, "
                                 "sqlite:///abs/path/index.sqlite", hint=f"check {INDEX_SETTINGS}")
        return cls(Path(path))

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def start_over(self) -> str:
        return f"delete {self.path.name}"

    def _refuse_a_foreign_file(self) -> None:
        """Only a missing file, an empty one or a SQLite database may be the index (and so be replaced by a
        rebuild); anything else is refused by name, read 16 bytes at a time. The project's own file is always
        the index's to replace."""
        if self.owned:
            return
        try:
            head = read_regular(self.path, len(SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise NotAnIndexFile(f"cannot be read as the run index ({exc.strerror})", where=self.where,
                                 hint=f"check its permissions, or {INDEX_SETTINGS}") from None
        if head is None or (head and head != SQLITE_HEADER):
            kind = "not a file" if head is None else "not a SQLite database"
            raise NotAnIndexFile(f"is {kind}, so impactbook neither uses it as the run index nor replaces it",
                                 where=self.where, hint=f"check {INDEX_SETTINGS} (default: runs/index.sqlite)")

    def _connect(self) -> sqlite3.Connection:
        """(Only from _session, which has refused a foreign file.)"""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(self.path, timeout=30)
        except sqlite3.OperationalError as exc:  # (no file could be made there: not an index to rebuild either)
            if self.owned:  # runs/index.sqlite: the commands name a runs/ folder they cannot write, more plainly
                raise IndexUnusable(str(exc)) from exc
            raise NotAnIndexFile(f"cannot be opened as the run index ({exc})", where=self.where,
                                 hint=f"check that its folder is writable, or {INDEX_SETTINGS}") from None
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                version = _create_schema(connection)
            if version != SCHEMA_VERSION:
                connection.close()
                check_schema(version, self.where, self.start_over)
            if self.store_table is None:
                self.store_table = _add_store_table(connection)
        except sqlite3.DatabaseError as exc:
            raise IndexUnusable(str(exc)) from exc
        return connection

    def _has_store_table(self) -> bool:
        return bool(self.store_table)

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """A shared lock on the rebuilds' lock file for a session: a rebuild (exclusive) swaps the file and
        removes its journals only between sessions. (A session that committed while a rebuild removed its
        journal by path failed with 'disk I/O error'.) Without a lock file to open (a read-only runs/), no
        rebuild can run there either."""
        if not self.takes_turns:
            yield
            return
        try:
            fd = os.open(self._lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        self._refuse_a_foreign_file()  # (before its lock file is made beside it)
        with self._turn(), closing(self._connect()) as connection:
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

    def replace_all(self, rows: Iterable[Row], store: str | None = None) -> None:
        """Write a file of its own and swap it in (rename is atomic); a lock file makes rebuilds take turns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._refuse_a_foreign_file()
            self._refuse_a_newer_schema()
            self._remove_killed_rebuilds()
            fresh = SqliteIndexStore(self.path.with_name(f".{self.path.name}.{os.getpid()}."
                                                         f"{secrets.token_hex(4)}.rebuild"), takes_turns=False)
            try:
                fresh._write(fresh._upsert(), list(rows))
                if store is not None:
                    fresh._write(f"INSERT INTO index_store VALUES (1, {self.mark})", [(store,)])
                fresh.path.replace(self.path)
                for stale in ("-journal", "-wal", "-shm"):
                    Path(str(self.path) + stale).unlink(missing_ok=True)
            finally:
                fresh.path.unlink(missing_ok=True)

    def _remove_killed_rebuilds(self) -> None:
        """The new files (and journals) of rebuilds killed before their swap: called holding the rebuilds' lock,
        which a running rebuild of this file holds, so every one left is a dead one's (each as big as the index)."""
        left = re.compile(rf"\.{re.escape(self.path.name)}\.\d+\.[0-9a-f]{{8}}\.rebuild(-journal|-wal|-shm)?")
        for path in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.rebuild*"):
            if left.fullmatch(path.name):
                path.unlink(missing_ok=True)

    def _refuse_a_newer_schema(self) -> None:
        """A rebuild replaces a corrupt or older file, never one a newer release wrote (check_schema)."""
        try:
            with closing(sqlite3.connect(self.path.absolute().as_uri() + "?mode=ro", uri=True)) as connection:
                found = connection.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError:  # missing or not a database: nothing to keep
            return
        if found > SCHEMA_VERSION:
            check_schema(found, self.where, self.start_over)


def _add_store_table(connection: sqlite3.Connection) -> bool:
    """Add index_store to a file an earlier release of this schema version made; False when it cannot be (a
    read-only file: its store is then neither checked nor claimed)."""
    if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'index_store'").fetchone():
        return True
    try:
        connection.execute(STORE_TABLE)
        connection.commit()
    except sqlite3.OperationalError:
        return False
    return True


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
