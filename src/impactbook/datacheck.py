"""Stage 3, the data: every check on a pinned input that can be made before a kernel runs a cell, compiled to
SQL and run by DuckDB over the pinned file (locked to that file), or by PostgreSQL over a pinned warehouse
table (backends.warehouse). No row is loaded into Python.

- the data contract: types (any integer or float width), nullability, allowed values, ranges, finite
  numbers, uniqueness, undeclared columns, at least one row;
- the plan against the data: every column the plan names exists ("did you mean"), fits its metric's
  kind, the arms' labels occur (listing those found), the unit is present and unique, the time column
  holds dates;
- time: the span of the time column and how many rows are dated after the run began.

A run's checks of a file are made in a helper process (FileChecker): the run's own process never opens a
DuckDB database, which would keep ~50 MiB there, beside the kernel, until the run ends.
"""

from __future__ import annotations

import base64
import datetime as dt
import difflib
import json
import math
import pickle
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .catalog import ColumnRule, Contract
from .expressions import ExpressionError, parse_filter
from .errors import InputError
from .hashing import warehouse_url
from .inputs import ResolvedInput, hash_check, table_mismatch
from .plan import Plan
from .processes import Helper
from .sqlengine import DUCKDB, POSTGRESQL, Dialect, count_where, literal, locked_connection, quote, record, source_sql

INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT"}
FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
TEXT_TYPES = {"VARCHAR"}
DATE_TYPES = {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}
LABEL_ROWS = 1000  # label groups fetched by the arms' check (the arms' always among them)
LABELS_SHOWN = 20


def _family(duckdb_type: str) -> str:
    base = duckdb_type.split("(")[0].upper()
    if base in INTEGER_TYPES:
        return "int"
    if base in FLOAT_TYPES or base == "DECIMAL":
        return "float"
    if base == "BOOLEAN":
        return "bool"
    if base in DATE_TYPES:
        return "date"
    return "str" if base in TEXT_TYPES else base.lower()


FAMILIES_FOR = {"int": {"int"}, "float": {"int", "float"}, "bool": {"bool"}, "date": {"date"}, "datetime": {"date"},
                "str": {"str"}}


@dataclass(frozen=True)
class InputFacts:
    """What the data check found in one pinned input."""

    name: str
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    first_time: str | None = None
    last_time: str | None = None
    future_rows: int = 0
    arms: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    synthetic: bool = False
    steady: dict[str, int] | None = None  # the file's identity as hashed (inputs.sha256_steady); not recorded
    copy: Path | None = None  # an object's bytes as hashed, on local disk, for the run's kernel; not recorded

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "first_time": self.first_time, "last_time": self.last_time,
                "future_rows": self.future_rows, "arms": self.arms, "excluded": self.excluded,
                "synthetic": self.synthetic}


@dataclass
class _Rule:
    """One counted violation: where it is reported, what fails, and the SQL condition that finds it.
    `bound` lets a column's COUNT/MIN/MAX decide the rule without evaluating `condition` on every row:
    ("null", column), ("below", column, value), ("above", column, value) or ("finite", column)."""

    field: str
    check: str
    condition: str
    example: str
    bound: tuple | None = None


@dataclass
class _Columns:
    """How a column is read. A CSV is read as text (so a check can say which values fail to parse); a
    typed file (Parquet) is checked on its own types — casting 100M values to text would cost minutes."""

    csv: bool
    types: dict[str, str]
    dialect: Dialect = DUCKDB

    @property
    def pruned(self) -> bool:
        """A Parquet file read by DuckDB: counts of failing rows are best pushed into the scan (count_where)."""
        return not self.csv and self.dialect is DUCKDB

    def family(self, column: str) -> str | None:
        return None if self.csv else _family(self.types.get(column, ""))

    def text(self, column: str) -> str:
        return quote(column) if self.csv or self.family(column) == "str" else f"CAST({quote(column)} AS VARCHAR)"

    def number(self, column: str) -> str:
        if self.family(column) == "bool":  # PostgreSQL casts a boolean to a number only through an integer
            return f"CAST(CAST({quote(column)} AS INTEGER) AS DOUBLE PRECISION)"
        if self.family(column) in ("int", "float"):
            return f"CAST({quote(column)} AS DOUBLE PRECISION)"
        return self.dialect.try_cast(self.text(column), "DOUBLE PRECISION")

    def present(self, column: str) -> str:
        return f"{quote(column)} IS NOT NULL"

    def example(self, column: str) -> str:
        """What a failing row shows: the value as stored (text in a CSV)."""
        return quote(column)

    def timestamp(self, column: str) -> str:
        if not self.csv and _family(self.types.get(column, "")) == "date":
            return f"CAST({quote(column)} AS TIMESTAMPTZ)"
        return self.dialect.try_cast(self.text(column), "TIMESTAMPTZ")


CHECK_TIMEOUT_S = 6 * 3600.0  # a file check has no natural deadline; a helper silent this long is killed


class FileChecker:
    """DuckDB's checks of pinned files, made by a helper process started now (processes.Helper: it dies with
    this process). A DuckDB database keeps ~50 MiB in the process that opened it after it is closed (its
    allocator's and catalog's memory); in a run's own process that stays beside the kernel until the run ends,
    and sets the peak of the run's process tree. When the helper cannot run, dies or answers nonsense, the
    caller makes the check itself: the helper changes where a check runs, never what it finds."""

    def __init__(self) -> None:
        self._helper = Helper(__name__)

    @property
    def helper_pid(self) -> int | None:
        return self._helper.pid

    def check(self, item: ResolvedInput, plan: Plan | None, now: dt.datetime, role: str | None) -> InputFacts | None:
        """The helper's facts about `item`'s file (its pin already checked here), or None: check it yourself."""
        deadline = time.monotonic() + CHECK_TIMEOUT_S
        if not self._helper.send({"pickled": _pickled((item, plan, now, role))}, deadline):
            return None
        answer = self._helper.receive(deadline)
        try:
            facts = _unpickled(answer)
        except Exception:  # (None: the helper died or went silent; or nonsense)
            return None
        return facts if isinstance(facts, InputFacts) else None

    def close(self) -> None:
        self._helper.close()


def _pickled(value: Any) -> str:
    """Requests and answers go pickled (between two processes of this user, over a private pipe): exactly the
    objects the caller holds, where JSON would turn a contract's date or datetime into a string, and change
    the SQL compiled from it."""
    return base64.b64encode(pickle.dumps(value)).decode()


def _unpickled(message: dict[str, str]) -> Any:
    return pickle.loads(base64.b64decode(message["pickled"]))


def _serve() -> None:
    """The helper: one request per line (FileChecker.check), one InputFacts per line, until stdin closes. A
    check that raises ends the helper (the caller then makes it itself, and sees the error)."""
    from . import faults

    for line in sys.stdin:
        faults.point("inputs.helper")
        item, plan, now, role = _unpickled(json.loads(line))
        sys.stdout.write(json.dumps({"pickled": _pickled(_check_file(item, plan, now, role, None))}) + "\n")
        sys.stdout.flush()


def check_input(item: ResolvedInput, plan: Plan | None, now: dt.datetime, role: str | None = None,
                copies: Path | None = None, checker: FileChecker | None = None) -> InputFacts:
    """Pin, contract, the plan's columns (`role`: "primary" for the table the design and metrics live in,
    "feedback" for a rollout's feedback table) and time, as problems named by dataset, column and field.
    Without a plan, only the pin and the contract are checked (`impactbook dataset verify`). An object in a
    store is checked on the local copy of the bytes its hash was taken from, kept in `copies` for the run's
    kernel (InputFacts.copy), or removed here when `copies` is None. A file's checks are made by `checker`'s
    helper when there is one."""
    role = role if plan is not None else None
    from . import faults

    faults.point("inputs.checking")
    if warehouse_url(item.entry.uri):
        return _check_table(item, plan, now, role)
    hashed = hash_check(item, copies)
    if hashed.problem:
        return InputFacts(item.name, problems=[hashed.problem], synthetic=item.entry.synthetic)
    if hashed.copy is None:
        return _check_file(item, plan, now, role, hashed.steady, checker)
    try:
        facts = _check_file(replace(item, path=hashed.copy), plan, now, role, hashed.steady, checker)
        return replace(facts, copy=hashed.copy if copies is not None else None)
    finally:
        if copies is None:
            hashed.copy.unlink(missing_ok=True)


def _check_file(item: ResolvedInput, plan: Plan | None, now: dt.datetime, role: str | None,
                steady: dict[str, int] | None, checker: FileChecker | None = None) -> InputFacts:
    if checker is not None and (facts := checker.check(item, plan, now, role)) is not None:
        return replace(facts, steady=steady)
    import duckdb

    connection = locked_connection([item.path])
    typed = source_sql(item.path, item.entry.format)
    try:
        types = {name: kind for name, kind, *_ in connection.execute(f"DESCRIBE SELECT * FROM {typed}").fetchall()}
        columns = _Columns(item.entry.format != "parquet", types)
        return replace(_check_rows(connection, item, plan, now, role, columns, typed,
                                   source_sql(item.path, item.entry.format, as_text=True)), steady=steady)
    except duckdb.Error as exc:
        return InputFacts(item.name, problems=[f"datasets.{item.name}: cannot read {item.uri} "
                                               f"({str(exc).splitlines()[0]})"], synthetic=item.entry.synthetic)
    finally:
        connection.close()


def _check_table(item: ResolvedInput, plan: Plan | None, now: dt.datetime, role: str | None) -> InputFacts:
    """A warehouse table: its pin and every check run in PostgreSQL, in the one read-only snapshot whose
    hash is checked first (backends.warehouse), on the table's own column types."""
    from .backends.warehouse import WarehouseTable, column_types, snapshot_in, snapshot_transaction

    table = WarehouseTable.parse(item.entry.uri)
    try:
        with snapshot_transaction(table) as connection:
            if problem := table_mismatch(item, snapshot_in(connection, table)):
                return InputFacts(item.name, problems=[problem], synthetic=item.entry.synthetic)
            columns = _Columns(False, column_types(connection, table), POSTGRESQL)
            return _check_rows(connection, item, plan, now, role, columns, table.relation, table.relation)
    except InputError as exc:
        return InputFacts(item.name, problems=[f"datasets.{item.name}.uri: {exc}"], synthetic=item.entry.synthetic)


def _check_rows(connection, item: ResolvedInput, plan: Plan | None, now: dt.datetime, role: str | None,
                columns: _Columns, typed: str, text_source: str) -> InputFacts:
    """Contract, plan columns, uniqueness, arms and time over `typed` (and `text_source`, a CSV read as
    text), on whichever engine `columns.dialect` names."""
    types = columns.types
    rules, problems = _contract_rules(item, columns)
    named, named_problems = _plan_columns(item, plan, role, columns)
    problems += named_problems
    rules += _kind_rules(plan, named, columns) if role == "primary" else []
    time_column = plan.window.time_column if role == "primary" and plan.window.time_column in types else None
    if time_column and plan.window.time_type == "number":
        time_column = None  # ordered numerically; no calendar to check it against
    facts = _scan(connection, text_source, rules, columns, time_column, now)
    problems += facts.pop("problems")
    if facts["rows"] == 0:
        problems.append(f"datasets.{item.name}: {item.uri} has no rows")
    for column in (item.entry.contract.unique if item.entry.contract else []):
        if column in types:
            problems += _duplicates(connection, typed, columns, column, f"datasets.{item.name}.contract.unique")
    arms, excluded = {}, {}
    one_row_per_unit = plan is not None and (plan.randomized or plan.design.kind == "observational")
    if role == "primary" and facts["rows"] and one_row_per_unit:
        if plan.design.unit in types and plan.design.unit not in (item.entry.contract.unique
                                                                  if item.entry.contract else []):
            problems += _duplicates(connection, typed, columns, plan.design.unit, "design.unit")
    if role == "primary" and facts["rows"] and plan.randomized:
        if plan.design.variant_column in types:
            arms, excluded, arm_problems = _arms(connection, typed, plan, item)
            problems += arm_problems
    if time_column and facts["unparsed_times"]:
        problems.append(f"window.time_column: column {time_column!r} of {item.uri} holds "
                        f"{facts['unparsed_times']:,} values that are not dates or times "
                        f"(e.g. {facts['unparsed_example']!r})")
    return InputFacts(item.name, facts["rows"], problems, facts["first_time"], facts["last_time"],
                      facts["future_rows"], arms, excluded, item.entry.synthetic)


def _contract_rules(item: ResolvedInput, columns: _Columns) -> tuple[list[_Rule], list[str]]:
    contract: Contract | None = item.entry.contract
    where = f"datasets.{item.name}.contract"
    if contract is None:
        return [], [f"{where}: input has no data contract"]
    problems, rules = [], []
    for column, rule in contract.columns.items():
        if column not in columns.types:
            problems.append(f"{where}.columns.{column}: column is missing from {item.uri}"
                            + _did_you_mean(column, columns.types))
            continue
        rules += _column_rules(f"{where}.columns.{column}", column, rule, columns)
    if contract.strict:
        extra = sorted(set(columns.types) - set(contract.columns))
        if extra:
            problems.append(f"{where}.strict: {item.uri} has columns the contract does not declare: {extra}")
    return rules, problems


def _column_rules(where: str, column: str, rule: ColumnRule, columns: _Columns) -> list[_Rule]:
    text, number, example = columns.text(column), columns.number(column), columns.example(column)
    present = columns.present(column)
    family = columns.family(column)
    numeric = family in ("int", "float")  # typed numbers: MIN/MAX decide ranges and finiteness
    rules = []
    if not columns.csv:
        if family not in FAMILIES_FOR[rule.type]:
            rules.append(_Rule(where, f"type {rule.type} (the column is {columns.types[column]})", "TRUE", text))
            return rules  # the other rules assume the declared type
    elif rule.type == "int":
        rules.append(_Rule(where, "type int", f"{present} AND NOT regexp_full_match(trim({text}), '[+-]?[0-9]+')", text))
    elif rule.type == "float":
        rules.append(_Rule(where, "type float", f"{present} AND {number} IS NULL", text))
    elif rule.type == "bool":
        rules.append(_Rule(where, "type bool", f"{present} AND TRY_CAST({text} AS BOOLEAN) IS NULL", text))
    elif rule.type in ("date", "datetime"):
        rules.append(_Rule(where, f"type {rule.type}", f"{present} AND {columns.timestamp(column)} IS NULL", text))
    if rule.type in ("int", "float") and family != "int":  # stored integers are always finite
        rules.append(_Rule(where, "finite", f"{present} AND {columns.dialect.not_finite(number)}", example,
                           ("finite", column) if numeric else None))
    if not rule.nullable:
        rules.append(_Rule(where, "not null", f"{quote(column)} IS NULL", "NULL", ("null", column)))
    if rule.allowed is not None:
        if rule.type in ("int", "float"):
            allowed = ", ".join(repr(float(v)) for v in rule.allowed if isinstance(v, (int, float)))
            rules.append(_Rule(where, f"allowed {rule.allowed}", f"{present} AND {number} NOT IN ({allowed or 'NULL'})"
                               if allowed else present, example))
        else:
            allowed = ", ".join(literal(v) for v in rule.allowed)
            rules.append(_Rule(where, f"allowed {rule.allowed}", f"{present} AND {text} NOT IN ({allowed})", example))
    if rule.min is not None:
        rules.append(_Rule(where, f"min {rule.min:g}", f"{present} AND {number} < {float(rule.min)!r}", example,
                           ("below", column, float(rule.min)) if numeric else None))
    if rule.max is not None:
        rules.append(_Rule(where, f"max {rule.max:g}", f"{present} AND {number} > {float(rule.max)!r}", example,
                           ("above", column, float(rule.max)) if numeric else None))
    return rules


def plan_columns(plan: Plan, role: str | None) -> dict[str, str]:
    """Every column the plan names in an input of this role, field path -> column."""
    named: dict[str, str] = {}
    if plan is None:
        return named
    if role == "primary":
        named.update({f"design.{field}": column for field, column in plan.design.columns().items()})
        if plan.window.time_column:
            named["window.time_column"] = plan.window.time_column
        for index, metric in enumerate(plan.metrics):
            for attribute in ("column", "numerator", "denominator", "covariate"):
                if getattr(metric, attribute):
                    named[f"metrics[{index}].{attribute}"] = getattr(metric, attribute)
            if metric.filter:
                try:
                    for number, column in enumerate(parse_filter(metric.filter).columns):
                        named[f"metrics[{index}].filter ({number + 1})"] = column
                except ExpressionError:
                    pass  # refused at freeze; a ledger edited by hand is verify's business
        for index, column in enumerate(plan.segments.columns):
            named[f"segments.columns[{index}]"] = column
        if plan.rollout is not None:
            named["rollout.stage_column"] = plan.rollout.stage_column
            for index, check in enumerate(plan.rollout.drift.checks if plan.rollout.drift else []):
                named[f"rollout.drift.checks[{index}].column"] = check.column
    elif role == "drift_reference" and plan.rollout is not None and plan.rollout.drift is not None:
        for index, check in enumerate(plan.rollout.drift.checks):
            named[f"rollout.drift.checks[{index}].column"] = check.column
    elif role == "feedback" and plan.rollout is not None and plan.rollout.feedback is not None:
        named["design.variant_column"] = plan.design.variant_column
        named["rollout.feedback.rating_column"] = plan.rollout.feedback.rating_column
        named["rollout.feedback.reason_column"] = plan.rollout.feedback.reason_column
    return named


def _plan_columns(item: ResolvedInput, plan: Plan, role: str | None,
                  columns: _Columns) -> tuple[dict[str, str], list[str]]:
    named = plan_columns(plan, role)
    problems = [f"{path}: no column {column!r} in dataset {item.name} ({item.uri})" + _did_you_mean(column, columns.types)
                for path, column in named.items() if column not in columns.types]
    return {p: c for p, c in named.items() if c in columns.types}, problems


NUMERIC_DESIGN_FIELDS = ("design.covariates[", "design.regressors[", "design.predictors[")


def _kind_rules(plan: Plan, named: dict[str, str], columns: _Columns) -> list[_Rule]:
    """A proportion's column holds 0/1; a mean's, a ratio's and a covariate's hold numbers, and so do the
    design's covariates, regressors and predictors (one of 1e300 in a regressor passed the gate and REFUTED
    an interrupted time series with a 290-digit effect)."""
    rules = []
    for path, column in named.items():  # as DuckDB types them (a CSV's true/false column is BOOLEAN, a number)
        if path.startswith(NUMERIC_DESIGN_FIELDS) and _family(columns.types.get(column, "")) not in ("int", "bool"):
            rules += _number_rules(path, column, "numbers", columns)
    for index, metric in enumerate(plan.metrics):
        for attribute in ("column", "numerator", "denominator", "covariate"):
            path = f"metrics[{index}].{attribute}"
            if path not in named:
                continue
            column = named[path]
            number, present, example = columns.number(column), columns.present(column), columns.example(column)
            family = columns.family(column)
            typed = family in ("int", "float", "bool")
            if metric.kind == "proportion" and attribute == "column":
                words = "" if typed else f" AND lower(trim({columns.text(column)})) NOT IN ('true', 'false')"
                condition = f"{present} AND {number} IS DISTINCT FROM 0 AND {number} IS DISTINCT FROM 1{words}"
                check = f"holds 0/1 for a proportion (column {column!r})"
                if family == "int":  # integers are 0/1 exactly when they lie within [0, 1]
                    rules += [_Rule(path, check, condition, example, ("below", column, 0.0)),
                              _Rule(path, check, condition, example, ("above", column, 1.0))]
                else:
                    rules.append(_Rule(path, check, condition, example))
            elif family != "int":  # a stored integer is always a finite number
                rules += _number_rules(path, column, f"numbers for a {metric.kind}", columns)
    return rules


def _number_rules(path: str, column: str, what: str, columns: _Columns) -> list[_Rule]:
    """The column holds finite numbers (blanks aside) within ±LARGEST_ANALYSABLE; on a float column its
    COUNT/MIN/MAX decide both."""
    number, present, example = columns.number(column), columns.present(column), columns.example(column)
    family = columns.family(column)
    rules = [_Rule(path, f"holds {what} (column {column!r})",
                   f"{present} AND ({number} IS NULL OR {columns.dialect.not_finite(number)})", example,
                   ("finite", column) if family == "float" else None)]
    check = f"holds values within ±{LARGEST_ANALYSABLE:g}, whose squares a double holds (column {column!r})"
    condition = f"{present} AND abs({number}) > {LARGEST_ANALYSABLE!r}"
    if family == "float":
        return rules + [_Rule(path, check, condition, example, ("below", column, -LARGEST_ANALYSABLE)),
                        _Rule(path, check, condition, example, ("above", column, LARGEST_ANALYSABLE))]
    return rules + [_Rule(path, check, f"{condition} AND NOT ({number} IS NULL OR "
                                       f"{columns.dialect.not_finite(number)})", example)]


LARGEST_ANALYSABLE = 1e150  # a variance sums squares: 1e308 in one row overflowed, or swamped every effect


def _scan(connection, source: str, rules: list[_Rule], columns: _Columns, time_column: str | None,
          now: dt.datetime) -> dict[str, Any]:
    """Two passes. The first is cheap: the row count, each bounded column's COUNT, MIN and MAX (which
    decide its null, range and finiteness rules), a count of failing rows for each other rule, and the
    time span. Only rules that fail are read again, for their count and two examples. Over a Parquet file
    DuckDB answers the COUNT, MIN and MAX from the row groups' statistics, and each rule's count is its
    own subquery whose condition it pushes into the scan (count_where): 100M rows in well under a second."""
    bounded = sorted({rule.bound[1] for rule in rules if rule.bound})
    conditions = list(dict.fromkeys(rule.condition for rule in rules if not rule.bound))
    parts = ["COUNT(*) AS rows"]
    for number, column in enumerate(bounded):
        parts += [f"COUNT({quote(column)}) AS b{number}_n"]
        if columns.family(column) in ("int", "float"):
            parts += [f"MIN({quote(column)}) AS b{number}_lo", f"MAX({quote(column)}) AS b{number}_hi"]
    parts += [f"{count_where(source, condition, columns.pruned)} AS q{number}" for number, condition in enumerate(conditions)]
    typed_time = time_column is not None and columns.family(time_column) == "date"
    if time_column:
        stamp, text = columns.timestamp(time_column), columns.text(time_column)
        cutoff = f"TIMESTAMPTZ {literal(now.astimezone(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f+00'))}"
        shown = quote(time_column) if typed_time else stamp
        parts += [f"{columns.dialect.iso_utc(f'MIN({shown})')} AS first_time",
                  f"{columns.dialect.iso_utc(f'MAX({shown})')} AS last_time"]
        if typed_time:  # rows after the cutoff are counted only when the latest is (casting each costs seconds)
            parts += [f"CAST(MAX({quote(time_column)}) AS TIMESTAMPTZ) > {cutoff} AS any_future"]
        else:
            parts += [f"{count_where(source, f'{stamp} > {cutoff}', columns.pruned)} AS future_rows"]
        if not typed_time:  # a typed date column always parses
            parts += [f"COUNT(*) FILTER (WHERE {text} IS NOT NULL AND {stamp} IS NULL) AS unparsed_times",
                      f"MIN({text}) FILTER (WHERE {text} IS NOT NULL AND {stamp} IS NULL) AS unparsed_example"]
    row = record(connection.execute(f"SELECT {', '.join(parts)} FROM {source}"))
    if row.get("any_future"):
        row["future_rows"], = connection.execute(
            f"SELECT COUNT(*) FROM {source} WHERE {_after(columns, time_column, now)}").fetchone()
    summary = {column: (row[f"b{n}_n"], row.get(f"b{n}_lo"), row.get(f"b{n}_hi")) for n, column in enumerate(bounded)}
    counted = {condition: row[f"q{n}"] for n, condition in enumerate(conditions)}
    failing = [rule for rule in rules if _may_fail(rule, row["rows"], summary, counted)]
    failing = list({(rule.field, rule.condition): rule for rule in failing}.values())
    return {"rows": row["rows"], "problems": _examples(connection, source, failing), "first_time": row.get("first_time"),
            "last_time": row.get("last_time"), "future_rows": row.get("future_rows") or 0,
            "unparsed_times": row.get("unparsed_times") or 0, "unparsed_example": row.get("unparsed_example")}


def _after(columns: _Columns, column: str, now: dt.datetime) -> str:
    """The rows of a typed time column dated after `now`, compared in the column's own type (a date D
    means D 00:00 UTC, which is after now exactly when D is after today): no per-row cast."""
    utc = now.astimezone(dt.timezone.utc)
    kind = columns.types[column].upper()
    if kind == "DATE":
        return f"{quote(column)} > DATE {literal(utc.date().isoformat())}"
    if "TIME ZONE" in kind:
        return f"{quote(column)} > TIMESTAMPTZ {literal(utc.strftime('%Y-%m-%d %H:%M:%S.%f+00'))}"
    return f"{quote(column)} > TIMESTAMP {literal(utc.strftime('%Y-%m-%d %H:%M:%S.%f'))}"


def _may_fail(rule: _Rule, rows: int, summary: dict[str, tuple], counted: dict[str, int]) -> bool:
    if rule.bound is None:
        return bool(counted[rule.condition])
    present, low, high = summary[rule.bound[1]]
    kind = rule.bound[0]
    if kind == "null":
        return present < rows
    if present == 0:
        return False
    if kind == "finite":
        return not (math.isfinite(low) and math.isfinite(high))
    if kind == "below":
        return math.isnan(low) or low < rule.bound[2]
    return math.isnan(high) or high > rule.bound[2]


def _examples(connection, source: str, rules: list[_Rule]) -> list[str]:
    """Each failing rule's count of rows and two example values, in one more pass (only when some fail)."""
    if not rules:
        return []
    parts = []
    for number, rule in enumerate(rules):
        parts += [f"COUNT(*) FILTER (WHERE {rule.condition}) AS r{number}_n",
                  f"MIN({rule.example}) FILTER (WHERE {rule.condition}) AS r{number}_low",
                  f"MAX({rule.example}) FILTER (WHERE {rule.condition}) AS r{number}_high"]
    row = record(connection.execute(f"SELECT {', '.join(parts)} FROM {source}"))
    problems = []
    for number, rule in enumerate(rules):
        failing = row[f"r{number}_n"]
        if failing:
            examples = ", ".join(dict.fromkeys(repr(v) for v in (row[f"r{number}_low"], row[f"r{number}_high"])))
            problems.append(f"{rule.field}: fails {rule.check} ({failing:,} rows; e.g. {examples})")
    return problems


BITSET_LIMIT = 2**30  # bits (128 MiB): integer ids spanning a wider range are checked by hashing


def _duplicates(connection, source: str, columns: _Columns, column: str, field_path: str) -> list[str]:
    """Missing or repeated values of a column that must identify a row. Integer ids are counted exactly
    with a bitset over their range (DuckDB's bitstring_agg: 100M ids in ~2 s and ~200 MiB); other
    columns, and the examples when some value repeats, by a grouping that spills to disk."""
    if columns.family(column) == "int" and columns.dialect.bitset:
        low, high, present, missing = connection.execute(
            f"SELECT MIN({quote(column)}), MAX({quote(column)}), COUNT({quote(column)}), "
            f"COUNT(*) - COUNT({quote(column)}) FROM {source}").fetchone()
        if present and high - low < BITSET_LIMIT:
            distinct, = connection.execute(
                f"SELECT bit_count(bitstring_agg({quote(column)}, {int(low)}, {int(high)})) FROM {source}").fetchone()
            if distinct == present:
                return [f"design.unit: column {column!r} is empty in {missing:,} rows"] \
                    if missing and field_path == "design.unit" else []
    missing, repeated, extra_rows, examples = connection.execute(
        f"SELECT (SELECT COUNT(*) FROM {source} WHERE {quote(column)} IS NULL), COUNT(*), COALESCE(SUM(c - 1), 0), "
        f"{columns.dialect.first_values('v', 'c DESC, v', 3)} FROM (SELECT {quote(column)} AS v, COUNT(*) AS c FROM {source} "
        f"WHERE {quote(column)} IS NOT NULL GROUP BY 1 HAVING COUNT(*) > 1) AS repeated").fetchone()
    problems = []
    if repeated:
        problems.append(f"{field_path}: fails unique (column {column!r}: {repeated:,} values repeat, "
                        f"{int(extra_rows):,} extra rows; e.g. {', '.join(map(repr, examples))})")
    if missing and field_path == "design.unit":
        problems.append(f"design.unit: column {column!r} is empty in {missing:,} rows")
    return problems


def _arms(connection, source: str, plan: Plan, item: ResolvedInput) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Rows per label of the variant column; the plan's arms must occur, other rows are counted as excluded.
    Exactly, however many labels there are: the arms' and the missing label's groups come first, the
    others' rows are the total less theirs (only the first LABEL_ROWS groups are fetched, to name some)."""
    design = plan.design
    kept = f"label IS NULL OR label IN ({', '.join(literal(arm) for arm in design.arms)})"
    rows = connection.execute(
        f"SELECT label, n, SUM(n) OVER () AS total FROM (SELECT CAST({quote(design.variant_column)} AS VARCHAR) "
        f"AS label, COUNT(*) AS n FROM {source} GROUP BY 1) AS labels "
        f"ORDER BY ({kept}) DESC, n DESC, label LIMIT {LABEL_ROWS}").fetchall()
    found = {label: int(count) for label, count, _ in rows if label is not None}
    arms = {arm: found.get(arm, 0) for arm in design.arms}
    excluded = {}
    if (missing := sum(int(count) for label, count, _ in rows if label is None)):
        excluded["no variant"] = missing
    if (others := (int(rows[0][2]) if rows else 0) - missing - sum(arms.values())):
        excluded["variant not in the plan"] = others
    found = dict(sorted(found.items(), key=lambda pair: (-pair[1], pair[0])))  # (named most frequent first)
    problems = []
    absent = [arm for arm, count in arms.items() if not count]
    if absent:
        shown = ", ".join(repr(label) for label in list(found)[:LABELS_SHOWN]) or "none"
        problems.append(f"design: arm {' and '.join(map(repr, absent))} does not occur in column "
                        f"{design.variant_column!r} of {item.uri} (labels found: {shown})")
    return arms, excluded, problems


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else f"; its columns: {', '.join(list(known)[:30])}"


if __name__ == "__main__":  # (the module's own copy, not __main__'s: the answer pickles impactbook.datacheck's class)
    from impactbook.datacheck import _serve as serve

    serve()
