"""The shipped example end to end without a project (what the demo calls): the ranking pipeline's design,
its generated data, the validation, and one line per breached check."""

from __future__ import annotations

from pathlib import Path

from .harness import Validation, validate
from .parameters import design_parameter, example_frames

EXAMPLE_DESIGN = Path(__file__).resolve().parents[2] / "scaffold" / "pipeline_validation.yaml"


def run_example(seed: int = 20261123, measure_costs: bool = True) -> Validation:
    return validate(design_parameter(str(EXAMPLE_DESIGN)), *example_frames(seed), measure_costs=measure_costs)


def breach_lines(validation: Validation) -> list[str]:
    """What the demo prints: each REFUTED check with what was observed against its limit."""
    lines = []
    for check in validation.checks:
        if check.verdict == "REFUTED":
            interval = f" [{check.low:+.4g}, {check.high:+.4g}]" if check.low is not None else ""
            lines.append(f"{check.id}: {check.observed:+.4g}{interval} breaches {check.limit:g}"
                         + (f" ({check.note})" if check.note else ""))
    return lines


if __name__ == "__main__":
    for line in breach_lines(run_example()):
        print(line)
