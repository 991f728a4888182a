"""Stage 6: drift of many columns between a reference and a current table. Numeric columns: each sample
extracted once as a NumPy array (zero-copy from a DataFrame or Arrow table, through DuckDB otherwise),
sorted once, and every statistic read off the sorted pair — exact KS by a merge, PSI and Jensen-Shannon
over bins at the reference's exact quantiles by binary search — with columns spread over a thread pool
(NumPy's sort, argsort and searchsorted release the GIL). Categorical counts come from one DuckDB GROUP BY
per column. Then the pure statistics of impactbook.stats.drift.

Before (a DuckDB scan of `count_if` per bin, approx_quantile edges, a sort and two binary searches per KS
column) the 1M x 50 benchmark took ~50 s with KS on every feature; see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ...designspecs.pipeline_validation import ColumnDrift
from ...sqlengine import quote
from ...stats import drift as stats


@dataclass(frozen=True)
class DriftRow:
    column: str
    stage: str | None
    statistic: str
    method: str
    value: float
    p_value: float | None
    threshold: float
    breached: bool


NUMERIC = ("psi", "jensen_shannon", "ks")


def _scannable_in_place(source: Any) -> bool:
    return isinstance(source, pd.DataFrame) or (hasattr(source, "column") and hasattr(source, "schema"))


def _numeric_sample(source: Any, column: str) -> np.ndarray:
    """The column's non-null values as float64, straight from a DataFrame's or Arrow table's buffers."""
    if isinstance(source, pd.DataFrame):
        values = source[column].to_numpy(dtype=float, na_value=np.nan)
    else:
        import pyarrow as pa
        import pyarrow.compute as pc

        values = pc.cast(source.column(column), pa.float64()).to_numpy()
    return values[~np.isnan(values)]


def _numeric_drift(reference: np.ndarray, current: np.ndarray, checks: list[ColumnDrift]) -> list[stats.Drift]:
    """Every numeric statistic of one column from its two sorted samples."""
    r, c = np.sort(reference), np.sort(current)
    found = []
    for check in checks:
        if check.statistic == "ks":
            found.append(stats.ks_sorted(r, c))
            continue
        edges = stats.quantile_edges(r, check.bins)
        counts = stats.sorted_bin_counts(r, edges), stats.sorted_bin_counts(c, edges)
        found.append(stats.psi(*counts) if check.statistic == "psi" else stats.jensen_shannon(*counts))
    return found


def _categories(connection, reference: str, current: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    c = quote(column)
    rows = connection.execute(f"""
        SELECT v, sum(r), sum(k) FROM (SELECT CAST({c} AS VARCHAR) AS v, 1 AS r, 0 AS k FROM {reference}
                                       UNION ALL SELECT CAST({c} AS VARCHAR), 0, 1 FROM {current})
        GROUP BY v ORDER BY v NULLS LAST""").fetchall()
    return np.array([r[1] for r in rows], dtype=float), np.array([r[2] for r in rows], dtype=float)


def drift_rows(reference: Any, current: Any, checks: Iterable[ColumnDrift], connection=None,
               threads: int | None = None) -> list[DriftRow]:
    """Each drift check over two tables (DataFrames, Arrow tables or DuckDB-scannable objects); numeric
    columns on `threads` workers (default: the machine's cores)."""
    import duckdb

    checks = list(checks)
    connection = connection or duckdb.connect()
    connection.register("drift_reference", reference)
    connection.register("drift_current", current)
    try:
        numeric: dict[str, list[ColumnDrift]] = {}
        for check in checks:
            if check.statistic in NUMERIC:
                numeric.setdefault(check.column, []).append(check)

        selected = ", ".join(quote(c) for c in numeric)
        sources = [source if _scannable_in_place(source) or not numeric  # else one DuckDB scan into Arrow
                   else connection.sql(f"SELECT {selected} FROM {table}").to_arrow_table()
                   for source, table in ((reference, "drift_reference"), (current, "drift_current"))]

        def column_drift(column: str) -> list[stats.Drift]:
            return _numeric_drift(*(_numeric_sample(source, column) for source in sources), numeric[column])

        with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
            computed = dict(zip(numeric, pool.map(column_drift, numeric)))
        results = {id(check): result for column, found in computed.items() for check, result in zip(numeric[column], found)}
        for check in checks:
            if check.statistic == "chi_square":
                results[id(check)] = stats.chi_square(*_categories(connection, "drift_reference", "drift_current", check.column))
    finally:
        connection.unregister("drift_reference")
        connection.unregister("drift_current")
    rows = [DriftRow(check.column, getattr(check, "stage", None), check.statistic, results[id(check)].method,
                     results[id(check)].statistic, results[id(check)].p_value, check.threshold,
                     results[id(check)].statistic > check.threshold) for check in checks]
    return sorted(rows, key=lambda r: r.value / r.threshold, reverse=True)
