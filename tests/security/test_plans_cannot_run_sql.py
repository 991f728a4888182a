"""Attack: a plan's metric filter smuggles SQL (stacked statements, subqueries over other files, table
functions) into the aggregation query. Defence: filters are parsed by DuckDB's own parser into one
scalar expression of allow-listed constructs at freeze; every connection is locked to the pinned files."""

from __future__ import annotations

import pytest

from impactbook.errors import PlanError
from impactbook.expressions import parse_filter
from impactbook.freezing import freeze_plan
from impactbook.ledger import Ledger
from impactbook.sqlengine import locked_connection
from conftest import PLAN, edit_yaml

STACKED = ("true) THEN 1 END) AS x FROM read_csv('data/demo_experiment.csv') GROUP BY GROUPING SETS ((variant), "
           "(variant, platform), (variant, date)); COPY (SELECT 42 AS answer) TO 'pwned.txt'; SELECT 1 AS arm --")
PAYLOADS = {
    STACKED: "contains an SQL comment",
    "platform = 'web' -- ) OR true": "contains an SQL comment",
    "platform = 'web' /* ) OR true */": "contains an SQL comment",
    "true) THEN 1 END) AS x FROM t; SELECT 1 AS arm": "is not a valid SQL expression",
    "user_id IN (SELECT user_id FROM read_csv('data/other.csv'))": "uses a subquery",
    "platform IN (SELECT content FROM read_text('/etc/passwd'))": "uses a subquery",
    "sum(revenue) > 0": "calls sum()",
    "getvariable('x') IS NULL": "calls getvariable()",
    "x.platform = 'ios'": "refers to 'x.platform'",
    "platform = 'ios'; SELECT 1": "must be one expression",
    "revenue > 0, sessions > 1": "found 2 comma-separated ones",
    "list_transform([1], x -> x + 1)[1] = 2": "a filter may not",
    "row_number() OVER () > 1": "uses a window function",
}


@pytest.mark.parametrize("payload, refusal", PAYLOADS.items())
def test_a_filter_that_is_not_a_plain_expression_is_refused_at_freeze(project, payload, refusal):
    edit_yaml(project.root / PLAN, (("metrics", 0, "filter"), payload))
    before = Ledger(project.ledger_path).entries()
    with pytest.raises(PlanError) as refused:
        freeze_plan(project, PLAN)
    assert "metrics[0].filter" in str(refused.value) and refusal in str(refused.value), str(refused.value)
    assert Ledger(project.ledger_path).entries() == before, "nothing reaches the ledger"
    assert not (project.root / "pwned.txt").exists()


def test_an_allowed_filter_is_rendered_by_duckdb_and_a_comment_inside_a_string_is_just_text():
    expression = parse_filter("platform = 'ios' AND sessions > 2")
    assert expression.sql == "((platform = 'ios') AND (sessions > 2))"
    assert expression.columns == ("platform", "sessions")
    assert parse_filter("platform <> 'a -- b'").sql == "(platform != 'a -- b')"


def test_the_query_engine_reads_only_the_pinned_file_and_writes_nothing(tmp_path):
    import duckdb

    pinned, other = tmp_path / "pinned.csv", tmp_path / "other.csv"
    pinned.write_text("x\n1\n")
    other.write_text("secret\n42\n")
    connection = locked_connection([pinned])
    assert connection.execute(f"SELECT sum(x) FROM read_csv('{pinned}')").fetchone() == (1,)
    attacks = [f"SELECT * FROM read_csv('{other}')", "SELECT * FROM read_text('/etc/passwd')",
               f"COPY (SELECT 42) TO '{tmp_path / 'pwned.csv'}'", f"COPY (SELECT 1 AS x) TO '{pinned}'",
               f"ATTACH '{tmp_path / 'x.db'}'", "INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true",
               f"SELECT * FROM glob('{tmp_path}/*')"]
    for attack in attacks:
        with pytest.raises(duckdb.Error):
            connection.execute(attack)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.csv", "pinned.csv"]
    assert pinned.read_text() == "x\n1\n"


def test_a_filter_column_that_the_data_lacks_makes_the_run_inadmissible_before_the_kernel(project):
    from conftest import run
    edit_yaml(project.root / PLAN, (("metrics", 0, "filter"), "platfrom = 'ios'"))
    freeze_plan(project, PLAN)
    outcome = run(project)
    assert outcome.record.status.value == "INADMISSIBLE"
    assert any(p.startswith("metrics[0].filter (1): no column 'platfrom'") and "did you mean 'platform'" in p
               for p in outcome.record.gate["inadmissible"]), outcome.record.gate["inadmissible"]
    assert not (outcome.folder / "notebook.ipynb").exists()
