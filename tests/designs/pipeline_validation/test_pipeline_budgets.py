"""Peak memory of a stage: a large NumPy allocation and memory allocated outside Python's allocators both
breach a memory budget; tracemalloc alone would miss the second, the resident high-water mark sees it."""

import numpy as np
from pipeline_toy_stages import allocates_outside_python, frame, passthrough

from impactbook.designs.pipeline_validation import validate
from impactbook.designs.pipeline_validation.budgets import peak_memory, resident_peak
from impactbook.designspecs.pipeline_validation import PipelineValidationDesign

TOY = "pipeline_toy_stages"


def test_a_large_numpy_array_breaches_the_memory_budget():
    design = PipelineValidationDesign.model_validate({
        "kind": "pipeline_validation", "evaluation": "toy", "unit": "unit",
        "stages": [{"name": "hungry", "entry_point": f"{TOY}:allocates_numpy", "memory_mb": 100},
                   {"name": "light", "entry_point": f"{TOY}:passthrough", "memory_mb": 100}],
        "metrics": [{"id": "z", "entry_point": f"{TOY}:mean_z", "direction": "decrease"}]})
    result = validate(design, frame(units=10))
    assert (result.verdicts()["memory.hungry"], result.verdicts()["memory.light"]) == ("REFUTED", "CONFIRMED")
    hungry = next(c for c in result.costs if c.stage == "hungry")
    assert 150 < hungry.traced_mb < 200 and hungry.peak_mb >= 150  # 160 MiB array, seen by tracemalloc


def test_memory_outside_pythons_allocator_is_seen_by_the_resident_peak_only():
    data = frame(units=10)
    memory = peak_memory(lambda: allocates_outside_python(data))
    assert memory.traced_mb < 20  # tracemalloc misses the mmap
    assert memory.resident_mb is not None and memory.resident_mb > 140  # 160 MiB touched
    assert memory.peak_mb == memory.resident_mb


def test_resident_peak_of_a_light_call_is_small():
    data = frame(units=10)
    rise, method = resident_peak(lambda: passthrough(data))
    assert rise is not None and rise < 20 and method
    assert peak_memory(lambda: np.zeros(10)).peak_mb < 20


def test_where_the_high_water_mark_cannot_be_reset_the_resident_set_is_sampled(monkeypatch, tmp_path):
    from impactbook.designs.pipeline_validation import budgets

    monkeypatch.setattr(budgets, "CLEAR_REFS", tmp_path / "missing" / "clear_refs")  # unwritable: no reset
    data = frame(units=10)
    rise, method = resident_peak(lambda: allocates_outside_python(data))
    assert "sampled" in method and rise > 140
