"""What the quasi-experimental designs share: the grouping query over the pinned file and the one period
scale their SQL uses; preregistered diagnostics; the verdict of one effect (superiority, or
non-inferiority for guardrails) that a failed diagnostic turns INCONCLUSIVE."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..plan import Metric, Plan
from ..sqlengine import locked_connection, source_sql


@dataclass(frozen=True)
class Diagnostic:
    name: str
    value: float
    threshold: float
    passed: bool
    reason: str


def period_sql(expression: str, kind: str) -> str:
    """Dates become day numbers (days since 1970-01-01), integers stay integers: one period scale."""
    if kind.upper().startswith(("DATE", "TIMESTAMP")):
        return f"date_diff('day', DATE '1970-01-01', CAST({expression} AS DATE))"
    return f"CAST({expression} AS BIGINT)"


def aggregate_file(path: Path, format: str, grouped: Callable[[str, dict[str, str]], str],
                   kept: Callable[[dict[str, str]], str]) -> tuple[Any, int]:
    """A design's grouping query over the pinned file in a DuckDB locked to that file: (the grouped rows as
    a DataFrame, the number of rows the `kept` condition leaves out). Both get the column types."""
    connection = locked_connection([path])
    source = source_sql(path, format)
    try:
        kinds = {name: kind for name, kind, *_ in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        frame = connection.execute(grouped(source, kinds)).df()
        total, included = connection.execute(f"SELECT COUNT(*), COUNT(*) FILTER (WHERE {kept(kinds)}) "
                                             f"FROM {source}").fetchone()
    finally:
        connection.close()
    return frame, int(total - included)


def _critical(alpha: float, degrees_of_freedom: float | None) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - alpha) if degrees_of_freedom is None else stats.t.ppf(1 - alpha, degrees_of_freedom))


def judge(plan: Plan, metric: Metric, effect: float, standard_error: float, p_value: float,
          degrees_of_freedom: float | None, counterfactual_level: float | None,
          diagnostics: list[Diagnostic]) -> tuple[str, str | None]:
    """(verdict, note) of one average effect: INCONCLUSIVE with the reasons when a diagnostic failed;
    otherwise the two-sided `p_value` at alpha for primary and secondary metrics, and non-inferiority for
    guardrails on t with `degrees_of_freedom` (None: the normal)."""
    failed = [d.reason for d in diagnostics if not d.passed]
    if failed:
        return "INCONCLUSIVE", "diagnostic failed: " + "; ".join(failed)
    if metric.role == "guardrail":
        return _non_inferiority(plan, metric, effect, standard_error, degrees_of_freedom, counterfactual_level)
    if p_value >= plan.alpha:
        return "INCONCLUSIVE", None
    good = effect > 0 if metric.direction == "increase" else effect < 0
    return ("CONFIRMED" if good else "REFUTED"), None


def _non_inferiority(plan: Plan, metric: Metric, effect: float, standard_error: float,
                     degrees_of_freedom: float | None, counterfactual_level: float | None) -> tuple[str, str | None]:
    """Non-inferiority at alpha by the (1 - 2 alpha) interval of the effect (Schuirmann 1987); a relative
    margin divides by the counterfactual level, taken as known (its own error is ignored)."""
    critical = _critical(plan.alpha, degrees_of_freedom)
    low, high = effect - critical * standard_error, effect + critical * standard_error
    if metric.margin_type == "relative":
        if not counterfactual_level:
            return "INCONCLUSIVE", "a relative margin needs a counterfactual level other than zero"
        low, high = low / counterfactual_level, high / counterfactual_level
    sign = 1 if metric.direction == "increase" else -1
    safe_low, safe_high = sorted((sign * low, sign * high))
    if safe_low > metric.margin:
        return "CONFIRMED", None
    return ("REFUTED", None) if safe_high < metric.margin else ("INCONCLUSIVE", None)
