"""Panel designs inside the kernel: a pinned units x periods file aggregated in DuckDB (locked to that
file) so only one row per unit and period reaches Python; shared by the difference-in-differences and
synthetic-control designs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..plan import Metric
from ..sqlengine import locked_connection, quote, source_sql


def period_sql(expression: str, kind: str) -> str:
    """Dates become day numbers (days since 1970-01-01), integers stay integers: one period scale."""
    if kind.upper().startswith(("DATE", "TIMESTAMP")):
        return f"date_diff('day', DATE '1970-01-01', CAST({expression} AS DATE))"
    return f"CAST({expression} AS BIGINT)"


def read_panel(path: Path, format: str, unit: str, time: str, build_sql: Callable[[str, dict[str, str]], str]):
    """(frame, rows dropped for a missing unit or period): `build_sql(source, column kinds)` aggregates."""
    connection = locked_connection([path])
    source = source_sql(path, format)
    try:
        kinds = {name: kind for name, kind, *_ in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        frame = connection.execute(build_sql(source, kinds)).df()
        total, = connection.execute(f"SELECT COUNT(*) FROM {source}").fetchone()
        kept, = connection.execute(f"SELECT COUNT(*) FROM {source} WHERE {quote(unit)} IS NOT NULL AND "
                                   f"{quote(time)} IS NOT NULL").fetchone()
    finally:
        connection.close()
    return frame, int(total - kept)


def interval_non_inferiority(low: float, high: float, counterfactual_level: float | None,
                             metric: Metric) -> tuple[str, str | None]:
    """Non-inferiority from a (1 - 2 alpha) interval of the effect (Schuirmann 1987): CONFIRMED when it lies
    wholly on the safe side of the margin, REFUTED when wholly beyond it; a relative margin divides by the
    counterfactual level, taken as known (its own error is ignored)."""
    if metric.margin_type == "relative":
        if not counterfactual_level:
            return "INCONCLUSIVE", "a relative margin needs a counterfactual level other than zero"
        low, high = low / counterfactual_level, high / counterfactual_level
    sign = 1 if metric.direction == "increase" else -1
    safe_low, safe_high = sorted((sign * low, sign * high))
    if safe_low > metric.margin:
        return "CONFIRMED", None
    return ("REFUTED", None) if safe_high < metric.margin else ("INCONCLUSIVE", None)
