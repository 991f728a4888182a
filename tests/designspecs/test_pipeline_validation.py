"""The pipeline_validation plan schema: the shipped example parses, unknown fields and bad references are
errors that name the field."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from impactbook.designspecs.pipeline_validation import PipelineValidationDesign

EXAMPLE = Path(__file__).parents[2] / "src/impactbook/scaffold/pipeline_validation.yaml"


def example():
    return yaml.safe_load(EXAMPLE.read_text())


def error_of(data) -> str:
    with pytest.raises(ValidationError) as caught:
        PipelineValidationDesign.model_validate(data)
    return str(caught.value)


def test_shipped_example_parses_with_every_perturbation_kind():
    design = PipelineValidationDesign.model_validate(example())
    assert {p.kind for p in design.perturbations} == {"missing", "corrupt", "shift", "ablation", "version_swap"}
    with pytest.raises(ValidationError):
        design.seed = 1  # frozen


def test_unknown_field_is_named():
    data = example()
    data["stages"][0]["latency"]["p99_ms"] = 3
    assert "stages.0.latency.p99_ms" in error_of(data)


def test_bad_entry_point_is_named():
    data = example()
    data["metrics"][0]["entry_point"] = "not an entry point"
    message = error_of(data)
    assert "metrics.0.entry_point" in message and "package.module:function" in message


def test_perturbation_of_an_unknown_stage_names_it():
    data = example()
    data["perturbations"][5]["stage"] = "ranker"
    assert "perturbations[5].stage: 'ranker' is not declared" in error_of(data)


def test_missing_rate_above_one_names_the_kind_and_field():
    data = example()
    data["perturbations"][0]["magnitudes"] = [1.5]
    assert "perturbations.0.missing.magnitudes" in error_of(data)


def test_range_and_ratio_are_checked():
    data = example()
    data["stages"][0]["contract"]["columns"]["rating"] = {"min": 5, "max": 1}
    assert "min (5.0) must not exceed max (1.0)" in error_of(data)
    data = example()
    data["stages"][0]["contract"]["row_ratio"] = [2, 1]
    assert "stages.0.contract.row_ratio" in error_of(data)


def test_a_stage_is_a_function_or_a_notebook_and_errors_name_the_stage():
    data = example()
    data["stages"][0] = {**data["stages"][0], "notebook": "stages/features.ipynb"}
    assert "stages.0" in error_of(data) and "give exactly one" in error_of(data)
    del data["stages"][0]["entry_point"]
    assert PipelineValidationDesign.model_validate(data).stages[0].code == "stages/features.ipynb"
    data["stages"][0]["notebook"] = "../elsewhere/features.ipynb"
    assert "stages.0.notebook" in error_of(data)


def test_target_shift_errors_name_the_perturbation_and_field():
    data = example()
    data["perturbations"].append({"id": "toys", "kind": "shift", "mode": "target", "column": "category",
                                  "target": {"proportions": {"food": 0.5, "toys": 0.4}}, "metric": "ndcg_at_10",
                                  "tolerance": 0.02})
    message = error_of(data)
    assert f"perturbations.{len(data['perturbations']) - 1}.shift.target" in message and "must sum to 1 (got 0.9)" in message
    data["perturbations"][-1]["target"] = {"proportions": {"food": 0.6, "toys": 0.4}}
    assert PipelineValidationDesign.model_validate(data).perturbations[-1].target.proportions == {"food": 0.6, "toys": 0.4}
    data["perturbations"][-1]["mode"] = "quantile"
    assert "target: required with mode 'target' and only there" in error_of(data)
