"""The query engine every stage shares (DuckDB by default), locked down: a connection reads only the
pinned files it is opened for and writes nothing — no COPY ... TO, no ATTACH, no INSTALL or LOAD, no
read of any other file — however a query came to be written. Identifiers and literals are quoted here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def source_sql(path: Path, format: str, as_text: bool = False) -> str:
    """DuckDB's reader for a pinned file (the one engine-specific piece of the generated SQL); `as_text`
    reads every CSV column as text, so a check can say exactly which values fail to parse."""
    reader = "read_parquet" if format == "parquet" else "read_csv"
    options = "" if format == "parquet" else (", header = true, all_varchar = true" if as_text else ", header = true")
    return f"{reader}({literal(Path(path).resolve())}{options})"


def locked_connection(readable: Iterable[Path]):
    """An in-memory DuckDB that may read exactly `readable` and nothing else, with its configuration
    locked so no query can loosen it again."""
    import duckdb

    connection = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    paths = [str(Path(p).resolve()) for p in readable]
    connection.execute("SET TimeZone = 'UTC'")  # times without a zone are UTC, on every machine
    connection.execute(f"SET allowed_paths = [{', '.join(literal(p) for p in paths)}]")
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection
