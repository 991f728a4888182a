"""The run index in PostgreSQL (psycopg 3): one index shared by many machines and concurrent writers.

Writers upsert row by row (INSERT ... ON CONFLICT), so concurrent publishes never collide; schema
migrations and rebuilds serialise on a transaction-level advisory lock, and a rebuild replaces the
content inside one transaction, so readers see the old index or the new one, never half of either.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..errors import ProjectError
from .index_store import MIGRATIONS, SCHEMA_VERSION, STORE_TABLE, IndexStore, Row, check_schema
from .postgres import connect, shown

# run ids are compared byte by byte (COLLATE "C", as in SQLite); these let "latest" and the plan filter use
# an index whatever the database's locale. Physical only: the tables and columns are MIGRATIONS'.
BYTE_ORDER_INDEXES = ('CREATE INDEX IF NOT EXISTS runs_by_id_bytes ON runs (run_id COLLATE "C")',
                      'CREATE INDEX IF NOT EXISTS runs_by_plan_bytes ON runs (plan_id, run_id COLLATE "C")')
LOCK_KEY = 0x1B1D_E7  # pg_advisory_xact_lock key of impactbook's index (migrations and rebuilds)


class PostgresIndexStore(IndexStore):
    mark = "%s"
    no_limit = None  # LIMIT NULL: no limit
    order = 'run_id COLLATE "C"'  # byte order like SQLite, whatever the database's locale

    def __init__(self, url: str) -> None:
        self.url = url
        self._ready = False

    @property
    def where(self) -> str:
        return shown(self.url)

    @property
    def start_over(self) -> str:
        return "drop its tables runs, index_schema, index_owner and index_store"

    def _connect(self, rebuilding: bool = False):
        connection = connect(self.url)
        if not self._ready or rebuilding:
            self._migrate(connection, rebuilding)
            self._ready = True
        return connection

    def _migrate(self, connection, rebuilding: bool = False) -> None:
        """Create the schema in an empty database. One of an older version is unusable until rebuilt, and a
        rebuild starts it over; one a newer release wrote is refused, rebuilt or not (check_schema)."""
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            connection.execute("CREATE TABLE IF NOT EXISTS index_schema (version INTEGER NOT NULL)")
            row = connection.execute("SELECT version FROM index_schema").fetchone()
            if row is None and connection.execute("SELECT to_regclass('runs') IS NOT NULL").fetchone()[0]:
                raise ProjectError("the database has a table `runs` that impactbook did not create (no schema "
                                   "version)", where=self.where, hint="point settings.index at another database, "
                                                                      "or drop that table")
            if row is not None and row[0] != SCHEMA_VERSION:
                if row[0] > SCHEMA_VERSION or not rebuilding:
                    check_schema(row[0], self.where, self.start_over)
                connection.execute("DROP TABLE runs")
                connection.execute("DROP TABLE IF EXISTS index_owner")
                connection.execute("DELETE FROM index_schema")
                row = None
            if row is None:
                for statement in MIGRATIONS[SCHEMA_VERSION] + BYTE_ORDER_INDEXES:
                    connection.execute(statement)
                connection.execute("INSERT INTO index_schema VALUES (%s)", (SCHEMA_VERSION,))
            else:
                connection.execute(STORE_TABLE)  # (an index an earlier release of this version made)

    def _fetch(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        with self._connect() as connection:
            return connection.execute(sql, args).fetchall()

    def _write(self, sql: str, rows: list[Row]) -> None:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.executemany(sql, rows)

    def replace_all(self, rows: Iterable[Row], store: str | None = None) -> None:
        with self._connect(rebuilding=True) as connection, connection.transaction(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cursor.execute("DELETE FROM runs")
            with cursor.copy("COPY runs FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            if store is not None:
                cursor.execute("INSERT INTO index_store VALUES (1, %s) ON CONFLICT (one) DO UPDATE SET store = "
                               "excluded.store", (store,))
