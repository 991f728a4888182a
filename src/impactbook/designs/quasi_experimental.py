"""What the quasi-experimental designs share: the grouping query over the pinned file and the one period
scale their SQL uses; preregistered diagnostics; the verdict of one effect (superiority, or
non-inferiority for guardrails) that a failed diagnostic turns INCONCLUSIVE."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..plan import Metric, Plan
from ..sqlengine import literal, locked_connection, quote, source_sql
from ..stats.multiple import adjust_p_values

Judged = TypeVar("Judged")


@dataclass(frozen=True)
class Diagnostic:
    """A preregistered check of what the design rests on; `reason` says what its failure means."""

    name: str
    value: float
    threshold: float
    passed: bool
    reason: str

    def scrap(self, metric: str) -> dict[str, Any]:
        """Its row in the run's scraps: a value that could not be computed as null, and the reason only
        where it failed (a passed check has nothing to explain)."""
        value = float(self.value) if self.value is not None and math.isfinite(float(self.value)) else None
        return {"metric": metric, "name": self.name, "value": value, "threshold": self.threshold,
                "passed": self.passed, "reason": None if self.passed else self.reason}


def bounded(name: str, value: float | None, threshold: float, *, at_least: bool, failure: Callable[[float], str],
            undefined: str) -> Diagnostic:
    """A diagnostic that passes when `value` is at least (or, `at_least=False`, at most) `threshold`. A value
    the data could not give (None, NaN) fails with `undefined`, not with a comparison such as 'p = nan < 0.05'."""
    if value is None or not math.isfinite(value):
        return Diagnostic(name, math.nan, threshold, False, undefined)
    passed = value >= threshold if at_least else value <= threshold
    return Diagnostic(name, float(value), threshold, bool(passed), failure(float(value)))


def dated(kind: str, plan: Plan, column: str) -> bool:
    """Whether the design's time column `column` (of this DuckDB type) holds dates: a DATE or TIMESTAMP
    column; a text one (ISO dates written into Parquet as strings) as the plan reads it: the window's own time
    column by window.time_type, another by what the design anchors it with (an intervention or start date)."""
    kind = kind.upper()
    if kind != "VARCHAR":
        return kind.startswith(("DATE", "TIMESTAMP"))
    if column == plan.window.time_column:
        return plan.window.time_type == "date"
    anchor = getattr(plan.design, "intervention", None)
    return isinstance(anchor if anchor is not None else getattr(plan.design, "start", None), dt.date)


def period_sql(expression: str, kind: str, in_dates: bool) -> str:
    """Dates become day numbers (days since 1970-01-01), integers stay integers: one period scale. A text
    column is dates when the time column is (`in_dates`, from `dated`); text dates were cast to period
    numbers, ending the run in a DuckDB conversion error."""
    if kind.upper().startswith(("DATE", "TIMESTAMP")) or (kind.upper() == "VARCHAR" and in_dates):
        return f"date_diff('day', DATE '1970-01-01', CAST({expression} AS DATE))"
    return f"CAST({expression} AS BIGINT)"


def several_rows(frame) -> int:
    """The unit-periods (grouped rows) that averaged more than one row of the file: a repeated cross-section's
    sample, or a duplicated row; counted in data_quality, as nothing in the result shows them."""
    return int((frame["unit_period_rows"] > 1).sum()) if "unit_period_rows" in frame else 0


def period_number(value: dt.date | int) -> int:
    """A plan's period in the panel's scale: dates as days since 1970-01-01 (as `period_sql`)."""
    return (value - dt.date(1970, 1, 1)).days if isinstance(value, dt.date) else int(value)


TRUE_WORDS, FALSE_WORDS = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}


def flag_sql(column: str, value: bool | int | str, kind: str) -> str:
    """SQL true where the flag column holds the plan's value: compared as text, or, where DuckDB read the
    column as BOOLEAN (it reads yes/no, true/false and t/f columns so), as a truth value."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if kind.upper() != "BOOLEAN":
        return f"CAST({quote(column)} AS VARCHAR) = {literal(text)}"
    if text.lower() not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(f"design.treated_value: {value!r} is not true or false, but the column {column!r} holds "
                         "true/false values")
    return f"{quote(column)} IS {'TRUE' if text.lower() in TRUE_WORDS else 'FALSE'}"


def column_kinds(connection, source: str) -> dict[str, str]:
    """Each column's DuckDB type, as the reader sniffed it."""
    return {name: kind for name, kind, *_ in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}


Grouping = tuple[dict[str, str], str, str]
"""A design's grouping of the pinned file: (key name -> SQL expression, the aggregates' select list, the SQL
condition a row must meet to count)."""


def grouped_sql(source: str, grouping: Grouping) -> str:
    """One scan: the kept rows grouped by the keys, and every other row in one group whose keys are all NULL
    (its row count is what the condition left out). A kept row never has every key NULL: the keys include
    the period, and the condition requires it."""
    keys, aggregates, kept = grouping
    columns = ", ".join(f"CASE WHEN {kept} THEN {expression} END AS {quote(name)}" for name, expression in keys.items())
    order = ", ".join(str(number) for number in range(1, len(keys) + 1))
    return (f"SELECT {columns}, {aggregates}, COUNT(*) AS {quote(ROWS)} FROM {source} "
            f"GROUP BY {order} ORDER BY {order}")


ROWS = "_rows"


def aggregate_file(path: Path, format: str, grouping: Callable[[dict[str, str]], Grouping]) -> tuple[Any, int]:
    """A design's grouping (built from the column types) over the pinned file in a DuckDB locked to that
    file, in one scan: (the grouped kept rows as a DataFrame, the number of rows left out)."""
    connection = locked_connection([path])
    source = source_sql(path, format)
    try:
        keys, *rest = grouping(column_kinds(connection, source))
        frame = connection.execute(grouped_sql(source, (keys, *rest))).df()
    finally:
        connection.close()
    left_out = frame[list(keys)].isna().all(axis=1)
    return frame[~left_out].drop(columns=ROWS).reset_index(drop=True), int(frame.loc[left_out, ROWS].sum())


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
    """Non-inferiority at alpha by the (1 - 2 alpha) interval of the effect (Schuirmann 1987)."""
    critical = _critical(plan.alpha, degrees_of_freedom)
    return interval_non_inferiority(effect - critical * standard_error, effect + critical * standard_error,
                                    counterfactual_level, metric)


def interval_non_inferiority(low: float, high: float, counterfactual_level: float | None,
                             metric: Metric) -> tuple[str, str | None]:
    """Non-inferiority from a (1 - 2 alpha) interval of the effect: CONFIRMED when it lies wholly on the safe
    side of the margin, REFUTED when wholly beyond it; a relative margin divides by the counterfactual
    level, taken as known (its own error is ignored)."""
    if metric.margin_type == "relative":
        if not counterfactual_level:
            return "INCONCLUSIVE", "a relative margin needs a counterfactual level other than zero"
        low, high = low / counterfactual_level, high / counterfactual_level
    sign = 1 if metric.direction == "increase" else -1
    safe_low, safe_high = sorted((sign * low, sign * high))
    if safe_low > metric.margin:
        return "CONFIRMED", None
    return ("REFUTED", None) if safe_high < metric.margin else ("INCONCLUSIVE", None)


def corrected(plan: Plan, items: list[Judged], p_value: Callable[[Judged], float | None],
              significant: Callable[[float], bool] | None = None) -> list[Judged]:
    """The plan's multiple-testing correction over its family (`correction`: Holm by default, over primary
    and secondary metrics), as for A/B tests: each family metric's adjusted p-value is recorded on its item
    (`adjusted_p_value`), and a superiority verdict whose adjusted p-value is no longer significant becomes
    INCONCLUSIVE with the reason. Guardrails keep their non-inferiority verdicts. `items` carry `metric`,
    `verdict` and `note`; `significant` is the design's own rule (default p < alpha)."""
    significant = significant or (lambda p: p < plan.alpha)
    raw = {item.metric.id: p_value(item) for item in items}  # type: ignore[attr-defined]
    family = [m for m in plan.family if raw.get(m) is not None]
    adjusted = dict(zip(family, adjust_p_values([raw[m] for m in family], plan.correction.method)))
    result = []
    for item in items:
        metric = item.metric  # type: ignore[attr-defined]
        if metric.id not in adjusted:
            result.append(item)
            continue
        changes: dict[str, Any] = {"adjusted_p_value": adjusted[metric.id]}
        if (metric.role != "guardrail" and item.verdict in ("CONFIRMED", "REFUTED")  # type: ignore[attr-defined]
                and not significant(adjusted[metric.id])):
            changes.update(verdict="INCONCLUSIVE",
                           note=f"not significant after {plan.correction.method} correction over {len(family)} "
                                f"hypotheses (adjusted p = {adjusted[metric.id]:.3g}, alpha {plan.alpha})")
        result.append(dataclasses.replace(item, **changes))
    return result
