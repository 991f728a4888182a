"""Aggregation pushdown: the plan's metric definitions compile to one SQL query that returns
sufficient statistics per arm — overall, per segment and per day — computed by DuckDB directly
over the pinned CSV or Parquet file, or by PostgreSQL over a pinned warehouse table. No row reaches pandas.

The SQL is deliberately plain (GROUPING SETS, CASE, FILTER, PERCENTILE_CONT ... WITHIN GROUP) so that the
same text runs on a warehouse; only the source (DuckDB's read_csv / read_parquet, or a relation) and
`sqlengine.Dialect` (the lenient cast) are engine-specific.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Union

from ..expressions import parse_filter
from ..plan import Metric, Plan
from ..sqlengine import (DUCKDB, Dialect, count_where, literal, location, locked_connection, quote, record, records,
                         source_sql)
from ..stats import RatioStatistic, RegressionStatistic, SampleMean

Statistic = Union[SampleMean, RatioStatistic, RegressionStatistic]
Cell = dict[str, dict[str, Statistic]]  # arm -> metric id -> statistic


def _value(metric: Metric, column: str | None, cap: str | None = None, paired: str | None = None) -> str:
    """A metric's per-unit value: NULL for units the filter leaves out, and (with `paired`) for units
    whose paired column (a ratio's other half, a CUPED covariate) is missing, so every sum covers the
    same units."""
    expression = f"CAST({quote(column)} AS DOUBLE PRECISION)"
    if cap:  # not LEAST, which skips NULLs in DuckDB and PostgreSQL: a missing outcome would become the cap
        expression = f"CASE WHEN {expression} > {cap} THEN {cap} ELSE {expression} END"
    conditions = [f"({parse_filter(metric.filter).sql})"] if metric.filter else []
    if paired:
        conditions.append(f"{quote(paired)} IS NOT NULL")
    return f"CASE WHEN {' AND '.join(conditions)} THEN {expression} END" if conditions else expression


def window_condition(plan: Plan, dialect: Dialect = DUCKDB) -> str:
    """The preregistered outcome window, as SQL: rows outside it are excluded (and counted)."""
    window = plan.window
    if window.time_column is None or window.time_type != "date":
        return "TRUE"
    return (f"{dialect.try_cast(quote(window.time_column), 'DATE')} BETWEEN DATE {literal(window.start.isoformat())} "
            f"AND DATE {literal(window.end.isoformat())}")


def exclusions_sql(plan: Plan, source: str, dialect: Dialect = DUCKDB, pruned: bool = False) -> str:
    """Rows the analysis leaves out, by reason: outside the window, no variant, a variant not in the plan
    (`pruned`: see sqlengine.count_where)."""
    arm = f"CAST({quote(plan.design.variant_column)} AS VARCHAR)"
    inside = window_condition(plan, dialect)
    arms = ", ".join(literal(a) for a in plan.design.arms)
    counts = {"outside_window": f"NOT ({inside}) OR ({inside}) IS NULL", "no_variant": f"({inside}) AND {arm} IS NULL",
              "variant_not_in_the_plan": f"({inside}) AND {arm} NOT IN ({arms})"}
    return ("SELECT COUNT(*) AS rows, "
            + ", ".join(f"{count_where(source, condition, pruned)} AS {name}" for name, condition in counts.items())
            + f" FROM {source}")


def cap_sql(plan: Plan, source: str, dialect: Dialect = DUCKDB) -> str | None:
    """One row of caps, each the declared quantile of the control arm (or of both arms)."""
    parts = []
    for metric in plan.metrics:
        if metric.cap is None:
            continue
        value = f"CAST({quote(metric.column)} AS DOUBLE PRECISION)"
        if metric.cap.basis == "control":
            value = f"CASE WHEN {quote(plan.design.variant_column)} = {literal(plan.design.control)} THEN {value} END"
        parts.append(f"PERCENTILE_CONT({metric.cap.quantile}) WITHIN GROUP (ORDER BY {value}) AS {quote('cap__' + metric.id)}")
    return f"SELECT {', '.join(parts)} FROM {source} WHERE {window_condition(plan, dialect)}" if parts else None


def statistics_sql(plan: Plan, source: str, caps: dict[str, float] | None = None, dialect: Dialect = DUCKDB) -> str:
    """The single scan groups rows once, at the finest grain (arm, every segment, day), into a few hundred
    groups; GROUPING SETS over (arm), (arm, segment) for each segment and (arm, day) then add those up —
    sufficient statistics are sums. Grouping each row three times over (a GROUPING SETS on the rows) cost
    twice as long. Group keys are turned into text after grouping."""
    query = _StatisticsQuery.of(plan, caps or {})
    return query.rollup(f"(\n{query.finest(source, window_condition(plan, dialect))}) AS finest")


@dataclass(frozen=True)
class _StatisticsQuery:
    """The statistics scan in two parts: the finest grouping of the rows, and the roll-up of its groups."""

    inner: list[str]  # the finest grouping's SELECT list
    keys: list[str]  # its GROUP BY: the source's columns (an alias would be a source column in PostgreSQL)
    sums: list[str]  # the names of its sums, each added up again by the roll-up
    grouped: int  # grouping columns beside the arm

    @classmethod
    def of(cls, plan: Plan, caps: dict[str, float]) -> "_StatisticsQuery":
        arm = quote(plan.design.variant_column)
        grouping_columns = _grouping_columns(plan)
        inner = [f"{arm} AS arm", "COUNT(*) AS units"]
        inner += [f"{quote(column)} AS g{index}" for index, column in enumerate(grouping_columns)]
        sums: list[tuple[str, str]] = []  # (per-row aggregate, its name)
        for metric in plan.metrics:
            prefix = metric.id
            if metric.filter:
                sums.append((f"COUNT(*) FILTER (WHERE {parse_filter(metric.filter).sql})", f"{prefix}__pass"))
            if metric.kind == "ratio":
                num = _value(metric, metric.numerator, paired=metric.denominator)
                den = _value(metric, metric.denominator, paired=metric.numerator)
                sums += [(f"COUNT({num})", f"{prefix}__n"), (f"SUM({num})", f"{prefix}__s"),
                         (f"SUM({num} * {num})", f"{prefix}__ss"), (f"SUM({den})", f"{prefix}__ds"),
                         (f"SUM({den} * {den})", f"{prefix}__dss"), (f"SUM({num} * {den})", f"{prefix}__nd")]
                continue
            cap = repr(caps[metric.id]) if metric.id in caps else None
            value = _value(metric, metric.column, cap, paired=metric.covariate)
            sums += [(f"COUNT({value})", f"{prefix}__n"), (f"SUM({value})", f"{prefix}__s"),
                     (f"SUM({value} * {value})", f"{prefix}__ss")]
            if metric.covariate:
                covariate = _value(metric, metric.covariate, paired=metric.column)
                sums += [(f"SUM({covariate})", f"{prefix}__xs"), (f"SUM({covariate} * {covariate})", f"{prefix}__xss"),
                         (f"SUM({value} * {covariate})", f"{prefix}__xy")]
        inner += [f"{aggregate} AS {name}" for aggregate, name in sums]
        return cls(inner, [arm, *map(quote, grouping_columns)], [name for _, name in sums], len(grouping_columns))

    def finest(self, source: str, where: str) -> str:
        return f"SELECT {', '.join(self.inner)}\nFROM {source}\nWHERE {where}\nGROUP BY {', '.join(self.keys)}"

    def rollup(self, groups: str, then_by: str = "") -> str:
        """The GROUPING SETS over `groups` (the finest grouping, as a subquery or a table). Each sum adds its
        groups in one fixed order (`then_by` breaks ties): groups leave a parallel aggregation in any order,
        and floating-point sums in another order differ in their last bits."""
        keys = ["arm", *(f"g{index}" for index in range(self.grouped))]
        order = ", ".join(keys + ([then_by] if then_by else []))
        outer = ["CAST(arm AS VARCHAR) AS arm"]
        for key in keys[1:]:
            outer += [f"CAST({key} AS VARCHAR) AS {key}_value", f"GROUPING({key}) AS {key}_rolled"]
        outer += ["SUM(units) AS units"] + [f"SUM({name} ORDER BY {order}) AS {name}" for name in self.sums]
        sets = ["(arm)"] + [f"(arm, {key})" for key in keys[1:]]
        return f"SELECT {', '.join(outer)} FROM {groups}\nGROUP BY GROUPING SETS ({', '.join(sets)})"


def _statistic(metric: Metric, row: dict[str, Any]) -> Statistic:
    p = metric.id
    n = int(row[f"{p}__n"] or 0)
    main = SampleMean(n, float(row[f"{p}__s"] or 0), float(row[f"{p}__ss"] or 0))
    if metric.kind == "ratio":
        denominator = SampleMean(n, float(row[f"{p}__ds"] or 0), float(row[f"{p}__dss"] or 0))
        return RatioStatistic(main, denominator, float(row[f"{p}__nd"] or 0))
    if metric.covariate:
        pre = SampleMean(n, float(row[f"{p}__xs"] or 0), float(row[f"{p}__xss"] or 0))
        return RegressionStatistic(main, pre, float(row[f"{p}__xy"] or 0))
    return main


@dataclass(frozen=True)
class Aggregates:
    """Sufficient statistics: overall, per (segment column, value), per day — each arm -> metric -> statistic."""

    units: dict[str, int]
    overall: Cell
    segment_units: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    segments: dict[tuple[str, str], Cell] = field(default_factory=dict)
    daily_units: dict[str, dict[str, int]] = field(default_factory=dict)
    daily: dict[str, Cell] = field(default_factory=dict)
    caps: dict[str, float] = field(default_factory=dict)
    sql: str = ""
    passing: dict[str, dict[str, int]] = field(default_factory=dict)  # arm -> metric -> units its filter keeps
    rows: int | None = None
    excluded: dict[str, int] = field(default_factory=dict)  # rows left out, by reason

    def data_quality(self, plan: Plan) -> dict[str, Any]:
        """Nothing dropped silently: the rows left out by reason, and per metric and arm the units counted,
        filtered out by the metric's filter, and missing an outcome (or its paired column)."""
        metrics = []
        for metric in plan.metrics:
            for arm in plan.design.arms:
                if arm not in self.units:
                    continue
                units = self.units[arm]
                n = self.overall[arm][metric.id].n
                passing = self.passing.get(arm, {}).get(metric.id, units)
                metrics.append({"metric": metric.id, "arm": arm, "units": units, "n": n,
                                "filtered_out": units - passing, "missing_outcome": passing - n})
        return {"rows": self.rows, "excluded": {k: v for k, v in self.excluded.items() if v}, "metrics": metrics}

    def cumulative(self, arms: tuple[str, ...]) -> Iterator[tuple[str, Cell]]:
        """(day, statistics of all data up to and including that day) from the first day every arm has
        data — sufficient statistics add up, so each day costs one addition per metric."""
        running: Cell = {}
        for day, cell in self.daily.items():
            for arm in arms:
                if arm in cell:
                    running[arm] = ({m: running[arm][m] + s for m, s in cell[arm].items()} if arm in running
                                    else dict(cell[arm]))
            if all(arm in running for arm in arms):
                yield day, running


SLICE_ROWS = 1 << 22  # rows of a Parquet file aggregated by one thread: fixed, so the same on every machine


def aggregate(plan: Plan, path: Path, format: str = "csv") -> Aggregates:
    """Run the compiled SQL in DuckDB (in memory, locked to the pinned file) over the pinned file, with numbers
    reproducible to the last bit: DuckDB adds floating-point sums in whatever order its threads finish (a
    10M-row run's p-values varied by 4e-11 from run to run), so a Parquet file is aggregated in fixed slices
    of rows, each by one thread, the slices' sums then added in slice order (100M rows: 3.6 s, against 3.0 s
    unordered and 5.7 s on one thread); a CSV file on one thread."""
    path = Path(path)
    connection = locked_connection([path], threads=1)
    if format != "parquet":
        return aggregate_source(plan, source_sql(path, format), connection)
    return aggregate_source(plan, source_sql(path, format), connection, pruned=True,
                            statistics=lambda query: _sliced(plan, query, path, connection))


def _sliced(plan: Plan, query: "_StatisticsQuery", path: Path, connection) -> tuple[str, list[dict[str, Any]]]:
    """The finest grouping of each slice of SLICE_ROWS rows into a table, a slice per core at a time (each
    connection's query on one thread; how many at once changes nothing), then the roll-up adding the
    slices' groups in slice order."""
    from concurrent.futures import ThreadPoolExecutor

    numbered = f"read_parquet({literal(location(path))}, file_row_number = true)"
    where = window_condition(plan)
    rows, = connection.execute(f"SELECT COUNT(*) FROM {source_sql(path, 'parquet')}").fetchone()

    def grouped(index: int) -> str:
        within = f"file_row_number >= {index * SLICE_ROWS} AND file_row_number < {(index + 1) * SLICE_ROWS}"
        return f"SELECT {index} AS slice, * FROM ({query.finest(numbered, f'{within} AND ({where})')}) AS part"
    connection.execute(f"CREATE TABLE finest AS {grouped(0)}")
    slices = range(1, -(-rows // SLICE_ROWS))

    def insert(index: int) -> None:
        cursor = connection.cursor()  # its own connection to the same database: the two run side by side
        try:
            cursor.execute(f"INSERT INTO finest {grouped(index)}")
        finally:
            cursor.close()
    with ThreadPoolExecutor(min(os.cpu_count() or 1, 8)) as pool:
        list(pool.map(insert, slices))
    sql = query.rollup("finest", then_by="slice")
    return f"{grouped(0)}\n-- ... for each slice of {SLICE_ROWS:,} rows, then:\n{sql}", records(connection.execute(sql))


def aggregate_table(plan: Plan, url: str, sha256: str) -> Aggregates:
    """Run the compiled SQL in PostgreSQL over a pinned warehouse table: only the sufficient statistics
    leave the database. The snapshot hash is recomputed in the same read-only snapshot first, so the
    statistics are exactly those of the pinned rows (a changed table raises InputError, naming the fix)."""
    from ..backends.warehouse import WarehouseTable, snapshot_in, snapshot_transaction
    from ..errors import InputError
    from ..sqlengine import POSTGRESQL

    table = WarehouseTable.parse(url)
    with snapshot_transaction(table) as connection:
        found = snapshot_in(connection, table)
        if found.sha256 != sha256:
            raise InputError(f"warehouse table {table.relation} does not match its pin (pinned {sha256[:12]}…, "
                             f"snapshot is {found.sha256[:12]}… over {found.rows:,} rows)", where=url.partition("#")[0])
        return aggregate_source(plan, table.relation, connection, POSTGRESQL)


def aggregate_source(plan: Plan, source: str, connection, dialect: Dialect = DUCKDB, pruned: bool = False,
                     statistics=None) -> Aggregates:
    """The caps, the single statistics scan and the exclusion counts over `source` (a reader or a
    relation), on any DB-API connection whose engine `dialect` describes (`pruned`: a Parquet file, see
    sqlengine.count_where; `statistics`: runs the statistics query its own way, giving its SQL and rows)."""
    caps: dict[str, float] = {}
    if (query := cap_sql(plan, source, dialect)) is not None:
        caps = {name.removeprefix("cap__"): float(value) for name, value in record(connection.execute(query)).items()
                if value is not None}  # (no row in the window: no quantile, so nothing to cap)
    if statistics is not None:
        sql, rows = statistics(_StatisticsQuery.of(plan, caps))
    else:
        sql = statistics_sql(plan, source, caps, dialect)
        rows = records(connection.execute(sql))
    counts = record(connection.execute(exclusions_sql(plan, source, dialect, pruned)))
    total = counts.pop("rows")
    return replace(_collect(plan, rows, caps, sql), rows=total, excluded=counts)


def _collect(plan: Plan, rows: list[dict[str, Any]], caps: dict[str, float], sql: str) -> Aggregates:
    grouping_columns = _grouping_columns(plan)
    timed = plan.window.time_column is not None
    units: dict[str, int] = {}
    passing: dict[str, dict[str, int]] = {}
    overall: Cell = {}
    segment_units: dict[tuple[str, str], dict[str, int]] = {}
    segments: dict[tuple[str, str], Cell] = {}
    daily_units: dict[str, dict[str, int]] = {}
    daily: dict[str, Cell] = {}
    for row in rows:
        arm = row["arm"]
        statistics = {m.id: _statistic(m, row) for m in plan.metrics}
        grouped = [i for i in range(len(grouping_columns)) if row[f"g{i}_rolled"] == 0]
        if not grouped:
            units[arm], overall[arm] = int(row["units"]), statistics
            passing[arm] = {m.id: int(row[f"{m.id}__pass"]) for m in plan.metrics if m.filter}
            continue
        index = grouped[0]
        value = str(row[f"g{index}_value"])
        if timed and index == len(grouping_columns) - 1:
            day = value[:10] if plan.window.time_type == "date" else value
            daily_units.setdefault(day, {})[arm] = int(row["units"])
            daily.setdefault(day, {})[arm] = statistics
        else:
            key = (grouping_columns[index], value)
            segment_units.setdefault(key, {})[arm] = int(row["units"])
            segments.setdefault(key, {})[arm] = statistics
    order = (lambda item: _number(item[0])) if plan.window.time_type == "number" else (lambda item: item[0])
    return Aggregates(units, overall, segment_units, dict(sorted(segments.items())),
                      dict(sorted(daily_units.items(), key=order)), dict(sorted(daily.items(), key=order)), caps, sql,
                      passing)


def _grouping_columns(plan: Plan) -> list[str]:
    """Segments, then the time column (last, when there is one): the GROUPING SETS beside the overall arm."""
    return [*plan.segments.columns, *([plan.window.time_column] if plan.window.time_column else [])]


def _number(text: str) -> float:
    """Period numbers sort as numbers (1, 2, ..., 10), not as text (1, 10, 2)."""
    try:
        return float(text)
    except ValueError:
        return float("inf")
