"""The observational design (designs/observational.py; the file is named apart from
tests/stats/test_observational.py because pytest needs unique basenames): plan validation (bad fields
named), the adapter on synthetic accounts with a
known effect and confounding, failed diagnostics ending INCONCLUSIVE, and the template end to end from a
frozen plan through Papermill to a stored run, report and gate."""

from __future__ import annotations

import datetime as dt

import pytest

from impactbook.demo import OBSERVATIONAL_CONTRACT, OBSERVATIONAL_DATA_PATH, OBSERVATIONAL_DATASET, \
    OBSERVATIONAL_TRUE_EFFECT, generate_observational_data
from impactbook.errors import PlanError
from impactbook.plan import load_plan
from impactbook.record import Status
from impactbook.yamlio import dump_yaml, load_yaml
from conftest import (REPO, assert_gate_follows_the_decision_and_verify_passes,
                      assert_runs_compare_baseline_and_site, run_design_example, run_plan_copy)

PLAN = "src/impactbook/scaffold/observational.yaml"
START = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=2)  # UTC, as freezing: still ahead after midnight


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


def _accounts(folder, **options):
    return generate_observational_data(folder / "accounts.csv", START, 28, **options)


def test_the_adapter_recovers_the_known_effect_and_equals_the_estimators_on_the_file_read_by_pandas(tmp_path):
    """DuckDB reads only the plan's columns; the estimates equal the estimators run on the CSV read by pandas,
    every adjusted interval covers the known effect (2.5), the naive difference does not."""
    import numpy as np
    import pandas as pd

    from impactbook.designs.observational import analyse_file
    from impactbook.stats.matching import match_att
    from impactbook.stats.observational import ipw, propensity_score

    path = _accounts(tmp_path)
    plan = load_plan(_plan_file(tmp_path))
    analysis = analyse_file(plan, path, "csv")
    frame = pd.read_csv(path)
    x = frame[plan.design.covariates].to_numpy(float)
    score = propensity_score(frame.opted_in.to_numpy(float), x)
    spend = analysis.metrics[0]
    assert spend.primary.estimate == pytest.approx(ipw(frame.spend.to_numpy(), score, "ATT", 0.01).estimate, rel=1e-9)
    assert spend.estimates["matching"].estimate == pytest.approx(
        match_att(frame.spend.to_numpy(), frame.opted_in.to_numpy(), score.logit, 0.2).estimate, rel=1e-9)
    for name, estimate in spend.estimates.items():
        assert estimate.low < OBSERVATIONAL_TRUE_EFFECT < estimate.high, name
    naive = frame.spend[frame.opted_in == 1].mean() - frame.spend[frame.opted_in == 0].mean()
    assert naive > 3 * OBSERVATIONAL_TRUE_EFFECT
    assert spend.verdict == "CONFIRMED" and all(d.passed for d in spend.diagnostics)
    row = analysis.results()[0]
    assert row["method"].startswith("IPW, normalized (Hajek) weights, ATT") and row["level"] == 0.95
    assert (row["treatment_n"], row["control_n"]) == (int(frame.opted_in.sum()), int((frame.opted_in == 0).sum()))
    assert row["e_value"] > row["e_value_interval"] > 1 and row["rosenbaum_gamma"] > 1
    assert max(abs(b["smd_before"]) for b in analysis.scraps()["balance"]) > 0.5
    assert np.isfinite(row["max_abs_smd_after"]) and row["max_abs_smd_after"] < 0.1
    from impactbook.results import result_problems

    assert result_problems(analysis.scraps(), ["spend", "complaints"], ["spend", "complaints"]) == []


def test_a_text_flag_selects_the_treated_units_by_its_value(tmp_path):
    import pandas as pd

    from impactbook.designs.observational import analyse_file

    path = _accounts(tmp_path)
    frame = pd.read_csv(path)
    frame.assign(opted_in=frame.opted_in.map({1: "v2", 0: "v1"})).to_csv(tmp_path / "text.csv", index=False)
    numeric = analyse_file(load_plan(_plan_file(tmp_path)), path, "csv")
    text = analyse_file(load_plan(_plan_file(tmp_path, "text.yaml", treated_value="v2")), tmp_path / "text.csv", "csv")
    assert text.metrics[0].primary.estimate == pytest.approx(numeric.metrics[0].primary.estimate, rel=1e-12)
    # DuckDB reads yes/no as BOOLEAN: the plan's "yes" still selects the same units
    frame.assign(opted_in=frame.opted_in.map({1: "yes", 0: "no"})).to_csv(tmp_path / "yes.csv", index=False)
    yes = analyse_file(load_plan(_plan_file(tmp_path, "yes.yaml", treated_value="yes")), tmp_path / "yes.csv", "csv")
    assert yes.metrics[0].primary.estimate == pytest.approx(numeric.metrics[0].primary.estimate, rel=1e-12)


def test_poor_overlap_makes_every_verdict_inconclusive_with_its_reason(tmp_path):
    from impactbook.designs.observational import analyse_file

    path = _accounts(tmp_path, selection=5.0)  # opting in almost determined by the covariates
    analysis = analyse_file(load_plan(_plan_file(tmp_path, trim=0.05)), path, "csv")
    assert analysis.metrics[0].primary.p_value < 0.05  # significant, yet not CONFIRMED
    for item in analysis.metrics:
        assert item.verdict == "INCONCLUSIVE"
        assert item.note.startswith("diagnostic failed: ") and "units trimmed" in item.note


def test_unmatched_treated_units_and_a_low_e_value_fail_their_diagnostics(tmp_path):
    from impactbook.designs.observational import analyse_file

    path = _accounts(tmp_path, selection=5.0)
    matched = analyse_file(load_plan(_plan_file(tmp_path, estimator="matching", caliper=0.001)), path, "csv")
    assert "treated units without a match inside the caliper" in matched.metrics[0].note
    demanding = analyse_file(load_plan(_plan_file(tmp_path, "e.yaml", diagnostics={"min_e_value": 10})),
                             _accounts(tmp_path), "csv")
    assert all(m.verdict == "INCONCLUSIVE" and "E-value" in m.note for m in demanding.metrics)


def test_aipw_is_the_primary_estimate_when_the_plan_says_so(tmp_path):
    from impactbook.designs.observational import analyse_file

    analysis = analyse_file(load_plan(_plan_file(tmp_path, estimator="aipw", estimand="ATE")), _accounts(tmp_path), "csv")
    row = analysis.results()[0]
    assert row["method"].startswith("AIPW") and row["estimand"] == "ATE"
    assert row["difference_low"] < 2.5 < row["difference_high"]


@pytest.fixture(scope="module")
def accounts_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("accounts")
    return run_design_example(root / "project", "observational", _plan_file(root), "plans/accounts.yaml",
                              OBSERVATIONAL_DATASET, OBSERVATIONAL_DATA_PATH,
                              lambda path: generate_observational_data(path, START, 28), OBSERVATIONAL_CONTRACT)


def test_the_template_runs_from_a_frozen_plan_to_a_stored_run_and_a_gate(accounts_project):
    project, outcome = accounts_project
    record = outcome.record
    assert record.status is Status.COMPLETED, record.errors
    assert [v.metric for v in record.verdicts] == ["spend", "complaints"]
    spend = next(e for e in record.effects if e.metric == "spend")
    assert spend.difference_low < OBSERVATIONAL_TRUE_EFFECT < spend.difference_high  # the known effect
    html = outcome.report.read_text(encoding="utf-8")
    assert "Assumptions and limitations" in html and "No unmeasured confounding" in html
    assert "<td>rows outside window</td>" in html and "<td>treated units</td>" in html  # the data table
    for section in ("Overlap", "Balance", "Sensitivity to unmeasured confounding"):
        assert section in html
    assert_gate_follows_the_decision_and_verify_passes(project, record)


def test_compare_baseline_and_the_site_read_observational_runs(accounts_project):
    project, outcome = accounts_project
    assert_runs_compare_baseline_and_site(project, "plans/accounts.yaml", outcome.record.run_id)


def test_balance_after_ate_weighting_uses_the_trimmed_inverse_probability_weights(tmp_path):
    import numpy as np
    import pandas as pd

    from impactbook.designs.observational import analyse_file
    from impactbook.stats.balance import balance_table
    from impactbook.stats.observational import propensity_score

    path = _accounts(tmp_path)
    plan = load_plan(_plan_file(tmp_path, estimand="ATE", trim=0.05))
    analysis = analyse_file(plan, path, "csv")
    frame = pd.read_csv(path)
    x, d = frame[plan.design.covariates].to_numpy(float), frame.opted_in.to_numpy(float)
    p = propensity_score(d, x).score
    weights = ((p >= 0.05) & (p <= 0.95)) * np.where(d == 1, 1 / p, 1 / (1 - p))
    expected = balance_table(x, plan.design.covariates, d, weights)
    assert [b.smd_after for b in analysis.balance] == pytest.approx([b.smd_after for b in expected], rel=1e-8)
    assert analysis.metrics[0].primary.estimand == "ATE"


def test_matching_beside_weighting_is_left_out_when_no_treated_unit_finds_a_match(tmp_path):
    from impactbook.designs.observational import analyse_file

    analysis = analyse_file(load_plan(_plan_file(tmp_path, caliper=1e-9)), _accounts(tmp_path), "csv")
    spend = analysis.metrics[0]
    assert set(spend.estimates) == {"ipw", "aipw"} and spend.rosenbaum is None
    assert spend.verdict == "CONFIRMED" and analysis.results()[0]["rosenbaum_gamma"] is None


def test_matching_as_the_plans_estimator_with_no_match_is_inconclusive_with_the_reason(tmp_path):
    """Not a failed run: the verdict is INCONCLUSIVE, the overlap diagnostic fails, the row has no numbers."""
    from impactbook.designs.observational import analyse_file

    analysis = analyse_file(load_plan(_plan_file(tmp_path, estimator="matching", caliper=1e-9)), _accounts(tmp_path), "csv")
    for item, row in zip(analysis.metrics, analysis.results()):
        assert item.verdict == "INCONCLUSIVE" and item.primary is None and "matching" not in item.estimates
        assert "the plan's estimator (matching) has no estimate: no treated unit could be matched" in item.note
        assert [d.passed for d in item.diagnostics] == [False] and "100.0% of treated units" in item.diagnostics[0].reason
        assert row["difference"] is None and row["e_value"] is None and row["method"] == "matching"
    assert analysis.verdicts() == {"spend": "INCONCLUSIVE", "complaints": "INCONCLUSIVE"}
    assert analysis.scraps()["sensitivity"][0]["e_value"] is None


def test_a_matching_plan_without_matches_completes_inconclusive_through_the_template(accounts_project):
    project, _ = accounts_project
    outcome = run_plan_copy(project, "plans/accounts.yaml", "accounts-unmatched",
                            lambda plan: plan["design"].update(estimator="matching", estimand="ATT", caliper=1e-9))
    assert {v.metric: v.verdict.value for v in outcome.record.verdicts} == {"spend": "INCONCLUSIVE",
                                                                            "complaints": "INCONCLUSIVE"}
    assert "no treated unit could be matched" in outcome.report.read_text(encoding="utf-8")


def test_a_proportion_metrics_e_value_is_its_risk_ratios(tmp_path):
    from impactbook.designs.observational import analyse_file
    from impactbook.stats.sensitivity import e_value

    analysis = analyse_file(load_plan(_plan_file(tmp_path)), _accounts(tmp_path), "csv")
    complaints = next(m for m in analysis.metrics if m.metric.kind == "proportion")
    risk = complaints.primary.control_mean
    assert complaints.e_value.method.endswith("risk ratio of the binary outcome")
    assert complaints.e_value.estimate == pytest.approx(e_value((risk + complaints.primary.estimate) / risk), rel=1e-12)
    spend = next(m for m in analysis.metrics if m.metric.kind == "mean")
    assert "exp(0.91 d)" in spend.e_value.method


def test_rows_dated_outside_the_window_are_left_out_and_counted(tmp_path):
    """Rows dated before the window (outcomes that existed before the freeze) or after it changed the estimate
    and were not counted anywhere: they are left out, as in every design, and counted in data_quality."""
    import pandas as pd

    from impactbook.designs.observational import analyse_file

    path = _accounts(tmp_path)
    inside = analyse_file(load_plan(_plan_file(tmp_path)), path, "csv")
    frame = pd.read_csv(path)
    early = frame.head(300).assign(account=lambda f: "early" + f.account, date=str(START - dt.timedelta(days=40)),
                                   spend=lambda f: f.spend + 500 * f.opted_in)
    late = frame.head(5).assign(account=lambda f: "late" + f.account, date=str(START + dt.timedelta(days=60)))
    pd.concat([frame, early, late]).to_csv(tmp_path / "wider.csv", index=False)
    wider = analyse_file(load_plan(_plan_file(tmp_path)), tmp_path / "wider.csv", "csv")
    assert wider.metrics[0].primary.estimate == pytest.approx(inside.metrics[0].primary.estimate, rel=1e-12)
    quality = wider.scraps()["data_quality"]
    assert quality["rows_outside_window"] == 305 and quality["units"] == len(frame)
    assert quality["notes"][0].startswith("305 rows dated outside the window")


def test_a_unit_listed_twice_makes_the_run_inadmissible(tmp_path):
    """One row per unit: 500 accounts listed twice with opposite flags ran COMPLETED and shipped."""
    import pandas as pd

    from impactbook.datacheck import check_input
    from impactbook.catalog import DatasetEntry
    from impactbook.hashing import sha256_file
    from impactbook.inputs import ResolvedInput

    path = _accounts(tmp_path)
    frame = pd.read_csv(path)
    twice = frame.head(500).assign(opted_in=lambda f: 1 - f.opted_in)
    pd.concat([frame, twice]).to_csv(tmp_path / "twice.csv", index=False)
    entry = DatasetEntry(uri="twice.csv", sha256=sha256_file(tmp_path / "twice.csv"), format="csv", contract=None)
    plan = load_plan(_plan_file(tmp_path))
    facts = check_input(ResolvedInput("accounts", "accounts", entry, tmp_path / "twice.csv"), plan,
                        dt.datetime.now(dt.timezone.utc), "primary")
    assert any(p.startswith("design.unit: fails unique (column 'account': 500 values repeat, 500 extra rows")
               for p in facts.problems), facts.problems


def test_a_comparison_group_of_several_flag_values_is_noted(tmp_path):
    """Three treated accounts whose flag read 'yes' (not the plan's 1) joined the comparison unseen."""
    import pandas as pd

    from impactbook.designs.observational import analyse_file

    frame = pd.read_csv(_accounts(tmp_path))
    flag = frame.opted_in.astype(str)
    flag[frame.index[frame.opted_in == 1][:3]] = "yes"
    frame.assign(opted_in=flag).to_csv(tmp_path / "stray.csv", index=False)
    analysis = analyse_file(load_plan(_plan_file(tmp_path)), tmp_path / "stray.csv", "csv")
    notes = analysis.scraps()["data_quality"]["notes"]
    untreated = int((frame.opted_in == 0).sum())
    assert notes[0] == (f"the comparison group mixes values of 'opted_in': '0' ({untreated:,} rows), 'yes' (3 rows); "
                        "every value but 1 counts as untreated")
    clean = analyse_file(load_plan(_plan_file(tmp_path)), _accounts(tmp_path), "csv").scraps()["data_quality"]["notes"]
    assert not any("comparison group" in note for note in clean)
