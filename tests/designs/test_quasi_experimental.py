"""designs/quasi_experimental.py: the plan's multiple-testing correction applies to every quasi-experimental
design as it does to A/B tests — adjusted p-values equal statsmodels' on the raw ones, and a verdict that is
no longer significant after the correction is INCONCLUSIVE with the reason; guardrails keep their own test."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from statsmodels.stats.multitest import multipletests

from impactbook.demo import generate_markets_data, generate_observational_data, generate_states_data
from impactbook.designs.quasi_experimental import bounded, corrected
from impactbook.plan import Metric, load_plan
from impactbook.yamlio import dump_yaml, load_yaml
from conftest import REPO

START = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=2)  # UTC, as freezing: still ahead after midnight


@dataclass(frozen=True)
class Item:
    metric: Metric
    p: float | None
    verdict: str
    note: str | None = None
    adjusted_p_value: float | None = None


def _plan(folder, source, correction="holm", second_role="secondary", **window):
    plan = load_yaml(REPO / source, RuntimeError, source)
    plan["metrics"][1]["role"] = second_role
    plan["metrics"][1].pop("margin", None)
    plan["metrics"][1].pop("margin_type", None)
    if second_role == "guardrail":
        plan["metrics"][1].update(margin=-0.1, margin_type="relative")
    plan["correction"] = {"method": correction}
    plan["decision_rule"] = {}
    plan["window"] = {"start": START, "end": START + dt.timedelta(days=13), "time_column": "date", **window}
    if "intervention" in plan["design"]:
        plan["design"]["intervention"] = START
    dump_yaml(plan, folder / "plan.yaml")
    return load_plan(folder / "plan.yaml")


def _items(plan, ps, verdicts):
    return [Item(m, p, v) for m, p, v in zip(plan.metrics, ps, verdicts)]


@pytest.mark.parametrize("method, raw", [("holm", [0.03, 0.04]), ("bh", [0.03, 0.06])])
def test_a_family_verdict_no_longer_significant_after_the_correction_is_inconclusive(tmp_path, method, raw):
    plan = _plan(tmp_path, "plans/markets.yaml", method)
    items = corrected(plan, _items(plan, raw, ["CONFIRMED", "REFUTED"]), lambda i: i.p)
    expected = multipletests(raw, method={"holm": "holm", "bh": "fdr_bh"}[method])[1]
    assert [i.adjusted_p_value for i in items] == pytest.approx(list(expected), abs=1e-15)
    assert [i.verdict for i in items] == ["INCONCLUSIVE", "INCONCLUSIVE"]
    assert items[0].note == (f"not significant after {method} correction over 2 hypotheses "
                             f"(adjusted p = {expected[0]:.3g}, alpha 0.05)")
    kept = corrected(plan, _items(plan, [0.001, 0.02], ["CONFIRMED", "CONFIRMED"]), lambda i: i.p)
    assert [i.verdict for i in kept] == ["CONFIRMED", "CONFIRMED"] and kept[0].note is None


def test_no_correction_guardrails_and_missing_p_values_are_left_alone(tmp_path):
    plan = _plan(tmp_path, "plans/markets.yaml", "none")
    items = corrected(plan, _items(plan, [0.03, 0.04], ["CONFIRMED", "CONFIRMED"]), lambda i: i.p)
    assert [(i.verdict, i.adjusted_p_value) for i in items] == [("CONFIRMED", 0.03), ("CONFIRMED", 0.04)]
    guarded = _plan(tmp_path, "plans/markets.yaml", second_role="guardrail")
    items = corrected(guarded, _items(guarded, [0.04, 0.5], ["CONFIRMED", "CONFIRMED"]), lambda i: i.p)
    assert [(i.verdict, i.adjusted_p_value) for i in items] == [("CONFIRMED", 0.04), ("CONFIRMED", None)]
    plan = _plan(tmp_path, "plans/markets.yaml")
    items = corrected(plan, _items(plan, [0.04, None], ["CONFIRMED", "INCONCLUSIVE"]), lambda i: i.p)
    assert items[0].adjusted_p_value == 0.04 and items[0].verdict == "CONFIRMED"  # a family of one estimable


def test_the_design_rule_for_significance_is_kept():
    """A placebo rank p-value equal to alpha is significant for a synthetic control (p <= alpha)."""
    class Plan:
        family, alpha = ["a"], 0.05
        correction = type("C", (), {"method": "holm"})

    metric = type("M", (), {"id": "a", "role": "primary"})
    item = Item(metric, 0.05, "CONFIRMED")
    assert corrected(Plan, [item], lambda i: i.p, lambda p: p <= 0.05)[0].verdict == "CONFIRMED"
    assert corrected(Plan, [item], lambda i: i.p)[0].verdict == "INCONCLUSIVE"


def _check_rows(analysis):
    rows = analysis.results()
    raw = [r["p_value"] for r in rows]
    assert [r["adjusted_p_value"] for r in rows] == pytest.approx(list(multipletests(raw, method="holm")[1]), rel=1e-12)
    return rows


def test_every_design_records_holm_adjusted_p_values_over_its_family(tmp_path):
    from impactbook.designs import difference_in_differences, observational, synthetic_control

    markets = generate_markets_data(tmp_path / "markets.csv", START, 14)
    _check_rows(difference_in_differences.analyse_file(_plan(tmp_path, "plans/markets.yaml"), markets, "csv"))
    states = generate_states_data(tmp_path / "states.csv", START, 14)
    rows = _check_rows(synthetic_control.analyse_file(_plan(tmp_path, "plans/states.yaml"), states, "csv"))
    assert [r["p_value"] for r in rows] == [1 / 48, 1 / 48] and rows[0]["adjusted_p_value"] == pytest.approx(2 / 48)
    accounts = generate_observational_data(tmp_path / "accounts.csv", START, 28)
    plan = _plan(tmp_path, "plans/accounts.yaml", end=START + dt.timedelta(days=27))
    _check_rows(observational.analyse_file(plan, accounts, "csv"))


def test_the_time_series_design_records_holm_adjusted_p_values(tmp_path):
    from impactbook.demo import generate_its_data
    from impactbook.designs import interrupted_time_series

    series = generate_its_data(tmp_path / "its.csv", START, 14, pre_days=120)
    _check_rows(interrupted_time_series.analyse_file(_plan(tmp_path, "plans/its.yaml"), series, "csv"))


@pytest.mark.parametrize("value", [float("nan"), None])
def test_a_diagnostic_the_data_cannot_give_fails_with_its_own_reason_not_a_comparison_with_nan(value):
    failure = lambda p: f"p = {p:.3g} < 0.05"  # noqa: E731
    check = bounded("placebo", value, 0.05, at_least=True, failure=failure, undefined="no p-value: not passed")
    assert (check.passed, check.reason) == (False, "no p-value: not passed")
    assert check.scrap("m") == {"metric": "m", "name": "placebo", "value": None, "threshold": 0.05, "passed": False,
                                "reason": "no p-value: not passed"}
    assert bounded("placebo", 0.01, 0.05, at_least=True, failure=failure, undefined="").reason == "p = 0.01 < 0.05"
    assert bounded("fit", 0.2, 0.1, at_least=False, failure=failure, undefined="").passed is False
    assert bounded("fit", 0.1, 0.1, at_least=False, failure=failure, undefined="").scrap("m")["reason"] is None
