"""Experiments with several treatment arms: SRM over k arms, each arm against the control, the family
corrected across arms x metrics (Holm, BH) or across arms (Dunnett), verdicts and a decision per arm —
checked against scipy and statsmodels on a seeded 4-arm experiment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats import proportion as sm_proportion

from impactbook.designs.aggregate import aggregate
from impactbook.designs.randomized import analyse
from impactbook.decision import decide, final_verdicts
from impactbook.plan import plan_from_canonical
from impactbook.record import Action, Status
from impactbook.stats import SampleMean, dunnett_adjust, welch_difference

ARMS = ["control", "a", "b", "c"]
LIFTS = {"control": 0.0, "a": 0.0, "b": 0.02, "c": 0.04}  # conversion lift per arm
REVENUE = {"control": 10.0, "a": 10.0, "b": 10.3, "c": 9.0}


def _plan(correction="holm", **design):
    return plan_from_canonical({
        "id": "four", "title": "Four arms", "hypothesis": "b and c beat the control", "template": "ab_test",
        "model_change": {"baseline": "v1", "candidate": "v2"}, "inputs": {"experiment": "four"},
        "design": {"unit": "user_id", "variant_column": "variant", "control": "control", "treatments": ARMS[1:],
                   "expected_split": {arm: 0.25 for arm in ARMS}, **design},
        "window": {"start": "2026-11-30", "end": "2026-12-13", "time_column": "date"}, "alpha": 0.05, "seed": 4,
        "metrics": [{"id": "conversion", "column": "converted", "kind": "proportion", "role": "primary",
                     "direction": "increase"},
                    {"id": "revenue", "column": "revenue", "kind": "mean", "role": "secondary", "direction": "increase"},
                    {"id": "revenue_guard", "column": "revenue", "kind": "mean", "role": "guardrail",
                     "direction": "increase", "margin": -0.05}],
        "correction": {"method": correction},
        "decision_rule": {"ship_when_confirmed": ["conversion", "revenue_guard"],
                          "rollback_when_refuted": ["revenue_guard"]}})


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    rng = np.random.default_rng(2026)
    n = 40_000
    variant = rng.choice(ARMS, n)
    converted = (rng.random(n) < 0.10 + np.vectorize(LIFTS.get)(variant)).astype(int)
    revenue = rng.normal(np.vectorize(REVENUE.get)(variant), 4.0).round(4)
    frame = pd.DataFrame({"user_id": np.arange(n), "variant": variant, "converted": converted, "revenue": revenue,
                          "date": "2026-12-01"})
    path = tmp_path_factory.mktemp("four") / "four.csv"
    frame.to_csv(path, index=False)
    return frame, path


def test_each_arm_against_control_matches_scipy_and_statsmodels(experiment):
    frame, path = experiment
    plan = _plan()
    analysis = analyse(plan, aggregate(plan, path))
    # SRM over four arms: scipy.stats.chisquare, 1e-9
    counts = frame.variant.value_counts()
    reference = sps.chisquare([counts[a] for a in ARMS], [len(frame) / 4] * 4)
    assert analysis.srm.p_value == pytest.approx(reference.pvalue, abs=1e-9)
    rows = {(r.metric, r.arm): r for r in analysis.results}
    control = frame[frame.variant == "control"]
    for arm in ARMS[1:]:
        treated = frame[frame.variant == arm]
        welch = sps.ttest_ind(treated.revenue, control.revenue, equal_var=False)
        assert rows[("revenue", arm)].effect.p_value == pytest.approx(welch.pvalue, abs=1e-9)
        wald = sm_proportion.test_proportions_2indep(treated.converted.sum(), len(treated), control.converted.sum(), len(control),
                                       method="wald", compare="diff")
        assert rows[("conversion", arm)].effect.p_value == pytest.approx(wald.pvalue, abs=1e-9)
    # Holm across the family (primary and secondary) x arms: statsmodels multipletests, 1e-9
    family = [(m, arm) for m in ("conversion", "revenue") for arm in ARMS[1:]]
    holm = multipletests([rows[k].effect.p_value for k in family], method="holm")[1]
    for key, expected in zip(family, holm):
        assert rows[key].adjusted_p_value == pytest.approx(expected, abs=1e-9)
    assert set(analysis.verdicts) == {f"{m}:{a}" for m in ("conversion", "revenue", "revenue_guard") for a in ARMS[1:]}
    assert analysis.verdicts["conversion:c"] == "CONFIRMED" and analysis.verdicts["conversion:a"] == "INCONCLUSIVE"
    assert analysis.verdicts["revenue_guard:c"] == "REFUTED"


def test_the_decision_names_the_winning_arm(experiment):
    _, path = experiment
    plan = _plan()
    analysis = analyse(plan, aggregate(plan, path))
    verdicts = final_verdicts(plan, Status.COMPLETED, analysis.verdicts, [], [], [])
    decision = decide(plan, Status.COMPLETED, verdicts)
    # c converts best but breaks the revenue guardrail; b passes both; a is no better than control
    assert decision.action is Action.SHIP and decision.arm == "b", decision.reason
    assert {v.key for v in verdicts} == {f"{m}:{a}" for m in ("conversion", "revenue", "revenue_guard")
                                         for a in ARMS[1:]}


def test_dunnett_agrees_with_scipy_on_a_large_equal_variance_experiment(experiment):
    # Reference: scipy.stats.dunnett (pooled-variance t, QMC). Ours is the large-sample form for any
    # estimator (separate variances, normal); at 10,000 units per arm with equal variances they agree to
    # within scipy's integration error plus the t/normal difference, well under 0.002.
    frame, path = experiment
    plan = _plan("dunnett")
    analysis = analyse(plan, aggregate(plan, path))
    rows = {(r.metric, r.arm): r for r in analysis.results}
    samples = [frame[frame.variant == arm].revenue.to_numpy() for arm in ARMS[1:]]
    reference = sps.dunnett(*samples, control=frame[frame.variant == "control"].revenue.to_numpy(),
                            random_state=1).pvalue
    for arm, expected in zip(ARMS[1:], reference):
        assert rows[("revenue", arm)].adjusted_p_value == pytest.approx(expected, abs=2e-3)


def test_dunnett_keeps_the_familywise_error_rate_under_the_global_null():
    # Simulation, seed 7: 2,000 experiments, control + 3 arms of 200 normal units, no effect; reject when
    # any Dunnett-adjusted p < 0.05. FWER within 3 binomial SEs of 5% (Bonferroni-free, not conservative).
    rng = np.random.default_rng(7)
    draws, rejections = 2000, 0
    for _ in range(draws):
        control = SampleMean.of(rng.normal(0, 1, 200))
        effects = [welch_difference(control, SampleMean.of(rng.normal(0, 1, 200))) for _ in range(3)]
        shared = sum(e.control_variance_of_mean for e in effects) / 3
        adjusted = dunnett_adjust([e.statistic for e in effects], [e.standard_error for e in effects], shared)
        rejections += min(adjusted) < 0.05
    assert abs(rejections / draws - 0.05) < 3 * np.sqrt(0.05 * 0.95 / draws), rejections / draws


def test_a_k_arm_design_is_validated():
    from impactbook.errors import PlanError
    with pytest.raises(PlanError, match="expected_split must name exactly the arms"):
        _plan(expected_split={"control": 0.5, "a": 0.5})
    with pytest.raises(PlanError, match="dunnett compares several treatment arms"):
        plan_from_canonical({**_plan().canonical(), "design": {**_plan().canonical()["design"], "treatments": None,
                                                               "treatment": "a", "expected_split": {"control": 0.5,
                                                                                                    "a": 0.5}},
                             "correction": {"method": "dunnett"}})


def test_a_four_arm_plan_runs_end_to_end_and_its_runs_compare(tmp_path, experiment):
    import json

    from impactbook.catalog import Catalog, Contract
    from impactbook.scaffold import init_project
    from impactbook.yamlio import dump_yaml, load_yaml
    from conftest import cli

    project = init_project(tmp_path / "project")
    frame, _ = experiment
    scaffolded = load_yaml(project.root / "plans/example.yaml", RuntimeError, "example.yaml")
    tomorrow = str(scaffolded["window"]["start"])  # a fresh project's window opens tomorrow, after the freeze
    data = project.resolve("data/four.csv")
    frame.assign(date=tomorrow).to_csv(data, index=False)
    Catalog.load(project).pin_dataset("four", data, synthetic=True, contract=Contract.model_validate({
        "unique": ["user_id"], "columns": {"variant": {"type": "str", "allowed": ARMS}, "converted": {"type": "int"},
                                           "revenue": {"type": "float"}, "date": {"type": "date"}}}))
    plan = _plan().canonical()
    plan["window"] = {"start": tomorrow, "end": tomorrow, "time_column": "date"}
    dump_yaml(plan, project.root / "plans/four.yaml")
    assert cli(project, "plan", "freeze", "plans/four.yaml").returncode == 0
    first = cli(project, "run", "plans/four.yaml", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    result = json.loads(first.stdout)
    assert result["decision"] == "ship" and "for arm b" in result["decision_reason"]
    assert result["verdicts"]["conversion:b"] == "CONFIRMED" and result["verdicts"]["revenue_guard:c"] == "REFUTED"
    assert any(e["arm"] == "c" and e["sentence"].startswith("[c] conversion rose") for e in result["effects"])
    second = json.loads(cli(project, "run", "plans/four.yaml", "--json").stdout)
    compared = json.loads(cli(project, "compare", result["run_id"], second["run_id"], "--json").stdout)
    assert {m["metric"] for m in compared["metrics"]} >= {"conversion:a", "conversion:b", "conversion:c"}
