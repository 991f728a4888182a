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
