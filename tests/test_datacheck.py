"""datacheck.py: the data contract, the plan against the data and time, in SQL over the pinned file —
each problem names the dataset or plan field, the column, the rule, how many rows and examples."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from impactbook.catalog import Contract, DatasetEntry
from impactbook.datacheck import FileChecker, check_input
from impactbook.hashing import sha256_file
from impactbook.inputs import ResolvedInput
from impactbook.plan import load_plan, plan_from_canonical
from impactbook.processes import usable_cores
from impactbook.yamlio import round_trip

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 10, 12, tzinfo=dt.timezone.utc)
CONTRACT = {"unique": ["user_id"], "columns": {
    "user_id": {"type": "int"}, "variant": {"type": "str", "allowed": ["control", "treatment"]},
    "revenue": {"type": "float", "min": 0}, "converted": {"type": "int", "allowed": [0, 1]},
    "date": {"type": "date"}}}
ROWS = ["user_id,variant,revenue,converted,date", "1,control,0.0,0,2026-11-24", "2,treatment,2.5,1,2026-11-25",
        "3,control,1.0,1,2026-11-26", "4,treatment,3.0,0,2026-11-27"]


def _plan(**changes):
    data = load_plan(REPO / "src/impactbook/scaffold/example.yaml").canonical()
    data["metrics"] = [{"id": "conversion", "column": "converted", "kind": "proportion", "role": "primary",
                        "direction": "increase"},
                       {"id": "revenue", "column": "revenue", "kind": "mean", "role": "secondary",
                        "direction": "increase"}]
    data["segments"], data["decision_rule"] = {"columns": []}, {}
    for path, value in changes.items():
        node = data
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return plan_from_canonical(data)


def _check(tmp_path, lines=ROWS, contract=CONTRACT, plan=None, role="primary", fmt="csv", checker=None, **entry):
    return check_input(*_input(tmp_path, lines, contract, fmt, **entry), plan or _plan(), NOW, role, checker=checker)


def _input(tmp_path, lines=ROWS, contract=CONTRACT, fmt="csv", **entry):
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        path.write_text("\n".join(lines) + "\n")
    else:
        csv = tmp_path / "source.csv"
        csv.write_text("\n".join(lines) + "\n")
        duckdb.sql(entry.pop("select", "SELECT * FROM read_csv('{}')").format(csv)).write_parquet(str(path))
    dataset = DatasetEntry(uri=f"data.{fmt}", sha256=sha256_file(path), format=fmt,
                           contract=Contract.model_validate(contract) if contract else None, **entry)
    return (ResolvedInput("experiment", "exposures", dataset, path),)


def test_valid_data_passes_and_reports_its_span(tmp_path):
    facts = _check(tmp_path)
    assert facts.problems == []
    assert facts.rows == 4 and facts.arms == {"control": 2, "treatment": 2} and facts.excluded == {}
    assert (facts.first_time, facts.last_time, facts.future_rows) == ("2026-11-24T00:00:00Z", "2026-11-27T00:00:00Z", 0)


@pytest.mark.parametrize("row, expected", [
    ("1,control,1.0,0,2026-11-28", "datasets.exposures.contract.unique: fails unique (column 'user_id': 1 values repeat"),
    ("5,oops,1.0,0,2026-11-28", "datasets.exposures.contract.columns.variant: fails allowed ['control', 'treatment'] "
                               "(1 rows; e.g. 'oops')"),
    ("5,control,-1.0,0,2026-11-28", "datasets.exposures.contract.columns.revenue: fails min 0 (1 rows; e.g. '-1.0')"),
    ("5,,1.0,0,2026-11-28", "datasets.exposures.contract.columns.variant: fails not null (1 rows"),
    ("5,control,inf,0,2026-11-28", "datasets.exposures.contract.columns.revenue: fails finite (1 rows; e.g. 'inf')"),
    ("5.5,control,1.0,0,2026-11-28", "datasets.exposures.contract.columns.user_id: fails type int (1 rows; e.g. '5.5')"),
    ("5,control,1.0,0,2026-02-30", "datasets.exposures.contract.columns.date: fails type date (1 rows; e.g. '2026-02-30')"),
    ("5,control,1.0,2,2026-11-28", "datasets.exposures.contract.columns.converted: fails allowed [0, 1] (1 rows; e.g. '2')"),
])
def test_each_contract_violation_is_named_with_its_count_and_an_example(tmp_path, row, expected):
    problems = _check(tmp_path, ROWS + [row]).problems
    assert any(p.startswith(expected) for p in problems), problems


TYPED = ("SELECT CAST(user_id AS BIGINT) AS user_id, variant, CAST(revenue AS DOUBLE) AS revenue, "
         "CAST(converted AS INTEGER) AS converted, CAST(date AS DATE) AS date FROM read_csv('{}', all_varchar = true)")


@pytest.mark.parametrize("row, expected", [
    ("1,control,1.0,0,2026-11-28", "datasets.exposures.contract.unique: fails unique (column 'user_id': 1 values "
                                   "repeat, 1 extra rows; e.g. 1)"),
    ("5,oops,1.0,0,2026-11-28", "datasets.exposures.contract.columns.variant: fails allowed ['control', 'treatment'] "
                               "(1 rows; e.g. 'oops')"),
    ("5,control,-1.0,0,2026-11-28", "datasets.exposures.contract.columns.revenue: fails min 0 (1 rows; e.g. -1.0)"),
    ("5,,1.0,0,2026-11-28", "datasets.exposures.contract.columns.variant: fails not null (1 rows"),
    ("5,control,inf,0,2026-11-28", "datasets.exposures.contract.columns.revenue: fails finite (1 rows; e.g. inf)"),
    ("5,control,nan,0,2026-11-28", "datasets.exposures.contract.columns.revenue: fails finite (1 rows; e.g. nan)"),
    ("5,control,-inf,0,2026-11-28", "datasets.exposures.contract.columns.revenue: fails finite (1 rows; e.g. -inf)"),
    ("5,control,1.0,2,2026-11-28", "datasets.exposures.contract.columns.converted: fails allowed [0, 1] (1 rows; e.g. 2)"),
    ("5,control,1.0,-1,2026-11-28", "metrics[0].column: fails holds 0/1 for a proportion (column 'converted') "
                                    "(1 rows; e.g. -1)"),
    ("5000000000,control,1.0,0,2026-11-28", None),  # ids spanning more than the bitset: checked by hashing
])
def test_typed_parquet_columns_are_checked_on_their_own_types(tmp_path, row, expected):
    """Parquet is checked without casting each value to text: ranges, finiteness and nulls from the column's
    MIN/MAX/COUNT, integer ids unique by a bitset (by hashing when their range is too wide)."""
    problems = _check(tmp_path, ROWS + [row], fmt="parquet", select=TYPED).problems
    if expected is None:
        assert problems == []
    else:
        assert any(p.startswith(expected) for p in problems), problems
    assert len(problems) == len(set(problems))  # a rule found by two paths is reported once


MANY_GROUPS = ("COPY (SELECT i + 1 AS user_id, CASE WHEN i = 7777 THEN 'oops' WHEN i % 2 = 0 THEN 'control' ELSE "
               "'treatment' END AS variant, CAST(CASE WHEN i = 3333 THEN -1 ELSE i % 7 END AS DOUBLE) AS revenue, CAST(CASE WHEN i = "
               "5555 THEN 2 ELSE i % 2 END AS INTEGER) AS converted, DATE '2026-11-24' + CAST(i % 4 AS INTEGER) AS date "
               "FROM range(20000) AS t(i)) TO '{}' (FORMAT parquet, ROW_GROUP_SIZE 2048)")


def test_a_violation_in_one_row_group_of_many_is_counted_exactly(tmp_path):
    """Over Parquet, counts come from statistics, dictionaries and pushed-down filters (sqlengine.count_where):
    one bad value in one of ten row groups must still be found, counted once and shown."""
    path = tmp_path / "data.parquet"
    duckdb.execute(MANY_GROUPS.format(path))
    assert len(duckdb.sql(f"SELECT DISTINCT row_group_id FROM parquet_metadata('{path}')").fetchall()) == 10
    dataset = DatasetEntry(uri="data.parquet", sha256=sha256_file(path), format="parquet",
                           contract=Contract.model_validate(CONTRACT))
    facts = check_input(ResolvedInput("experiment", "exposures", dataset, path), _plan(), NOW, "primary")
    where = "datasets.exposures.contract.columns"
    assert sorted(facts.problems) == [
        f"{where}.converted: fails allowed [0, 1] (1 rows; e.g. 2)",
        f"{where}.revenue: fails min 0 (1 rows; e.g. -1.0)",
        f"{where}.variant: fails allowed ['control', 'treatment'] (1 rows; e.g. 'oops')",
        "metrics[0].column: fails holds 0/1 for a proportion (column 'converted') (1 rows; e.g. 2)"], facts.problems
    assert facts.rows == 20000 and facts.excluded == {"variant not in the plan": 1}


def test_wide_integer_ids_that_repeat_are_found_by_hashing(tmp_path):
    rows = ROWS + ["5000000000,control,1.0,0,2026-11-28", "5000000000,treatment,1.0,0,2026-11-28"]
    problems = _check(tmp_path, rows, fmt="parquet", select=TYPED).problems
    assert any(p.startswith("datasets.exposures.contract.unique: fails unique (column 'user_id': 1 values repeat, "
                            "1 extra rows; e.g. 5000000000)") for p in problems), problems


def test_typed_dates_after_now_are_counted_in_their_own_type(tmp_path):
    facts = _check(tmp_path, ROWS + ["5,control,1.0,0,2026-12-24", "6,control,1.0,0,2026-12-10"], fmt="parquet",
                   select=TYPED)
    assert facts.future_rows == 1 and facts.last_time == "2026-12-24T00:00:00Z"  # NOW is 2026-12-10 12:00Z


def test_a_missing_column_suggests_the_close_one(tmp_path):
    lines = [ROWS[0].replace("revenue", "revenu")] + ROWS[1:]
    problems = _check(tmp_path, lines).problems
    assert "datasets.exposures.contract.columns.revenue: column is missing from data.csv; did you mean 'revenu'?" \
        in problems
    assert "metrics[1].column: no column 'revenue' in dataset exposures (data.csv); did you mean 'revenu'?" in problems


def test_a_header_only_file_has_no_rows(tmp_path):
    assert "datasets.exposures: data.csv has no rows" in _check(tmp_path, ROWS[:1]).problems


def test_any_integer_width_is_an_int_in_parquet(tmp_path):
    select = "SELECT CAST(user_id AS INTEGER) AS user_id, variant, revenue, CAST(converted AS TINYINT) AS converted, " \
             "date FROM read_csv('{}')"
    assert _check(tmp_path, fmt="parquet", select=select).problems == []
    floats = "SELECT CAST(user_id AS DOUBLE) AS user_id, variant, revenue, converted, date FROM read_csv('{}')"
    problems = _check(tmp_path, fmt="parquet", select=floats).problems
    assert any(p.startswith("datasets.exposures.contract.columns.user_id: fails type int (the column is DOUBLE)")
               for p in problems), problems


def test_arm_labels_that_do_not_occur_are_named_with_the_labels_found(tmp_path):
    lines = [ROWS[0]] + [r.replace("control", "0.0").replace("treatment", "1.0") for r in ROWS[1:]]
    facts = _check(tmp_path, lines, contract=None, plan=_plan(**{"design.control": "0", "design.treatment": "1",
                                                                 "design.expected_split": {"0": 0.5, "1": 0.5}}))
    assert "design: arm '0' and '1' does not occur in column 'variant' of data.csv (labels found: '0.0', '1.0')" \
        in facts.problems, facts.problems


def test_rows_without_a_planned_arm_are_counted_as_excluded(tmp_path):
    facts = _check(tmp_path, ROWS + ["5,,1.0,0,2026-11-28", "6,holdout,1.0,0,2026-11-28"], contract=None)
    assert facts.excluded == {"no variant": 1, "variant not in the plan": 1}


def test_a_typo_in_a_metric_column_is_caught_before_the_kernel(tmp_path):
    lines = [ROWS[0].replace("converted", "got")] + ROWS[1:]
    problems = _check(tmp_path, lines, contract=None).problems
    assert "metrics[0].column: no column 'converted' in dataset exposures (data.csv); did you mean 'date'?" \
        not in problems
    assert any(p.startswith("metrics[0].column: no column 'converted'") for p in problems), problems


def test_a_metric_column_that_does_not_fit_its_kind_is_named(tmp_path):
    lines = ROWS + ["5,control,lots,0.5,2026-11-28"]
    problems = _check(tmp_path, lines, contract=None).problems
    assert any(p.startswith("metrics[0].column: fails holds 0/1 for a proportion (column 'converted') (1 rows")
               for p in problems), problems
    assert any(p.startswith("metrics[1].column: fails holds numbers for a mean (column 'revenue') (1 rows; "
                            "e.g. 'lots')") for p in problems), problems


def test_the_unit_must_be_unique_even_without_a_contract(tmp_path):
    problems = _check(tmp_path, ROWS + ["4,control,1.0,0,2026-11-28"], contract=None).problems
    assert any(p.startswith("design.unit: fails unique (column 'user_id': 1 values repeat, 1 extra rows; e.g. 4)")
               for p in problems), problems


def test_a_unit_column_that_does_not_exist_is_named(tmp_path):
    problems = _check(tmp_path, contract=None, plan=_plan(**{"design.unit": "customer"})).problems
    assert any(p.startswith("design.unit: no column 'customer' in dataset exposures") for p in problems), problems


def test_rows_dated_after_now_are_counted(tmp_path):
    facts = _check(tmp_path, ROWS + ["5,control,1.0,0,2026-12-24"])
    assert facts.future_rows == 1 and facts.last_time == "2026-12-24T00:00:00Z"


def test_a_time_column_that_is_not_dates_is_named(tmp_path):
    lines = [ROWS[0]] + [r.rsplit(",", 1)[0] + f",{n}" for n, r in enumerate(ROWS[1:], start=1)]
    problems = _check(tmp_path, lines, contract=None).problems
    assert any(p.startswith("window.time_column: column 'date' of data.csv holds 4 values that are not dates")
               for p in problems), problems
    numeric = _plan(**{"window.time_type": "number"})
    assert _check(tmp_path, lines, contract=None, plan=numeric).problems == [
        "datasets.exposures.contract: input has no data contract"]


def test_a_file_that_does_not_match_its_pin_is_not_read(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("\n".join(ROWS) + "\n")
    entry = DatasetEntry(uri="data.csv", sha256="0" * 64, contract=Contract.model_validate(CONTRACT))
    facts = check_input(ResolvedInput("experiment", "exposures", entry, path), _plan(), NOW, "primary")
    assert len(facts.problems) == 1 and "does not match its pin" in facts.problems[0]


TWO_CORES = pytest.mark.skipif(usable_cores() < 2, reason="the helper runs only beside a second core")
BROKEN = ROWS + ["1,oops,-1.0,2,2026-12-20", "6,,inf,0,2026-02-30"]


@TWO_CORES
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("lines", [ROWS, BROKEN], ids=["valid", "broken"])
def test_a_run_checks_its_files_in_a_helper_process_that_finds_the_same(tmp_path, fmt, lines):
    """A run's own process never opens a DuckDB database (one keeps ~50 MiB after it is closed): its file checks
    are made by a helper process. What the helper finds is what the check finds in this process."""
    for folder in ("here", "helper"):
        (tmp_path / folder).mkdir()
    here = _check(tmp_path / "here", lines, fmt=fmt)
    checker = FileChecker()
    try:
        item, = _input(tmp_path / "helper", lines, fmt=fmt)
        answered = checker.check(item, _plan(), NOW, "primary")  # None would mean: the helper did not answer
        assert checker.helper_pid is not None and answered is not None
        assert answered == here
        assert check_input(item, _plan(), NOW, "primary", checker=checker) == here  # (same helper, again)
    finally:
        checker.close()
    assert here.problems == [] if lines is ROWS else len(here.problems) >= 5


@TWO_CORES
def test_the_helper_gets_a_contracts_dates_and_times_as_they_were_loaded(tmp_path):
    """catalog.yaml's loader reads an unquoted `2026-11-24 10:00:00` in `allowed` as a datetime, which is
    compiled to SQL as such; a JSON round trip to the helper would make it a string with a 'T', refusing data the
    check in this process admits."""
    path = tmp_path / "data.csv"
    path.write_text("\n".join([ROWS[0] + ",slot"] + [row + ",2026-11-24 10:00:00" for row in ROWS[1:]]) + "\n")
    contract = round_trip().load(json.dumps(CONTRACT)[:-2] + ', "slot": {type: str, allowed: [2026-11-24 10:00:00]}}}')
    assert isinstance(contract["columns"]["slot"]["allowed"][0], dt.datetime)
    item = ResolvedInput("experiment", "exposures", DatasetEntry(uri="data.csv", sha256=sha256_file(path),
                                                                 contract=Contract.model_validate(contract)), path)
    here = check_input(item, _plan(), NOW, "primary")
    checker = FileChecker()
    try:
        assert checker.check(item, _plan(), NOW, "primary") == here
    finally:
        checker.close()
    assert here.problems == []


@TWO_CORES
def test_a_helper_that_dies_leaves_the_check_to_the_caller(tmp_path, monkeypatch):
    monkeypatch.setenv("IMPACTBOOK_FAULT", "kill@inputs.helper")  # (the helper is killed before its first answer)
    checker = FileChecker()
    try:
        item, = _input(tmp_path, BROKEN)
        assert checker.check(item, _plan(), NOW, "primary") is None
        facts = check_input(item, _plan(), NOW, "primary", checker=checker)
    finally:
        checker.close()
    monkeypatch.delenv("IMPACTBOOK_FAULT")
    (tmp_path / "again").mkdir()
    assert facts == _check(tmp_path / "again", BROKEN)
    assert any("contract.columns.variant: fails allowed" in p for p in facts.problems)


CHECKS_APART = """
import datetime as dt, json, sys
from pathlib import Path
from impactbook.catalog import DatasetEntry
from impactbook.gates import InputChecks
from impactbook.inputs import ResolvedInput
from impactbook.plan import plan_from_canonical
given = json.loads(Path(sys.argv[1]).read_text())
item = ResolvedInput("experiment", "exposures", DatasetEntry.model_validate(given["entry"]), Path(given["path"]))
with InputChecks([item], plan_from_canonical(given["plan"]), dt.datetime.fromisoformat(given["now"])) as checks:
    facts, = checks.results()
print(json.dumps({"rows": facts.rows, "problems": facts.problems, "duckdb_loaded": "duckdb" in sys.modules}))
"""


@TWO_CORES
def test_a_runs_gate_never_loads_duckdb_into_the_runs_own_process(tmp_path):
    item, = _input(tmp_path, BROKEN, fmt="parquet")
    given = tmp_path / "given.json"
    given.write_text(json.dumps({"entry": item.entry.model_dump(mode="json"), "path": str(item.path),
                                 "plan": _plan().canonical(), "now": NOW.isoformat()}))
    out = subprocess.run([sys.executable, "-c", CHECKS_APART, str(given)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["rows"] == 6 and any("fails allowed" in p for p in answer["problems"])
    assert answer["duckdb_loaded"] is False


def test_rows_of_labels_the_plan_does_not_name_are_all_counted_however_many_labels_there_are(tmp_path):
    """The labels are grouped and only the first groups fetched (to name some): the arms' counts, the rows
    with no label and the others' total must still be exact beyond that many groups."""
    junk = [f"{5 + i},junk{i:04d},1.0,0,2026-11-28" for i in range(1500)]
    facts = _check(tmp_path, ROWS + junk + ["9999,,1.0,0,2026-11-28"], contract={"columns": {"variant": {
        "type": "str", "nullable": True}}})
    assert facts.arms == {"control": 2, "treatment": 2}
    assert facts.excluded == {"no variant": 1, "variant not in the plan": 1500}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("value", ["1e308", "-2e200"])
def test_a_metric_value_whose_square_overflows_is_named(tmp_path, fmt, value):
    """One revenue of 1e308 overflowed the A/B ratio estimate (OverflowError in the kernel) and, in a panel,
    swamped the relative effect to +0.0% while the run shipped."""
    problems = _check(tmp_path, ROWS + [f"5,control,{value},0,2026-11-28"], contract=None, fmt=fmt).problems
    assert any(p.startswith("metrics[1].column: fails holds values within ±1e+150, whose squares a double holds "
                            "(column 'revenue') (1 rows") for p in problems), problems
    fine = _check(tmp_path, ROWS + ["5,control,1e149,0,2026-11-28"], contract=None, fmt=fmt).problems
    assert fine == ["datasets.exposures.contract: input has no data contract"], fine


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_design_regressor_covariate_or_predictor_holds_finite_numbers_within_the_bound(tmp_path, fmt):
    """One marketing spend of 1e300 (the regressor of an interrupted time series) passed the gate and REFUTED
    the change with a 290-digit effect, every diagnostic passed; a text value ended in a DuckDB error."""
    plan = plan_from_canonical(load_plan(REPO / "src/impactbook/scaffold/interrupted_time_series.yaml").canonical())
    header = "region,date,conversion,revenue_per_session,marketing_spend"
    rows = [header] + [f"north,2026-11-{day},0.05,1.2,{100 + day}" for day in range(20, 30)]

    def problems(value):
        return _check(tmp_path, rows + [f"north,2026-11-30,0.05,1.2,{value}"], contract=None, plan=plan,
                      fmt=fmt).problems

    found = problems("1e300")
    assert any(p.startswith("design.regressors[0]: fails holds values within ±1e+150, whose squares a double holds "
                            "(column 'marketing_spend') (1 rows") for p in found), found
    assert not any(p.startswith("design.") for p in problems("1e149")), problems("1e149")
    if fmt == "csv":
        found = problems("lots")
        assert any(p.startswith("design.regressors[0]: fails holds numbers (column 'marketing_spend') (1 rows")
                   for p in found), found
    # a true/false regressor is a number to the designs (DuckDB reads it as BOOLEAN); the rule refused it
    holiday = [f"{row},{'true' if number % 2 else 'false'}" for number, row in enumerate(rows[1:])]
    flagged = plan_from_canonical({**plan.canonical(), "design": {**plan.canonical()["design"],
                                                                  "regressors": ["marketing_spend", "holiday"]}})
    found = _check(tmp_path, [header + ",holiday", *holiday], contract=None, plan=flagged, fmt=fmt).problems
    assert not any(p.startswith("design.") for p in found), found
