"""The harness end to end on toy stages whose effects are known: a fragile stage breaches its tolerance, a
robust one stays within it, contract failures land on the boundary where they first appear, a sleeping
stage breaks its latency budget, and candidate-vs-baseline deltas and attribution have the known sizes."""

import pytest
from pipeline_toy_stages import frame

from impactbook.designs.pipeline_validation import validate
from impactbook.designs.pipeline_validation.harness import preregistered_checks
from impactbook.designspecs.pipeline_validation import PipelineValidationDesign

TOY = "pipeline_toy_stages"


def design(stages, **extra):
    return PipelineValidationDesign.model_validate({
        "kind": "pipeline_validation", "evaluation": "toy", "unit": "unit", "bootstrap": 500,
        "stages": stages, "metrics": extra.pop("metrics", [{"id": "z", "entry_point": f"{TOY}:mean_z", "direction": "decrease"}]),
        **extra})


def noise(metric_tolerance, **extra):
    return {"id": "x_noise", "kind": "corrupt", "mode": "noise", "columns": ["x"], "magnitudes": [0.5, 1.0],
            "seeds": [1, 2], "replicates": 2, "metric": "z", "tolerance": metric_tolerance, **extra}


def test_fragile_stage_breaches_its_tolerance():
    # z = x^2 and noise of sd 1 x sd(x) = 2 raises mean z by ~4 (E[(x+e)^2] - x^2 = s^2), far above 0.5
    result = validate(design([{"name": "square", "entry_point": f"{TOY}:fragile"}], perturbations=[noise(0.5)]),
                      frame(), measure_costs=False)
    assert result.verdicts()["perturbation.x_noise"] == "REFUTED"
    curve = [s for s in result.sensitivity if s["perturbation"] == "x_noise"]
    assert [s["magnitude"] for s in curve] == [0.5, 1.0]
    assert curve[1]["difference"] == pytest.approx(frame().x.var(), rel=0.15)
    assert curve[1]["difference"] > curve[0]["difference"] > 0  # the sensitivity curve rises with the magnitude


def test_robust_stage_stays_within_the_same_tolerance():
    # z = 2x is linear: zero-mean noise leaves mean z unchanged up to sampling error (se ~ 0.1 here)
    result = validate(design([{"name": "double", "entry_point": f"{TOY}:double"}], perturbations=[noise(0.5)]),
                      frame(), measure_costs=False)
    assert result.verdicts()["perturbation.x_noise"] == "CONFIRMED"


def test_straddling_interval_is_inconclusive():
    result = validate(design([{"name": "square", "entry_point": f"{TOY}:fragile"}],
                             perturbations=[noise(0.0, magnitudes=[0.05], seeds=[1], replicates=1)]),
                      frame(units=30), measure_costs=False)
    delta = [s for s in result.sensitivity][0]
    assert delta["difference_low"] < 0 < delta["difference_high"]
    assert result.verdicts()["perturbation.x_noise"] == "INCONCLUSIVE"


def test_contract_violation_is_attributed_to_the_first_breaking_boundary():
    stages = [{"name": "first", "entry_point": f"{TOY}:double", "contract": {"columns": {"z": {"min": 0}}}},
              {"name": "second", "entry_point": f"{TOY}:negative", "contract": {"columns": {"z": {"min": 0}}}},
              {"name": "third", "entry_point": f"{TOY}:passthrough",
               "contract": {"columns": {"z": {"min": 0}, "w": {}}, "row_ratio": [1, 1]}}]
    result = validate(design(stages), frame(units=10), measure_costs=False)
    verdicts = result.verdicts()
    assert (verdicts["contract.first"], verdicts["contract.second"], verdicts["contract.third"]) == ("CONFIRMED", "REFUTED", "REFUTED")
    candidate = [b for b in result.boundaries if b["run"] == "candidate"]
    assert [b["stage"] for b in candidate if b["first_failure"]] == ["second"]
    second = next(b for b in candidate if b["stage"] == "second")
    assert "outside [0.0, None] (50 rows, e.g. [-1.0, -1.0, -1.0])" in second["violations"][0]
    assert any("w: missing column" in v for v in next(b for b in candidate if b["stage"] == "third")["violations"])


def test_stage_that_raises_under_a_perturbation_is_reported_there_and_refuted():
    flip = {"id": "x_text", "kind": "corrupt", "mode": "type_flip", "columns": ["x"], "magnitudes": [0.1],
            "metric": "z", "tolerance": 10.0}
    stages = [{"name": "pass", "entry_point": f"{TOY}:passthrough"}, {"name": "square", "entry_point": f"{TOY}:fragile"}]
    result = validate(design(stages, perturbations=[flip]), frame(units=10), measure_costs=False)
    assert result.verdicts()["perturbation.x_text"] == "REFUTED"
    assert "stage 'square' raised" in result.failures["x_text"]
    assert [b["stage"] for b in result.boundaries if b["run"] == "x_text @ 0.1" and b["first_failure"]] == ["square"]


def test_latency_budget_breaches_when_a_stage_sleeps():
    stages = [{"name": "slow", "entry_point": f"{TOY}:sleepy", "latency": {"p95_ms": 5, "repeats": 3}},
              {"name": "fast", "entry_point": f"{TOY}:double", "latency": {"p95_ms": 1000, "repeats": 3},
               "memory_mb": 100}]
    result = validate(design(stages), frame(units=10))
    verdicts = result.verdicts()
    assert (verdicts["latency.slow"], verdicts["latency.fast"], verdicts["memory.fast"]) == ("REFUTED", "CONFIRMED", "CONFIRMED")
    assert next(c for c in result.costs if c.stage == "slow").p50_ms >= 20


def test_candidate_delta_and_attribution_have_the_known_size():
    stages = [{"name": "model", "entry_point": f"{TOY}:double"}]
    changes = [{"stage": "model", "baseline": f"{TOY}:double", "candidate": f"{TOY}:double_v2"}]
    metrics = [{"id": "z", "entry_point": f"{TOY}:mean_z", "direction": "decrease", "tolerance": 0.4}]
    ablation = {"id": "back", "kind": "ablation", "stage": "model", "replacement": "baseline", "metric": "z", "tolerance": 1}
    result = validate(design(stages, changes=changes, metrics=metrics, perturbations=[ablation]), frame(units=10), measure_costs=False)
    assert result.deltas["z"].difference == pytest.approx(0.5, abs=1e-12)  # double_v2 adds exactly 0.5
    assert result.verdicts()["tolerance.z"] == "REFUTED"  # harm 0.5 > 0.4 with a zero-width interval
    assert result.verdicts()["perturbation.back"] == "CONFIRMED"  # back to baseline lowers z: no harm
    [attribution] = result.attribution
    assert (attribution.stage, attribution.contribution) == ("model", pytest.approx(0.5, abs=1e-12))


def test_drift_checks_rank_and_breach():
    stages = [{"name": "double", "entry_point": f"{TOY}:double"}]
    drift = [{"column": "x", "statistic": "psi", "threshold": 0.1}, {"column": "y", "statistic": "ks", "threshold": 0.1},
             {"column": "label", "statistic": "chi_square", "threshold": 50},
             {"column": "z", "stage": "double", "statistic": "jensen_shannon", "threshold": 0.05}]
    current = frame(seed=1).assign(x=lambda f: f.x + 2)  # x and z = 2x shift by one sd: PSI well above 0.1
    result = validate(design(stages, drift=drift), current, frame(seed=2), measure_costs=False)
    verdicts = result.verdicts()
    assert (verdicts["drift.x.psi"], verdicts["drift.y.ks"], verdicts["drift.label.chi_square"],
            verdicts["drift.z.jensen_shannon@double"]) == ("REFUTED", "CONFIRMED", "CONFIRMED", "REFUTED")
    assert result.drift[0].value / result.drift[0].threshold >= result.drift[-1].value / result.drift[-1].threshold


def test_results_rows_follow_the_standard_contract():
    from impactbook.results import result_problems

    d = design([{"name": "square", "entry_point": f"{TOY}:fragile", "contract": {"columns": {"z": {"min": 0}}}}],
               perturbations=[noise(0.5)])
    scraps = validate(d, frame(units=20), measure_costs=False).scraps()
    ids = preregistered_checks(d)
    assert set(scraps["verdicts"]) == set(ids)
    assert result_problems(scraps, ids, ids) == []


def test_shipped_example_breaches_exactly_its_version_swap_and_popularity_drift():
    from impactbook.designs.pipeline_validation.example import breach_lines, run_example

    validation = run_example(measure_costs=False)
    assert validation.breached() == ["perturbation.price_ranking_swap", "drift.popularity.jensen_shannon"]
    assert breach_lines(validation)[0].startswith("perturbation.price_ranking_swap: -")


def test_boundary_checks_null_rates_ranges_and_text_where_numbers_belong():
    import numpy as np

    from impactbook.designs.pipeline_validation.stages import check_boundary
    from impactbook.designspecs.pipeline_validation import Contract

    before = frame(units=4)  # 20 rows
    after = before.assign(x=np.where(np.arange(20) < 3, np.nan, before.x), y=np.arange(20.0), label="a")
    contract = Contract.model_validate({"columns": {"x": {"max_null_rate": 0.1}, "y": {"min": 0, "max": 15},
                                                    "label": {"min": 0}}, "row_ratio": [0.5, 0.9]})
    found = {(v.column, v.rule.split(" ")[0]): v for v in check_boundary("s", contract, before, after)}
    assert found[("x", "null")].rows == 3 and found[("x", "null")].examples == [0, 1, 2]  # 3/20 > 0.1
    assert found[("y", "outside")].rows == 4 and found[("y", "outside")].examples == [16.0, 17.0, 18.0]
    assert "a range needs numbers" in found[("label", "type")].rule
    assert found[(None, "row")].rule == "row ratio 1.0000 outside [0.5, 0.9]"
    assert check_boundary("s", Contract.model_validate({"columns": {"x": {"max_null_rate": 0.15}}}), before, after) == []


def test_target_reweighting_runs_and_moves_the_metric_by_the_known_amount():
    # all mass on x > 12: each unit keeps only its rows above 12 (resampled), so z = 2x moves per unit by
    # 2 x (mean of its rows above 12 - its mean); units with no such row drop out of the pairs
    target = {"id": "x_high", "kind": "shift", "mode": "target", "column": "x", "magnitudes": [0.0, 1.0],
              "target": {"edges": [float("-inf"), 12.0, float("inf")], "proportions": [0.0, 1.0]},
              "metric": "z", "tolerance": 1.0}
    data = frame(units=100)
    result = validate(design([{"name": "double", "entry_point": f"{TOY}:double"}], perturbations=[target]),
                      data, measure_costs=False)
    curve = {s["magnitude"]: s for s in result.sensitivity}
    assert curve[0.0]["difference_low"] < 0 < curve[0.0]["difference_high"]  # magnitude 0: the observed distribution
    per_unit = data.groupby("unit").x
    expected = (2 * (data.x.where(data.x > 12).groupby(data.unit).mean() - per_unit.mean())).dropna().mean()
    assert curve[1.0]["difference"] == pytest.approx(expected, rel=0.1)
    assert result.verdicts()["perturbation.x_high"] == "REFUTED"


def test_target_naming_absent_values_fails_before_anything_runs_naming_the_perturbation():
    target = {"id": "labels", "kind": "shift", "mode": "target", "column": "label",
              "target": {"proportions": {"0": 0.5, "9": 0.5}}, "metric": "z", "tolerance": 1.0}
    stages = [{"name": "double", "entry_point": f"{TOY}:double"}]
    with pytest.raises(ValueError, match=r"perturbations\[0\]\.target\.proportions: column 'label' holds values"):
        validate(design(stages, perturbations=[target]), frame(units=10), measure_costs=False)
