"""The run index's narrow door: one interface, a registry keyed by URL scheme, the schema both backends share.

Following papermill's engines/iorw registries (STYLE §2), but the registry is a value passed in, not an
import-time singleton. The index is derived from run folders and the ledger, so every backend is rebuildable.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from ..errors import ProjectError, RunNotFoundError
from ..record import RunRecord

SCHEMA_VERSION = 4
# the run store whose runs an index lists (see IndexStore.own): a table added within version 4, which every release
# that knows it creates when missing, and which the releases before it never read (so no rebuild, no lock-out)
STORE_TABLE = "CREATE TABLE IF NOT EXISTS index_store (one INTEGER PRIMARY KEY CHECK (one = 1), store TEXT NOT NULL)"
# the schema of each version, created in an empty database; both backends apply the same statements
MIGRATIONS: dict[int, tuple[str, ...]] = {4: (
    """CREATE TABLE IF NOT EXISTS runs (
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
)""",
    "CREATE INDEX IF NOT EXISTS runs_by_plan ON runs (plan_id, run_id)",
    # the project whose runs these are: the hash of its ledger's first entry (see IndexStore.own)
    "CREATE TABLE IF NOT EXISTS index_owner (one INTEGER PRIMARY KEY CHECK (one = 1), ledger TEXT NOT NULL)",
    STORE_TABLE,
)}
COLUMNS = ("run_id", "plan_id", "plan_version", "plan_sha256", "status", "decision", "verdicts", "baseline",
           "candidate", "template", "started_at", "finished_at", "sums_sha256", "ledger_seq", "labels", "primary_effect")
Row = tuple[Any, ...]


class IndexUnusable(Exception):
    """The index is corrupt or from an older schema: rebuild it."""


class IndexFromNewerRelease(ProjectError):
    """The index has a schema version newer than this release's: a newer impactbook, perhaps on another machine
    sharing it, wrote it. It is neither read nor rebuilt (a rebuild would take it from that release)."""


class IndexOfAnotherProject(ProjectError):
    """The index holds another project's runs (its ledger begins elsewhere). Used as this project's, each
    command would remove the other project's rows as runs without folders, and a rebuild would replace them."""


class IndexOfAnotherStore(IndexOfAnotherProject):
    """The index lists the runs of another copy of this project (two clones, each with its own runs/ folder,
    pointed at one index outside them): each would remove the other's rows as runs without folders.
    `impactbook index rebuild` hands the index to the copy that runs it."""


class NotAnIndexFile(ProjectError):
    """The SQLite index's URL names something that is not a SQLite file (the ledger, a folder, a user's notes:
    a mistyped or hostile setting). A rebuild replaces the index's file whole, so it is neither used nor
    replaced."""


def check_schema(found: int, where: str, undo: str) -> None:
    """Refuse an index of another schema version: a newer one by name (`undo`: how to start it over
    deliberately), an older or unknown one as IndexUnusable (rebuilt by the next command)."""
    if found > SCHEMA_VERSION:
        raise IndexFromNewerRelease(f"the run index has schema version {found}, written by a newer impactbook; "
                                    f"this release reads {SCHEMA_VERSION}, so it leaves the index as it is",
                                    where=where, hint=f"upgrade impactbook here, or {undo} and run "
                                                      "`impactbook index rebuild` to start it over with this release")
    if found != SCHEMA_VERSION:
        raise IndexUnusable(f"schema version {found}, this release reads {SCHEMA_VERSION}")


def index_row(record: RunRecord, sums_sha256: str, ledger_seq: int | None) -> Row:
    """A run's row in COLUMNS order."""
    return (record.run_id, record.plan.id, record.plan.version, record.plan.sha256, record.status.value,
            record.decision.action.value, json.dumps({v.key: v.verdict.value for v in record.verdicts}),
            record.model_change.get("baseline"), record.model_change.get("candidate"), record.template.name,
            record.timings.started_at, record.timings.finished_at, sums_sha256, ledger_seq, ",".join(record.labels),
            _primary_effect(record))


def _primary_effect(record: RunRecord) -> str | None:
    primary = {v.metric for v in record.verdicts if v.role == "primary"}
    return next((e.sentence for e in record.effects if e.metric in primary), None)


class IndexStore(ABC):
    """What the rest of impactbook may ask of a run index. Queries are shared; backends supply a driver."""

    mark = "?"  # the driver's parameter placeholder
    no_limit: Any = -1  # the LIMIT value that means none (SQLite: -1)
    order = "run_id"  # byte order of run ids, whatever the database's collation
    owner_checked = True  # open_index sets False and `ledger`: the store then checks whose index it is, once
    ledger: str | None = None  # the hash of the first entry of the ledger of the project using the index
    run_store: Callable[[], str] | None = None  # the identity of the run store using it (RunStore.identity)

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the index lives, for messages (never with a password)."""

    @property
    @abstractmethod
    def start_over(self) -> str:
        """How a user empties this index on purpose (for hints)."""

    def expect_owner(self, ledger: str | None, run_store: Callable[[], str] | None = None) -> "IndexStore":
        """Check, at first use, that the index is the project's whose ledger begins with `ledger` and, given
        `run_store` (called then), that it lists the runs of the run store of that identity."""
        self.ledger, self.run_store, self.owner_checked = ledger, run_store, False
        return self

    def own(self, again: bool = False) -> None:
        """Refuse an index another project owns; claim an unowned one for ours (when we have a ledger). Two
        projects sharing one database would otherwise remove each other's rows. The same for the run store,
        between copies of one project (a rebuild that takes the index over records ours: replace_all)."""
        if self.owner_checked and not again:
            return
        owner = self._claim("index_owner", "ledger", self.ledger)
        if owner is not None and owner != self.ledger:
            ours = f"whose ledger begins with entry {self.ledger[:12]}…" if self.ledger else "with no ledger entry yet"
            raise IndexOfAnotherProject(
                f"the run index holds the runs of another project (its ledger begins with entry {owner[:12]}…), "
                f"not of this one, {ours}; it is left as it is", where=self.where,
                hint=f"point settings.index (or IMPACTBOOK_INDEX) at a database of this project's own; to give this "
                     f"one to this project, {self.start_over} and run `impactbook index rebuild`")
        if self.run_store is not None and self._has_store_table():
            store = self.run_store()
            if (found := self._claim("index_store", "store", store)) != store:
                raise IndexOfAnotherStore(
                    f"the run index lists the runs of another run store of this project ({found}: another copy of "
                    f"the project, or the store it used before), not of this copy's ({store}); used here, each copy "
                    "would remove the other's runs from it as runs it has no folder for, so it is left as it is",
                    where=self.where,
                    hint="give the copies one shared run store (settings.storage: s3://bucket/prefix), or this copy "
                         "an index of its own (IMPACTBOOK_INDEX=sqlite:///<this copy>/runs/index.sqlite, or no "
                         "settings.index); `impactbook index rebuild` here hands the index to this copy (the other "
                         "copy's runs leave it)")
        self.owner_checked = True

    def _claim(self, table: str, column: str, value: str | None) -> str | None:
        """The value `table` records, recording `value` first when it records none (the first process to get
        there wins; the others read its value)."""
        found = self._fetch(f"SELECT {column} FROM {table}")
        if not found and value:
            self._write(f"INSERT INTO {table} VALUES (1, {self.mark}) ON CONFLICT (one) DO NOTHING", [(value,)])
            found = self._fetch(f"SELECT {column} FROM {table}")
        return found[0][0] if found else None

    def _has_store_table(self) -> bool:
        """Whether the index has index_store (an index an earlier release made and a reader cannot add it to
        has not, and then records no store)."""
        return True

    @abstractmethod
    def _fetch(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        """Rows as tuples in COLUMNS order."""

    @abstractmethod
    def _write(self, sql: str, rows: list[Row]) -> None:
        """Run one statement per row in a single transaction."""

    @abstractmethod
    def replace_all(self, rows: Iterable[Row], store: str | None = None) -> None:
        """Swap the whole content for `rows` atomically (a rebuild); concurrent rebuilds take turns. With `store`,
        the same swap records it as the run store the index lists (a copy taking the index over)."""

    def _upsert(self) -> str:
        marks = ",".join([self.mark] * len(COLUMNS))
        updates = ",".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
        return f"INSERT INTO runs VALUES ({marks}) ON CONFLICT (run_id) DO UPDATE SET {updates}"

    def add(self, record: RunRecord, sums_sha256: str, ledger_seq: int | None) -> None:
        """Insert or refresh a run's row (the folder and ledger are the truth, so the latest wins)."""
        self.own()
        self._write(self._upsert(), [index_row(record, sums_sha256, ledger_seq)])

    def remove(self, run_ids: list[str]) -> None:
        self.own()
        self._write(f"DELETE FROM runs WHERE run_id = {self.mark}", [(r,) for r in run_ids])

    def _select(self, condition: str = "", args: tuple[Any, ...] = (), tail: str = "") -> list[dict[str, Any]]:
        self.own()
        rows = self._fetch(f"SELECT {','.join(COLUMNS)} FROM runs {condition} ORDER BY {self.order}{tail}", args)
        at, decode = COLUMNS.index("verdicts"), json.JSONDecoder().decode
        try:  # plain tuples zipped into dicts: the driver's row objects cost more than the query at 100k rows
            return [dict(zip(COLUMNS, (*r[:at], decode(r[at]), *r[at + 1:]))) for r in rows]
        except ValueError as exc:
            raise IndexUnusable(f"a row's verdicts are not JSON ({exc})") from exc

    def rows(self, plan_id: str | None = None, limit: int | None = None, offset: int = 0,
             newest_first: bool = False) -> list[dict[str, Any]]:
        """Runs oldest first (run ids sort by time; newest first if asked), optionally of one plan; a page of
        `limit` rows after skipping `offset`, counted and cut by the database."""
        condition, args = (f"WHERE plan_id = {self.mark}", (plan_id,)) if plan_id else ("", ())
        tail = " DESC" if newest_first else ""
        if limit is not None or offset:
            tail += f" LIMIT {self.mark} OFFSET {self.mark}"
            args += (limit if limit is not None else self.no_limit, offset)
        return self._select(condition, args, tail)

    def count(self, plan_id: str | None = None) -> int:
        """How many runs the index holds (of one plan)."""
        condition, args = (f"WHERE plan_id = {self.mark}", (plan_id,)) if plan_id else ("", ())
        self.own()
        return int(self._fetch(f"SELECT COUNT(*) FROM runs {condition}", args)[0][0])

    def find(self, run: str) -> dict[str, Any]:
        """A run by id or unique prefix ("latest" for the newest); the database does the looking."""
        if run == "latest":
            matches = self._select(tail=" DESC LIMIT 1")
        else:
            matches = (self._select(f"WHERE run_id = {self.mark}", (run,))
                       or self._select(f"WHERE substr(run_id, 1, {self.mark}) = {self.mark}", (len(run), run),
                                       tail=" LIMIT 2"))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFoundError(f"no run {run!r} in the index", where=self.where,
                                   hint="`impactbook runs list` shows them")
        raise RunNotFoundError(f"{run!r} matches several runs", hint="give more of the run id")


class IndexStores:
    """Index backends by URL scheme: `register(scheme, factory)`, `open(url)`."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[str], IndexStore]] = {}

    def register(self, scheme: str, factory: Callable[[str], IndexStore]) -> None:
        self._factories[scheme] = factory

    def open(self, url: str) -> IndexStore:
        scheme = urlsplit(url).scheme
        if scheme not in self._factories:
            known = ", ".join(sorted(self._factories))
            raise ProjectError(f"index URL {url.split('@')[-1]!r}: no index backend for {scheme!r}:// (known: {known})",
                               hint="set IMPACTBOOK_INDEX to postgresql://… or leave it unset for SQLite")
        return self._factories[scheme](url)


def default_index_stores() -> IndexStores:
    """SQLite (default, no server) and PostgreSQL (psycopg 3, imported only when used)."""
    from .postgres_index import PostgresIndexStore
    from .sqlite_index import SqliteIndexStore

    stores = IndexStores()
    stores.register("sqlite", SqliteIndexStore.from_url)
    stores.register("postgresql", PostgresIndexStore)
    stores.register("postgres", PostgresIndexStore)
    return stores
