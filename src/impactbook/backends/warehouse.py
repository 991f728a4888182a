"""Warehouse-native inputs: a pinned dataset that is a table or view in PostgreSQL (psycopg 3).

The URI is a libpq URL with the relation in its fragment, `postgresql://user@host:port/db?sslmode=...#schema.table`,
never with a password (libpq takes it from PGPASSWORD or ~/.pgpass), so catalog.yaml and the ledger hold no
secret. Every read runs in one READ ONLY, REPEATABLE READ transaction with canonical session settings: the
snapshot hash and the aggregation that follows it see the same rows, and no query can write.

The pin is a snapshot hash computed inside the database (`snapshot_sql`): each row's canonical text
(`ROW(t.*)::text` under fixed DateStyle, TimeZone, float and bytea output) is hashed with sha256; the
32-byte row digests, sorted, are hashed per bucket (a digest's first byte: 256 buckets), and the bucket
digests, in bucket order, after the column names and types, into one sha256. Row order does not matter;
any changed, added or removed row, or a changed column type, does; no value grows past a bucket's digests
(PostgreSQL caps a value at 1 GB: 33M rows a bucket, about 8 billion in all). A Merkle-style digest
(R. C. Merkle, "A Digital Signature Based on a Conventional Encryption Function", CRYPTO '87) over a
canonical text export, in the spirit of `pg_dump`'s.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

from ..errors import CatalogError, InputError
from ..sqlengine import literal, quote
from .postgres import connect, shown

SNAPSHOT_METHOD = "sha256 over sorted per-row sha256 of ROW(t.*)::text, in 256 buckets, after the column types (v1)"
CANONICAL_SETTINGS = {"DateStyle": "ISO, YMD", "TimeZone": "UTC", "IntervalStyle": "postgres",
                      "extra_float_digits": "1", "bytea_output": "hex"}  # so a row's text is the same everywhere


@dataclass(frozen=True)
class WarehouseTable:
    """A relation named by a warehouse URI: where to connect (no secret) and what to read."""

    dsn: str
    schema: str | None
    name: str

    @classmethod
    def parse(cls, url: str) -> "WarehouseTable":
        dsn, _, fragment = url.partition("#")
        parts = urlsplit(dsn)
        if parts.password or "password" in parse_qs(parts.query):
            raise CatalogError(f"{parts.scheme}://…#{fragment}: the URI holds a password, which would be written "
                               "to catalog.yaml and the ledger", field="uri",
                               hint="drop it from the URI; libpq reads it from PGPASSWORD or ~/.pgpass")
        schema, dot, name = fragment.rpartition(".")
        if not name:
            raise CatalogError(f"{url}: no table after '#'", field="uri",
                               hint="name the table or view: postgresql://host/db#schema.table")
        return cls(dsn, schema if dot else None, name)

    @property
    def relation(self) -> str:
        return (f"{quote(self.schema)}." if self.schema else "") + quote(self.name)

    @property
    def shown(self) -> str:
        """Where, for messages: host, database and relation (no user, no options)."""
        return f"{shown(self.dsn)}#{self.relation}"


def snapshot_sql(table: WarehouseTable) -> str:
    """The snapshot hash and row count in one scan (see the module docstring); run under CANONICAL_SETTINGS.
    Digests stay bytes (sorted by memcmp, whatever the collation); a bucket is a digest's first byte."""
    columns = (f"(SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' "
               f"ORDER BY attnum) FROM pg_attribute WHERE attrelid = to_regclass({literal(table.relation)}) "
               "AND attnum > 0 AND NOT attisdropped)")
    return ("WITH row_digests AS (\n"
            "  SELECT sha256(convert_to(CAST(ROW(t.*) AS TEXT), 'UTF8')) AS digest\n"
            f"  FROM {table.relation} AS t),\n"
            "buckets AS (\n"
            "  SELECT get_byte(digest, 0) AS bucket, COUNT(*) AS n, sha256(string_agg(digest, ''::bytea ORDER BY digest)) "
            "AS digest\n"
            "  FROM row_digests GROUP BY 1)\n"
            f"SELECT encode(sha256(convert_to({columns} || E'\\n', 'UTF8') "
            "|| COALESCE(string_agg(digest, ''::bytea ORDER BY bucket), ''::bytea)), 'hex') AS sha256,\n"
            "       COALESCE(SUM(n), 0) AS rows\nFROM buckets")


@dataclass(frozen=True)
class Snapshot:
    """A table's pin: the hash, its row count, and the query that computed it (recorded with the pin)."""

    sha256: str
    rows: int
    sql: str
    method: str = SNAPSHOT_METHOD

    def record(self) -> dict[str, object]:
        return {"rows": self.rows, "method": self.method, "sql": self.sql}


@contextlib.contextmanager
def snapshot_transaction(table: WarehouseTable) -> Iterator:
    """A connection inside one READ ONLY, REPEATABLE READ transaction with CANONICAL_SETTINGS: every query
    in the block sees the same snapshot of the table, and none can write. A database error (unreachable
    server, missing table, refused permission) is an InputError naming the table."""
    import psycopg

    try:
        with connect(table.dsn) as connection:
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            connection.read_only = True
            try:
                for setting, value in CANONICAL_SETTINGS.items():
                    connection.execute(f"SET {setting} = {literal(value)}")
                yield connection
            finally:
                connection.rollback()  # nothing to keep: the transaction only read
    except psycopg.Error as exc:
        unreachable = isinstance(exc, psycopg.OperationalError)
        raise InputError(f"cannot read warehouse table {table.shown}: {str(exc).strip().splitlines()[0]}",
                         hint="check the server, the database and PGUSER/PGPASSWORD" if unreachable else None) from None


def snapshot_in(connection, table: WarehouseTable) -> Snapshot:
    sql = snapshot_sql(table)
    digest, rows = connection.execute(sql).fetchone()
    return Snapshot(digest, int(rows), sql)


def table_snapshot(url: str) -> Snapshot:
    """The snapshot hash of the table a warehouse URI names, computed in the database; no row leaves it."""
    table = WarehouseTable.parse(url)
    with snapshot_transaction(table) as connection:
        return snapshot_in(connection, table)


DUCKDB_TYPE = {"smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT", "real": "FLOAT",
               "double precision": "DOUBLE", "numeric": "DECIMAL", "boolean": "BOOLEAN", "date": "DATE",
               "timestamp without time zone": "TIMESTAMP", "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
               "text": "VARCHAR", "character varying": "VARCHAR", "character": "VARCHAR"}


def column_types(connection, table: WarehouseTable) -> dict[str, str]:
    """Column -> type in DuckDB's names (PostgreSQL's `double precision` is DOUBLE, `text` VARCHAR, ...),
    so the data checks judge a warehouse column as they judge a Parquet one; other types keep their name."""
    rows = connection.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table.relation,)).fetchall()
    return {name: DUCKDB_TYPE.get(re.sub(r"\(\d+(,\d+)?\)", "", kind), kind.upper()) for name, kind in rows}
