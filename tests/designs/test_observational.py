"""The observational design: plan validation (bad fields named), the adapter on synthetic accounts with a
known effect and confounding, failed diagnostics ending INCONCLUSIVE, and the template end to end from a
frozen plan through Papermill to a stored run, report and gate."""

from __future__ import annotations

import datetime as dt

import pytest

from impactbook.errors import PlanError
from impactbook.plan import load_plan
from impactbook.yamlio import dump_yaml, load_yaml
from conftest import REPO

PLAN = "src/impactbook/scaffold/observational.yaml"
START = dt.date.today() + dt.timedelta(days=1)


def _plan_file(folder, name="accounts.yaml", **design):
    plan = load_yaml(REPO / PLAN, RuntimeError, PLAN)
    plan["window"] = {"start": START, "end": START + dt.timedelta(days=27), "time_column": "date"}
    plan["design"].update(design)
    dump_yaml(plan, folder / name)
    return folder / name


@pytest.mark.parametrize("change, expected", [
    ({"assumptions": "trust me"}, r"design.assumptions: String should have at least 20 characters"),
    ({"estimator": "aipw"}, r"estimator aipw estimates the ATE: set estimand: ATE"),
    ({"estimator": "matching", "estimand": "ATE"}, r"estimator matching estimates the ATT: set estimand: ATT"),
    ({"estimator": "psm"}, r"design.estimator: Input should be 'ipw', 'aipw' or 'matching'"),
    ({"estimand": "ATC"}, r"design.estimand: Input should be 'ATE' or 'ATT'"),
    ({"trim": 0.5}, r"design.trim: Input should be less than 0.5"),
    ({"caliper": 0}, r"design.caliper: Input should be greater than 0"),
    ({"covariates": []}, r"design.covariates: List should have at least 1 item"),
    ({"covariates": ["urban", "urban"]}, r"covariates must be distinct"),
    ({"covariates": ["urban", "opted_in"]}, r"covariates may not include the treatment flag or the unit id"),
    ({"diagnostics": {"max_abs_smd": 0}}, r"design.diagnostics.max_abs_smd: Input should be greater than 0"),
    ({"diagnostics": {"min_e_value": 0.5}}, r"design.diagnostics.min_e_value: Input should be greater than or equal to 1"),
    ({"treatmnt": "opted_in"}, r"design.treatmnt: unknown field"),
])
def test_design_mistakes_name_the_field(tmp_path, change, expected):
    with pytest.raises(PlanError, match=expected):
        load_plan(_plan_file(tmp_path, **change))


def test_the_example_plan_is_valid_and_names_its_columns(tmp_path):
    plan = load_plan(_plan_file(tmp_path))
    assert plan.design.kind == "observational" and not plan.randomized
    assert plan.design.columns() == {"treatment": "opted_in", "covariates[0]": "tenure_months",
                                     "covariates[1]": "prior_spend", "covariates[2]": "urban",
                                     "covariates[3]": "prior_sessions", "unit": "account"}


def test_ratio_metrics_are_refused(tmp_path):
    plan = load_yaml(_plan_file(tmp_path), RuntimeError, "plan")
    plan["metrics"][0].update(kind="ratio", numerator="a", denominator="b")
    del plan["metrics"][0]["column"]
    dump_yaml(plan, tmp_path / "ratio.yaml")
    with pytest.raises(PlanError, match="observational design analyses one outcome column per metric"):
        load_plan(tmp_path / "ratio.yaml")
