"""inputs.py: hash checks and pandera data contracts, each problem naming dataset and column."""

from __future__ import annotations

import pandas as pd
import pytest

from impactbook.catalog import Contract
from impactbook.errors import InputError
from impactbook.inputs import contract_problems, load_input

CONTRACT = Contract.model_validate({"unique": ["user_id"], "columns": {
    "user_id": {"type": "int"}, "variant": {"type": "str", "allowed": ["control", "treatment"]},
    "revenue": {"type": "float", "min": 0}, "date": {"type": "date"}}})


def _frame(**overrides):
    frame = pd.DataFrame({"user_id": [1, 2, 3], "variant": ["control", "treatment", "control"],
                          "revenue": [0.0, 2.5, 1.0], "date": pd.to_datetime(["2026-11-23"] * 3)})
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_valid_frame_passes():
    assert contract_problems(_frame(), CONTRACT, "exposures") == []


@pytest.mark.parametrize("overrides, expected", [
    ({"user_id": [1, 1, 3]}, "datasets.exposures.contract.columns.user_id: fails field_uniqueness"),
    ({"variant": ["control", "oops", "control"]}, "columns.variant: fails isin"),
    ({"revenue": [0.0, -1.0, 1.0]}, "columns.revenue: fails greater_than_or_equal_to(0"),
    ({"variant": ["control", None, "control"]}, "columns.variant: fails not_nullable"),
])
def test_each_violation_is_named(overrides, expected):
    problems = contract_problems(_frame(**overrides), CONTRACT, "exposures")
    assert any(expected in p for p in problems), problems


def test_missing_column_is_named():
    problems = contract_problems(_frame().drop(columns=["revenue"]), CONTRACT, "exposures")
    assert any("revenue" in p and "column_in_dataframe" in p for p in problems), problems


def test_load_input_checks_the_pin(project):
    frame = load_input("demo_experiment", project)
    assert len(frame) == 20_000 and str(frame["date"].dtype).startswith("datetime64")
    data = project.root / "data/demo_experiment.csv"
    data.write_text(data.read_text()[:-30] + "\n")
    with pytest.raises(InputError, match="does not match its pin"):
        load_input("demo_experiment", project)
