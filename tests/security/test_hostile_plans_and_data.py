"""Attack: plans and data that the schema once accepted but nothing could use — a YAML alias bomb, inf and
nan, impossible dates, seeds beyond 32 bits, bytes that are not UTF-8, a unit that does not exist, a header
with no rows, a YAML file pinned as a template, a file outside the project. Defence: every one is refused
with a line naming the file, the field and the fix, before anything is appended to the ledger."""

from __future__ import annotations

import os
import time

import pytest

from impactbook.catalog import Catalog
from impactbook.errors import CatalogError, PlanError
from impactbook.freezing import freeze_plan
from impactbook.ledger import Ledger
from impactbook.plan import load_plan
from conftest import PLAN, cli, edit_yaml, run

BOMB = "".join(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9) if n else ', '.join(['xxxxxxxxxx'] * 9)}]\n"
               for n in range(9))


def test_a_yaml_alias_bomb_is_refused_quickly_and_the_ledger_is_untouched(project):
    path = project.root / PLAN
    path.write_text(path.read_text().replace("owner: growth-analytics", "owner: growth-analytics\nparameters:\n  "
                                             + BOMB.replace("\n", "\n  ").rstrip()))
    assert len(BOMB) < 700, "a few hundred bytes"
    before = project.ledger_path.read_bytes()
    started = time.monotonic()
    done = cli(project, "plan", "freeze", PLAN)
    assert done.returncode == 1 and "expands to more than" in done.stderr and "plans/example.yaml" in done.stderr
    assert time.monotonic() - started < 20
    assert project.ledger_path.read_bytes() == before


def test_a_plan_file_over_a_megabyte_is_refused(project):
    path = project.root / PLAN
    path.write_text(path.read_text() + "#" + "x" * (1 << 20) + "\n")
    with pytest.raises(PlanError, match="at most 1,048,576 are read"):
        freeze_plan(project, PLAN)


@pytest.mark.parametrize("make", ["fifo", "device"])
def test_a_plan_that_is_not_a_regular_file_is_refused_without_reading_it(project, make):
    path = project.root / PLAN
    path.unlink()
    if make == "fifo":
        os.mkfifo(path)  # no writer: reading it would block for ever
    else:
        path.symlink_to("/dev/zero")  # endless: reading it would fill memory (its size says 0)
    before = project.ledger_path.read_bytes()
    done = cli(project, "plan", "freeze", PLAN, timeout=60)
    assert done.returncode == 1 and "plans/example.yaml: is not a regular file" in done.stderr, done.stderr
    assert project.ledger_path.read_bytes() == before


def test_a_plan_nested_thousands_deep_is_refused_naming_the_file(project):
    path = project.root / PLAN
    path.write_text(path.read_text() + "parameters: {deep: " + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(PlanError, match=r"plans/example.yaml: nests (too deeply to parse|more than 64 levels)"):
        freeze_plan(project, PLAN)
    path.write_text(path.read_text().replace("[" * 5000 + "]" * 5000, "[" * 80 + "]" * 80))
    with pytest.raises(PlanError, match="plans/example.yaml: nests more than 64 levels deep"):
        freeze_plan(project, PLAN)


@pytest.mark.parametrize("field, value, message", [
    (("metrics", 1, "margin"), float("inf"), "metrics[1].margin: Input should be a finite number"),
    (("metrics", 0, "minimum_detectable_effect"), float("nan"), "metrics[0].minimum_detectable_effect: Input should be a finite number"),
    (("history",), {"threshold_sd": float("inf")}, "history.threshold_sd: Input should be a finite number"),
    (("design", "expected_split", "control"), float("nan"), "design.expected_split.control: Input should be a finite number"),
    (("seed",), 2**32, "seed: Input should be less than 4294967296"),
    (("alpha",), 1e-320, "alpha: Input should be greater than or equal to 0.000001"),
    (("segments", "min_size"), 10**30, "segments.min_size: Input should be less than or equal to 1000000000"),
    (("parameters",), {"knob": float("nan")}, "knob is nan; parameters must be finite numbers"),
])
def test_values_the_analysis_cannot_use_are_refused_naming_the_field(project, field, value, message):
    _refused_naming_the_field(project, field, value, message)


@pytest.mark.parametrize("field, value, message", [
    (("seed",), True, "seed: Input should be a valid integer"),
    (("seed",), "20261122", "seed: Input should be a valid integer"),
    (("alpha",), "0.05", "alpha: Input should be a valid number"),
    (("segments", "min_size"), True, "segments.min_size: Input should be a valid integer"),
    (("segments", "min_size"), 100.5, "segments.min_size: Input should be a valid integer"),
])
def test_a_value_of_the_wrong_type_is_refused_not_coerced(project, field, value, message):
    _refused_naming_the_field(project, field, value, message)


@pytest.mark.parametrize("field, value, message", [
    (("parameters",), {"bad-name": 1}, "parameters: 'bad-name' is not a Python variable name"),
    (("parameters",), {"class": 1}, "parameters: 'class' is not a Python variable name"),
    (("inputs",), {"1st": "demo_experiment"}, "inputs: '1st' is not a Python variable name"),
])
def test_a_name_the_template_cannot_receive_as_a_variable_is_refused(project, field, value, message):
    _refused_naming_the_field(project, field, value, message)


def test_a_quoted_window_date_is_still_a_date(project):
    path = project.root / PLAN
    before = load_plan(path).sha256
    text = path.read_text()
    start = str(load_plan(path).window.start)
    path.write_text(text.replace(f"start: {start}", f'start: "{start}"', 1))
    assert f'start: "{start}"' in path.read_text() and load_plan(path).sha256 == before


def test_an_impossible_date_is_a_clear_error_with_its_line(project):
    path = project.root / PLAN
    text = path.read_text()
    start = next(line for line in text.splitlines() if line.strip().startswith("start:"))
    path.write_text(text.replace(start, "  start: 2026-02-30"))
    done = cli(project, "plan", "freeze", PLAN)
    assert done.returncode == 1 and "'2026-02-30' is not a valid date" in done.stderr
    assert "plans/example.yaml:" in done.stderr and "internal error" not in done.stderr


def test_a_plan_that_is_not_utf8_is_a_clear_error(project):
    path = project.root / PLAN
    path.write_bytes(path.read_bytes().replace("Checkout ranker v2 —".encode(), "Checkout \xe9".encode("latin-1")))
    done = cli(project, "plan", "freeze", PLAN)
    assert done.returncode == 1 and "is not UTF-8 text" in done.stderr and "internal error" not in done.stderr


def test_a_unit_column_that_does_not_exist_makes_the_run_inadmissible(project):
    edit_yaml(project.root / PLAN, (("design", "unit"), "customer_id"))
    freeze_plan(project, PLAN)
    outcome = run(project)
    assert outcome.record.status.value == "INADMISSIBLE"
    assert any(p.startswith("design.unit: no column 'customer_id'") for p in outcome.record.gate["inadmissible"])


def test_an_infinite_value_fails_a_numeric_contract(project):
    data = project.root / "data/demo_experiment.csv"
    lines = data.read_text().splitlines()
    cells = lines[3].split(",")
    cells[5] = "inf"
    lines[3] = ",".join(cells)
    data.write_text("\n".join(lines) + "\n")
    Catalog.load(project).pin_dataset("demo_experiment", data, replace=True, reason="inf slipped in")
    freeze_plan(project, PLAN)
    outcome = run(project)
    assert any(p.startswith("datasets.demo_experiment.contract.columns.revenue: fails finite (1 rows")
               for p in outcome.record.gate["inadmissible"]), outcome.record.gate["inadmissible"]


def test_a_header_only_dataset_is_inadmissible_and_leaves_nothing_behind(project):
    data = project.root / "data/demo_experiment.csv"
    data.write_text(data.read_text().splitlines()[0] + "\n")
    Catalog.load(project).pin_dataset("demo_experiment", data, replace=True, reason="emptied")
    freeze_plan(project, PLAN)
    outcome = run(project)
    assert outcome.record.status.value == "INADMISSIBLE"
    assert "datasets.demo_experiment: data/demo_experiment.csv has no rows" in outcome.record.gate["inadmissible"]
    assert not list(project.staging_dir.iterdir())


def test_a_missing_arm_makes_the_run_inadmissible(project):
    data = project.root / "data/demo_experiment.csv"
    lines = data.read_text().splitlines()
    data.write_text("\n".join([lines[0]] + [line for line in lines[1:] if ",treatment," not in line]) + "\n")
    Catalog.load(project).pin_dataset("demo_experiment", data, replace=True, reason="one arm only")
    freeze_plan(project, PLAN)
    outcome = run(project)
    assert any("arm 'treatment' does not occur in column 'variant'" in p for p in outcome.record.gate["inadmissible"])


def test_only_a_notebook_can_be_pinned_as_a_template(project):
    with pytest.raises(CatalogError, match="is not a valid Jupyter notebook"):
        Catalog.load(project).pin_template("oops", project.root / PLAN)


def test_a_file_pinned_as_a_template_by_mistake_is_not_echoed_in_the_error(project):
    secret = project.root / "secrets.txt"
    secret.write_text("root:x:0:0:password-hash-here\n")
    refused = cli(project, "template", "add", "oops", "secrets.txt")
    assert refused.returncode == 1 and "is not a valid Jupyter notebook (NotJSONError: not JSON)" in refused.stderr
    assert "password-hash-here" not in refused.stderr + refused.stdout


def test_a_dataset_outside_the_project_is_refused_unless_allowed(project, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a\n1\n")
    refused = cli(project, "dataset", "add", "elsewhere", str(outside))
    assert refused.returncode == 1 and "is outside the project" in refused.stderr and "--allow-outside" in refused.stderr
    assert cli(project, "dataset", "add", "elsewhere", str(outside), "--allow-outside").returncode == 0


def test_a_link_or_dotdot_path_leading_outside_the_project_is_refused_unless_allowed(project, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a\n1\n")
    (project.root / "data/link.csv").symlink_to(outside)
    linked = cli(project, "dataset", "add", "linked", "data/link.csv")
    assert linked.returncode == 1 and f"data/link.csv (a link to {outside.resolve()}) is outside the project" in linked.stderr
    climbing = os.path.relpath(outside, project.root / "data")
    dotdot = cli(project, "dataset", "add", "climbing", f"data/{climbing}")
    assert dotdot.returncode == 1 and f"{outside} is outside the project" in dotdot.stderr, dotdot.stderr
    assert "linked" not in (project.root / "catalog.yaml").read_text()
    assert cli(project, "dataset", "add", "linked", "data/link.csv", "--allow-outside").returncode == 0


def test_a_pin_is_not_replaced_silently(project):
    data = project.root / "data/demo_experiment.csv"
    data.write_text(data.read_text() + "999999,control,ios,2026-11-24,0.00,0.00,0,1\n")
    refused = cli(project, "dataset", "add", "demo_experiment", "data/demo_experiment.csv")
    assert refused.returncode == 1 and "--replace --reason" in refused.stderr
    replaced = cli(project, "dataset", "add", "demo_experiment", "data/demo_experiment.csv", "--replace", "--reason",
                   "one late row", "--by", "ana")
    assert replaced.returncode == 0, replaced.stderr
    pin = [e for e in Ledger(project.ledger_path).entries() if e["kind"] == "pin"][-1]
    assert pin["dataset"] == "demo_experiment" and pin["reason"] == "one late row" and pin["by"] == "ana"
    assert pin["replaces"] and pin["replaces"] != pin["sha256"]


def _refused_naming_the_field(project, field, value, message):
    """The plan with `field` set to `value` is refused at freezing, the message naming the file and field,
    and nothing reaches the ledger."""
    edit_yaml(project.root / PLAN, (field, value))
    before = project.ledger_path.read_bytes()
    with pytest.raises(PlanError) as refused:
        freeze_plan(project, PLAN)
    assert message in str(refused.value) and "plans/example.yaml:" in str(refused.value), str(refused.value)
    assert project.ledger_path.read_bytes() == before


@pytest.mark.parametrize("data", ["no variation", "before the window"])
def test_degenerate_data_ends_with_its_reason_not_a_crash_in_the_template(project, data):
    """No variation in any outcome: the README promises INCONCLUSIVE and the analysis goes on (the guardrail
    table crashed on a margin of None). Every row dated before the window: refused by the gate, naming the
    window (the analysis crashed on a cap quantile over no rows, then on a sample-ratio test of no units)."""
    import datetime as dt

    import pandas as pd

    from impactbook.demo import DEMO_CONTRACT
    from impactbook.record import Status
    from conftest import DATASET

    entry = Catalog.load(project).dataset(DATASET)
    path = project.resolve(entry.uri)
    frame = pd.read_csv(path)
    if data == "no variation":
        frame = frame.assign(converted=0, revenue=0.0)
    else:
        frame = frame.assign(date=(load_plan(project.root / PLAN).window.start - dt.timedelta(days=200)).isoformat())
    frame.to_csv(path, index=False)
    Catalog.load(project).pin_dataset(DATASET, path, contract=DEMO_CONTRACT, replace=True, reason=data,
                                      synthetic=True)
    freeze_plan(project, PLAN)
    record = run(project).record
    if data == "no variation":
        assert record.status is Status.COMPLETED, record.errors
        assert {v.metric: v.verdict.value for v in record.verdicts} == {
            "conversion": "INCONCLUSIVE", "revenue_per_user": "INCONCLUSIVE", "revenue_per_session": "INCONCLUSIVE"}
        assert record.decision.action.value == "hold"
    else:
        assert record.status is Status.INADMISSIBLE, record.errors
        assert any(p.startswith(f"window: no row of datasets.{DATASET} is dated inside the window")
                   for p in record.gate["inadmissible"]), record.gate
