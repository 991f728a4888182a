"""Stages run as notebooks, end to end in real kernels (Papermill): the same results as the same stage as a
function, a failing cell reported at its stage with the cell and its error, an output never written named
as such, memory measured in the kernel, latency including kernel start-up, and plan errors naming the field."""

from pathlib import Path

import pytest
from pipeline_toy_stages import double, frame, mean_z
from pydantic import ValidationError

from impactbook.designs.pipeline_validation import validate
from impactbook.designs.pipeline_validation.notebook_stage import NotebookStage, NotebookStageError
from impactbook.designspecs.pipeline_validation import PipelineValidationDesign

TOY = "pipeline_toy_stages"
HERE = Path(__file__).parent
NOTEBOOKS = "notebooks"  # relative to the root the harness is given: this folder


def design(stages, **extra):
    return PipelineValidationDesign.model_validate({
        "kind": "pipeline_validation", "evaluation": "toy", "unit": "unit", "bootstrap": 200,
        "metrics": [{"id": "z", "entry_point": f"{TOY}:mean_z", "direction": "decrease"}], "stages": stages, **extra})


def test_a_notebook_stage_returns_what_the_same_function_stage_returns():
    data = frame(units=20).assign(x=lambda f: f.x.where(f.index % 7 != 0))  # nulls survive the Parquet trip
    out = NotebookStage(f"{NOTEBOOKS}/double_stage.ipynb", HERE)(data)
    assert out.equals(double(data))
    assert mean_z(out).equals(mean_z(double(data)))


def test_notebook_stages_run_in_the_harness_beside_function_stages_and_under_perturbations():
    missing = {"id": "x_missing", "kind": "missing", "columns": ["x"], "magnitudes": [0.5], "metric": "z", "tolerance": 0.1}
    stages = [{"name": "double", "notebook": f"{NOTEBOOKS}/double_stage.ipynb", "contract": {"columns": {"z": {"min": 0}}}},
              {"name": "pass", "entry_point": f"{TOY}:passthrough"}]
    as_functions = [{"name": "double", "entry_point": f"{TOY}:double", "contract": {"columns": {"z": {"min": 0}}}},
                    {"name": "pass", "entry_point": f"{TOY}:passthrough"}]
    data = frame(units=30)
    by_notebook = validate(design(stages, perturbations=[missing]), data, measure_costs=False, root=HERE)
    by_function = validate(design(as_functions, perturbations=[missing]), data, measure_costs=False)
    assert by_notebook.verdicts() == by_function.verdicts()
    assert by_notebook.sensitivity == by_function.sensitivity
    # half of x missing turns z = 2x to 0 there: mean z falls by about half of 2 x 10 (a decrease: no harm)
    assert by_notebook.sensitivity[0]["difference"] == pytest.approx(-10, rel=0.2)


def test_a_failing_cell_is_reported_at_its_stage_with_the_cell_and_its_error():
    stages = [{"name": "first", "entry_point": f"{TOY}:passthrough"},
              {"name": "broken", "notebook": f"{NOTEBOOKS}/failing_stage.ipynb"}]
    with pytest.raises(RuntimeError) as caught:
        validate(design(stages), frame(units=10), measure_costs=False, root=HERE)
    message = str(caught.value)
    assert "fails at stage 'broken'" in message
    assert "failing_stage.ipynb' failed in cell 3 (\"scaled = frame.x / frame['no_such_column']\"): KeyError" in message


def test_a_stage_failing_only_under_a_perturbation_is_reported_there():
    flip = {"id": "x_text", "kind": "corrupt", "mode": "type_flip", "columns": ["x"], "magnitudes": [0.1],
            "metric": "z", "tolerance": 10.0}
    stages = [{"name": "double", "notebook": f"{NOTEBOOKS}/double_stage.ipynb"}]
    result = validate(design(stages, perturbations=[flip]), frame(units=10), measure_costs=False, root=HERE)
    assert result.verdicts()["perturbation.x_text"] == "REFUTED"
    assert "stage 'double' raised" in result.failures["x_text"] and "as Parquet" in result.failures["x_text"]


def test_a_notebook_that_writes_no_output_says_so():
    with pytest.raises(NotebookStageError, match="wrote no output: it must write its frame as Parquet to the injected `output_path`"):
        NotebookStage(f"{NOTEBOOKS}/silent_stage.ipynb", HERE)(frame(units=3))
    with pytest.raises(NotebookStageError, match="does not exist"):
        NotebookStage(f"{NOTEBOOKS}/nowhere.ipynb", HERE)(frame(units=3))


def test_memory_is_measured_in_the_kernel_and_latency_includes_kernel_start_up():
    stages = [{"name": "hungry", "notebook": f"{NOTEBOOKS}/hungry_stage.ipynb", "memory_mb": 100,
               "latency": {"p95_ms": 60000, "repeats": 2, "warmup": 0}}]
    result = validate(design(stages), frame(units=10), root=HERE)
    [cost] = result.costs
    assert result.verdicts()["memory.hungry"] == "REFUTED"  # a 160 MiB array in the kernel
    assert 150 < cost.resident_mb < 400 and cost.traced_mb < 50  # our process only did the Parquet round trip
    assert "kernel" in cost.memory_method and "kernel start-up included" in cost.method
    assert cost.p50_ms > 300  # a fresh kernel per call: start-up alone takes longer than this
    assert result.verdicts()["latency.hungry"] == "CONFIRMED"


@pytest.mark.parametrize("stage, field, message", [
    ({"name": "s", "entry_point": f"{TOY}:double", "notebook": "a.ipynb"}, "", "give exactly one"),
    ({"name": "s"}, "", "give exactly one"),
    ({"name": "s", "notebook": "stage.py"}, "stages.0.notebook", "must be a notebook path relative to the project"),
    ({"name": "s", "notebook": "/abs/stage.ipynb"}, "stages.0.notebook", "relative to the project"),
    ({"name": "s", "notebook": "../outside.ipynb"}, "stages.0.notebook", "relative to the project"),
])
def test_plan_errors_name_the_field(stage, field, message):
    with pytest.raises(ValidationError) as caught:
        design([stage])
    assert message in str(caught.value) and field in str(caught.value)


def test_changes_and_swaps_may_name_notebooks():
    d = design([{"name": "model", "entry_point": f"{TOY}:double"}],
               changes=[{"stage": "model", "baseline": f"{TOY}:double", "candidate": "stages/model_v2.ipynb"}],
               perturbations=[{"id": "swap", "kind": "version_swap", "stage": "model", "entry_point": "stages/old.ipynb",
                               "metric": "z", "tolerance": 1.0}])
    assert d.changes[0].candidate == "stages/model_v2.ipynb"
    with pytest.raises(ValidationError, match="changes.0.candidate"):
        design([{"name": "model", "entry_point": f"{TOY}:double"}],
               changes=[{"stage": "model", "baseline": f"{TOY}:double", "candidate": "model_v2.py"}])
