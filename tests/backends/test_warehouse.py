"""backends/warehouse.py and designs/aggregate.aggregate_table against a real PostgreSQL server: the
snapshot hash computed in SQL, and the A/B aggregation run there giving DuckDB's numbers on the same rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import numpy as np
import pandas as pd
import psycopg
import pytest

from impactbook.backends.warehouse import CANONICAL_SETTINGS, WarehouseTable, table_snapshot
from impactbook.designs.aggregate import aggregate, aggregate_table
from impactbook.designs.randomized import analyse
from impactbook.errors import CatalogError, InputError
from impactbook.plan import load_plan
from conftest import PLAN
from postgres_server import fresh_database, postgres_server, silent_server
from warehouse_data import copy_csv, load_demo, numbers

COLUMNS = ("user_id BIGINT, variant TEXT, platform TEXT, date DATE, pre_revenue DOUBLE PRECISION, "
           "converted INTEGER, sessions INTEGER, revenue DOUBLE PRECISION")


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.fixture
def database(postgres_url):
    return fresh_database(postgres_url, f"w_{secrets.token_hex(6)}")


def experiment_frame(n: int = 4000, seed: int = 12) -> pd.DataFrame:
    """Synthetic A/B rows with a known +10% conversion lift and heavy-tailed revenue (CUPED, cap, ratio)."""
    rng = np.random.default_rng(seed)
    variant = rng.choice(["control", "treatment"], n)
    frame = pd.DataFrame({
        "user_id": np.arange(n), "variant": variant, "platform": rng.choice(["ios", "android", "web"], n),
        "date": (pd.Timestamp("2026-11-23") + pd.to_timedelta(rng.integers(0, 6, n), unit="D")).strftime("%Y-%m-%d"),
        "pre_revenue": rng.gamma(2, 5, n).round(2),
        "converted": (rng.random(n) < np.where(variant == "treatment", 0.11, 0.10)).astype(int),
        "sessions": 1 + rng.poisson(2, n)})
    frame["revenue"] = (frame.pre_revenue * rng.gamma(4, 0.25, n) + frame.converted * 40).round(2)
    return frame


def load_table(url: str, frame: pd.DataFrame, name: str = "exposures", schema: str = "analytics") -> str:
    """The frame as a typed table in PostgreSQL (COPY from CSV text); returns its warehouse URI."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    copy_csv(url, f'"{schema}"."{name}"', COLUMNS, frame.to_csv(index=False).encode())
    return f"{url}#{schema}.{name}"


def python_snapshot(uri: str) -> str:
    """Reference: the documented snapshot definition recomputed in Python from the exported row texts."""
    table = WarehouseTable.parse(uri)
    with psycopg.connect(table.dsn) as connection:
        for setting, value in CANONICAL_SETTINGS.items():
            connection.execute(f"SET {setting} = '{value}'")
        lines = [r[0] for r in connection.execute(f"SELECT CAST(ROW(t.*) AS TEXT) FROM {table.relation} AS t")]
        types = connection.execute(
            "SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) "
            "FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (table.relation,)).fetchone()[0]
    digests = sorted(hashlib.sha256(line.encode()).digest() for line in lines)
    buckets: dict[int, list[bytes]] = {}
    for digest in digests:
        buckets.setdefault(digest[0], []).append(digest)
    body = b"".join(hashlib.sha256(b"".join(d)).digest() for _, d in sorted(buckets.items()))
    return hashlib.sha256(f"{types}\n".encode() + body).hexdigest()


def test_snapshot_hash_is_computed_in_sql_as_documented(database):
    uri = load_table(database, experiment_frame(500))
    snapshot = table_snapshot(uri)
    assert snapshot.rows == 500
    assert snapshot.sha256 == python_snapshot(uri)


def test_snapshot_ignores_row_order_and_names_any_changed_row(database):
    frame = experiment_frame(300)
    first = table_snapshot(load_table(database, frame, "a")).sha256
    assert table_snapshot(load_table(database, frame.iloc[::-1], "b")).sha256 == first  # same rows, other order
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("CREATE VIEW analytics.recent AS SELECT * FROM analytics.a")
    assert table_snapshot(f"{database}#analytics.recent").sha256 == first  # a view pins like its rows
    uri = load_table(database, frame, "c")
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute('UPDATE analytics.c SET revenue = revenue + 0.01 WHERE user_id = 7')
    assert table_snapshot(uri).sha256 != first
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute('UPDATE analytics.c SET revenue = revenue - 0.01 WHERE user_id = 7')
        assert table_snapshot(uri).sha256 == first
        connection.execute('ALTER TABLE analytics.c ALTER COLUMN sessions TYPE BIGINT')
    assert table_snapshot(uri).sha256 != first  # a column type is part of the snapshot


def test_uri_with_a_password_is_refused():
    with pytest.raises(CatalogError, match="PGPASSWORD"):
        WarehouseTable.parse("postgresql://me:secret@db.example/warehouse#public.exposures")
    for without_table in ("postgresql://me@db.example/warehouse#", "postgresql://me@db.example/warehouse"):
        with pytest.raises(CatalogError, match="no table"):
            WarehouseTable.parse(without_table)


def test_a_warehouse_that_never_answers_is_given_up_on_naming_the_table(monkeypatch):
    """libpq waited on such a server as long as the operating system let it: a pin or a run hung with no word."""
    from impactbook.backends import postgres

    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    monkeypatch.setattr(postgres, "CONNECT_TIMEOUT", 1)
    with silent_server() as port:
        with pytest.raises(InputError, match=f"cannot read warehouse table .*127.0.0.1.*{port}.*timeout expired"):
            table_snapshot(f"postgresql://me@127.0.0.1:{port}/warehouse#public.exposures")


def _plan(project):
    plan = load_plan(project.root / PLAN)
    window = plan.window.model_copy(update={"start": dt.date(2026, 11, 23), "end": dt.date(2026, 11, 27)})
    return plan.model_copy(update={"window": window})


def _assert_same_cells(found, expected):
    assert found.keys() == expected.keys()
    for key in expected:
        assert found[key].keys() == expected[key].keys(), key
        for metric in expected[key]:
            np.testing.assert_allclose(list(numbers(found[key][metric])), list(numbers(expected[key][metric])),
                                       rtol=1e-9, atol=0, err_msg=f"{key} {metric}")


def test_aggregation_in_postgres_equals_duckdb_over_the_same_rows_as_csv(project, database, tmp_path):
    frame = experiment_frame()
    uri = load_table(database, frame)
    path = tmp_path / "exposures.csv"
    frame.to_csv(path, index=False)
    plan = _plan(project)  # the example plan: proportion, CUPED mean with a control-quantile cap, ratio, segments
    duck = aggregate(plan, path)
    warehouse = aggregate_table(plan, uri, table_snapshot(uri).sha256)
    assert "GROUPING SETS" in warehouse.sql and "read_csv" not in warehouse.sql
    assert (warehouse.units, warehouse.rows, warehouse.excluded) == (duck.units, duck.rows, duck.excluded)
    assert duck.excluded["outside_window"] > 0  # the window really cuts rows in both engines
    assert warehouse.caps.keys() == duck.caps.keys()
    for metric, cap in duck.caps.items():
        assert warehouse.caps[metric] == pytest.approx(cap, rel=1e-12)
    _assert_same_cells(warehouse.overall, duck.overall)
    assert warehouse.segment_units == duck.segment_units
    assert warehouse.segments.keys() == duck.segments.keys()
    for key in duck.segments:
        _assert_same_cells(warehouse.segments[key], duck.segments[key])
    assert warehouse.daily_units == duck.daily_units
    assert list(warehouse.daily) == list(duck.daily)
    for day in duck.daily:
        _assert_same_cells(warehouse.daily[day], duck.daily[day])
    assert warehouse.data_quality(plan) == duck.data_quality(plan)
    ours, reference = analyse(plan, warehouse).scraps(), analyse(plan, duck).scraps()
    assert ours["verdicts"] == reference["verdicts"]
    _assert_same_values({k: v for k, v in ours.items() if k != "sql"}, {k: v for k, v in reference.items() if k != "sql"})


def _assert_same_values(found, expected, where="scraps"):
    """Every number of the analysis (effects, intervals, p-values, power, CUPED theta) to 1e-9 relative."""
    if isinstance(expected, dict):
        assert found.keys() == expected.keys(), where
        for key in expected:
            _assert_same_values(found[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(found) == len(expected), where
        for index, (x, y) in enumerate(zip(found, expected)):
            _assert_same_values(x, y, f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(found, bool):
        assert found == pytest.approx(expected, rel=1e-9, abs=1e-12, nan_ok=True), where
    else:
        assert found == expected, where


def test_metric_filters_and_a_pooled_cap_compile_for_postgres_too(project, database, tmp_path):
    frame = experiment_frame(3000, seed=5)
    uri = load_table(database, frame)
    path = tmp_path / "exposures.csv"
    frame.to_csv(path, index=False)
    plan = _plan(project)
    filters = {"conversion": "platform = 'ios'", "revenue_per_session": "sessions >= 2 AND platform IN ('web', 'android')"}
    metrics = [m.model_copy(update={"filter": filters[m.id]}) if m.id in filters else
               m.model_copy(update={"cap": m.cap.model_copy(update={"basis": "pooled", "quantile": 0.95})})
               if m.cap else m for m in plan.metrics]
    plan = plan.model_copy(update={"metrics": metrics})
    duck, warehouse = aggregate(plan, path), aggregate_table(plan, uri, table_snapshot(uri).sha256)
    assert warehouse.passing == duck.passing and duck.passing["control"]["conversion"] < duck.units["control"]
    assert warehouse.caps["revenue_per_user"] == pytest.approx(duck.caps["revenue_per_user"], rel=1e-12)
    _assert_same_cells(warehouse.overall, duck.overall)
    for key in duck.segments:
        _assert_same_cells(warehouse.segments[key], duck.segments[key])


def test_aggregation_refuses_a_table_whose_rows_changed_since_the_pin(project, database):
    uri = load_table(database, experiment_frame(500))
    pinned = table_snapshot(uri).sha256
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("DELETE FROM analytics.exposures WHERE user_id = 3")
    with pytest.raises(InputError, match="does not match its pin"):
        aggregate_table(_plan(project), uri, pinned)


def test_run_on_a_warehouse_table_gives_the_csv_runs_results(frozen_project, database):
    """End to end: `dataset add` pins the table by its snapshot hash (the query in the ledger), the gate
    checks pin and contract in PostgreSQL, the ab_test kernel aggregates there; the scraps equal the run
    over the same rows as CSV through DuckDB to 1e-9."""
    from impactbook.catalog import Catalog
    from impactbook.ledger import Ledger
    from impactbook.record import Status
    from conftest import cli, read_json, run
    from json import loads as read_json_text

    project = frozen_project
    on_csv = run(project)
    assert on_csv.record.status is Status.COMPLETED
    uri = load_demo(database, project.root / "data/demo_experiment.csv")
    added = cli(project, "dataset", "add", "demo_experiment", uri, "--replace", "--reason", "moved to the warehouse")
    assert added.returncode == 0, added.stderr
    assert "rows, snapshot hashed in the database" in added.stdout
    entry = Catalog.load(project).dataset("demo_experiment")
    assert (entry.uri, entry.format, entry.sha256) == (uri, "postgresql", table_snapshot(uri).sha256)
    assert entry.contract is not None  # re-pinning keeps the contract: it is now checked in PostgreSQL
    pin = [e for e in Ledger(project.ledger_path).entries() if e.get("kind") == "pin"][-1]
    assert pin["snapshot"]["rows"] == 20_000 and "sha256(convert_to(CAST(ROW(t.*) AS TEXT), 'UTF8'))" in pin["snapshot"]["sql"]

    in_warehouse = run(project)
    assert in_warehouse.record.status is Status.COMPLETED, in_warehouse.record.gate
    ours, reference = (read_json(o.folder / "scraps.json") for o in (in_warehouse, on_csv))
    assert ours["verdicts"] == reference["verdicts"]
    _assert_same_values({k: v for k, v in ours.items() if k != "sql"},
                        {k: v for k, v in reference.items() if k != "sql"})
    reproduced = cli(project, "reproduce", in_warehouse.record.run_id, "--json")  # the table's snapshot re-hashed
    assert reproduced.returncode == 0 and read_json_text(reproduced.stdout)["identical"] is True, reproduced.stderr


def test_gate_names_changed_rows_and_contract_breaks_in_the_warehouse(frozen_project, database):
    from impactbook.record import Status
    from conftest import cli, run

    project = frozen_project
    uri = load_demo(database, project.root / "data/demo_experiment.csv")
    assert cli(project, "dataset", "add", "demo_experiment", uri, "--replace", "--reason", "warehouse").returncode == 0
    assert cli(project, "dataset", "verify", "demo_experiment").returncode == 0
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("UPDATE public.demo_experiment SET revenue = -1 WHERE user_id IN (5, 6)")
        connection.execute("UPDATE public.demo_experiment SET platform = 'tv' WHERE user_id = 9")
    verified = cli(project, "dataset", "verify", "demo_experiment")
    assert verified.returncode == 3 and "does not match its pin" in verified.stdout and "rows" in verified.stdout
    outcome = run(project)
    assert outcome.record.status is Status.INADMISSIBLE
    assert "does not match its pin" in outcome.record.gate["inadmissible"][0]

    # the same broken rows pinned on purpose: now the contract, checked in PostgreSQL, refuses them
    assert cli(project, "dataset", "add", "demo_experiment", uri, "--replace", "--reason", "re-pinned").returncode == 0
    problems = " ".join(run(project).record.gate["inadmissible"])
    assert "contract.columns.revenue: fails min 0 (2 rows; e.g. -1.0)" in problems
    assert "contract.columns.platform: fails allowed" in problems and "'tv'" in problems


def test_contract_types_and_nulls_are_checked_on_the_tables_own_types(project, database):
    import datetime as dt

    from impactbook.catalog import Catalog
    from impactbook.datacheck import check_input
    from impactbook.inputs import ResolvedInput

    uri = load_demo(database, project.root / "data/demo_experiment.csv")
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("ALTER TABLE public.demo_experiment ALTER COLUMN converted TYPE DOUBLE PRECISION")
        connection.execute("ALTER TABLE public.demo_experiment ALTER COLUMN sessions TYPE SMALLINT")  # any int width
        connection.execute("UPDATE public.demo_experiment SET pre_revenue = NULL WHERE user_id = 4")
        connection.execute("UPDATE public.demo_experiment SET user_id = 1 WHERE user_id = 2")
    entry = Catalog.load(project).dataset("demo_experiment").model_copy(
        update={"uri": uri, "format": "postgresql", "sha256": table_snapshot(uri).sha256})
    facts = check_input(ResolvedInput("experiment", "demo_experiment", entry, None), None,
                        dt.datetime.now(dt.timezone.utc))
    assert facts.rows == 20_000, facts.problems
    problems = "\n".join(facts.problems)
    assert "contract.columns.converted: fails type int (the column is DOUBLE)" in problems
    assert "contract.columns.pre_revenue: fails not null (1 rows" in problems
    assert "contract.unique: fails unique (column 'user_id': 1 values repeat, 1 extra rows; e.g. 1)" in problems
    assert "sessions" not in problems

    with psycopg.connect(database, autocommit=True) as connection:  # numbers stored as text: named, still read
        connection.execute("ALTER TABLE public.demo_experiment ALTER COLUMN revenue TYPE TEXT")
    entry = entry.model_copy(update={"sha256": table_snapshot(uri).sha256})
    plan = load_plan(project.root / PLAN)
    facts = check_input(ResolvedInput("experiment", "demo_experiment", entry, None), plan,
                        dt.datetime.now(dt.timezone.utc), "primary")
    assert facts.rows == 20_000 and facts.arms.keys() == {"control", "treatment"}, facts.problems
    assert "contract.columns.revenue: fails type float (the column is VARCHAR)" in "\n".join(facts.problems)
    assert not [p for p in facts.problems if "cannot read" in p]


def test_dataset_add_refuses_a_password_and_writes_nothing(project):
    from conftest import cli

    before = (project.catalog_path.read_bytes(), project.ledger_path.read_bytes())
    added = cli(project, "dataset", "add", "wh", "postgresql://me:s3cret@db.example/warehouse#public.exposures")
    assert added.returncode != 0 and "PGPASSWORD" in added.stdout + added.stderr
    assert (project.catalog_path.read_bytes(), project.ledger_path.read_bytes()) == before
    assert b"s3cret" not in project.catalog_path.read_bytes() + project.ledger_path.read_bytes()


def test_file_only_helpers_say_a_warehouse_table_is_not_a_file(project, database, monkeypatch):
    import json

    import impactbook.notebook as ib
    from impactbook.inputs import PINS_ENV

    uri = load_table(database, experiment_frame(200))
    pin = {"uri": uri, "sha256": table_snapshot(uri).sha256, "format": "postgresql"}
    monkeypatch.setenv(PINS_ENV, json.dumps({"experiment": pin}))
    with pytest.raises(InputError, match="only the A/B analysis"):
        ib.pinned_file("experiment", project)
    with pytest.raises(InputError, match="not read into pandas"):
        ib.load_input("experiment", project)
