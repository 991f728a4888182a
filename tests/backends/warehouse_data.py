"""Tables for warehouse tests and benchmarks: the demo A/B rows loaded into PostgreSQL by COPY, and the
numbers of a sufficient statistic for comparing engines."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

DEMO_COLUMNS = ("user_id BIGINT, variant TEXT, platform TEXT, date DATE, pre_revenue DOUBLE PRECISION, "
                "revenue DOUBLE PRECISION, converted INTEGER, sessions INTEGER")


def copy_csv(url: str, relation: str, columns: str, csv: bytes) -> None:
    """Create `relation` with typed `columns` and COPY the CSV text (with a header) into it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {relation} ({columns})")
        with connection.cursor().copy(f"COPY {relation} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            copy.write(csv)


def load_demo(url: str, csv_path: Path, name: str = "demo_experiment") -> str:
    """A demo CSV (impactbook.demo) as a typed table, byte for byte the same rows; returns its warehouse URI."""
    copy_csv(url, f"public.{name}", DEMO_COLUMNS, csv_path.read_bytes())
    return f"{url}#public.{name}"


def numbers(statistic) -> Iterator[float]:
    """Every number in a (nested) sufficient statistic: n, sums, sums of squares and of products."""
    for value in vars(statistic).values():
        if isinstance(value, (int, float)):
            yield float(value)
        else:
            yield from numbers(value)
