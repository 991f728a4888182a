"""Metric filters are expressions, never SQL text: DuckDB's own parser reads each one, only a single scalar
boolean expression made of allow-listed constructs is accepted, and what reaches a query is DuckDB's
re-rendering of that expression tree (no comment, no second statement, no subquery can survive it).

Allowed: column references (by bare name), literals, comparisons, AND / OR / NOT, IN lists, BETWEEN,
IS [NOT] NULL, CASE, CAST, COALESCE, arithmetic and a short list of pure scalar functions. Anything
else — subqueries, table functions (read_csv ...), aggregates, window functions, lambdas, parameters,
qualified names, statements — is refused, naming the construct.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 2000

ALLOWED_CLASSES = {"COLUMN_REF", "CONSTANT", "COMPARISON", "CONJUNCTION", "OPERATOR", "BETWEEN", "CASE", "CAST",
                   "FUNCTION", "TYPE"}
ALLOWED_OPERATORS = {"OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "COMPARE_IN", "COMPARE_NOT_IN",
                     "OPERATOR_COALESCE"}
ALLOWED_FUNCTIONS = {
    "+", "-", "*", "/", "//", "%", "abs", "round", "floor", "ceil", "sign", "sqrt", "ln", "log10", "least",
    "greatest", "nullif", "isnan", "isinf", "isfinite",
    "~~", "!~~", "~~*", "!~~*", "lower", "upper", "length", "trim", "substring", "starts_with", "ends_with",
    "contains", "||", "concat",
    "year", "month", "day", "dayofweek", "hour", "date_part", "date_trunc",
}
NAMES = {"SUBQUERY": "a subquery", "STAR": "*", "WINDOW": "a window function", "LAMBDA": "a lambda",
         "PARAMETER": "a query parameter", "COLLATE": "COLLATE", "POSITIONAL_REFERENCE": "a positional reference"}


class ExpressionError(ValueError):
    """A filter that is not a plain scalar expression; the message names the construct."""


@dataclass(frozen=True)
class Expression:
    """A validated filter: DuckDB's canonical rendering and the columns it reads."""

    sql: str
    columns: tuple[str, ...]


def _serialize(connection, sql: str) -> dict[str, Any]:
    return json.loads(connection.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()[0])


@functools.lru_cache(maxsize=256)
def parse_filter(text: str) -> Expression:
    """Validate a metric filter and return its canonical SQL (raises ExpressionError)."""
    import duckdb

    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"is {len(text):,} characters long; a filter may have at most {MAX_LENGTH:,}")
    if any(kind == duckdb.token_type.comment for _, kind in duckdb.tokenize(text)):
        raise ExpressionError("contains an SQL comment (-- or /* */); a filter is one plain expression")
    connection = duckdb.connect(config={"enable_external_access": False})
    try:
        tree = _serialize(connection, f"SELECT {text}")
        expression = _single_expression(tree, text)
        columns: list[str] = []
        _check(expression, columns)
        canonical = connection.execute("SELECT json_deserialize_sql(?::JSON)", [json.dumps(tree)]).fetchone()[0]
        if not canonical.startswith("SELECT "):
            raise ExpressionError(f"could not be re-rendered as an expression (got {canonical!r})")
        sql = canonical.removeprefix("SELECT ")
        again = _single_expression(_serialize(connection, f"SELECT {sql}"), sql)  # the rendering means the same
        _check(again, [])
    finally:
        connection.close()
    return Expression(sql, tuple(dict.fromkeys(columns)))


def _single_expression(tree: dict[str, Any], text: str) -> dict[str, Any]:
    if tree.get("error"):
        raise ExpressionError(f"is not a valid SQL expression ({tree.get('error_message', 'syntax error')})")
    statements = tree.get("statements") or []
    if len(statements) != 1:
        raise ExpressionError("must be one expression, not several statements")
    node = statements[0].get("node") or {}
    extra = [key for key in ("where_clause", "having", "sample", "qualify") if node.get(key)]
    if node.get("type") != "SELECT_NODE" or (node.get("from_table") or {}).get("type", "EMPTY") != "EMPTY" \
            or extra or node.get("group_expressions") or node.get("modifiers") \
            or (node.get("cte_map") or {}).get("map"):
        raise ExpressionError("must be a single expression (it reads as a query with clauses of its own)")
    select = node.get("select_list") or []
    if len(select) != 1:
        raise ExpressionError(f"must be a single expression (found {len(select)} comma-separated ones)")
    if select[0].get("alias"):
        raise ExpressionError("must not name an alias")
    return select[0]


def _check(node: Any, columns: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _check(item, columns)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("class")
    if kind is not None:
        if kind not in ALLOWED_CLASSES:
            raise ExpressionError(f"uses {NAMES.get(kind, kind.lower().replace('_', ' '))}, which a filter may not")
        if kind == "OPERATOR" and node.get("type") not in ALLOWED_OPERATORS:
            raise ExpressionError(f"uses the operator {str(node.get('type')).lower().replace('_', ' ')}, "
                                  "which a filter may not")
        if kind == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name not in ALLOWED_FUNCTIONS or node.get("schema") or node.get("catalog") or node.get("filter") \
                    or node.get("distinct") or (node.get("order_bys") or {}).get("orders"):
                raise ExpressionError(f"calls {name}(), which a filter may not (allowed: "
                                      f"{', '.join(sorted(f for f in ALLOWED_FUNCTIONS if f.isalpha()))})")
        if kind == "COLUMN_REF":
            names = node.get("column_names") or []
            if len(names) != 1:
                raise ExpressionError(f"refers to {'.'.join(names)!r}; name a column of the input by itself")
            columns.append(names[0])
    for value in node.values():
        _check(value, columns)
