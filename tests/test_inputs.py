"""inputs.py: templates load pinned inputs by catalog name, the pin checked first."""

from __future__ import annotations

import pytest

from impactbook.errors import InputError
from impactbook.inputs import load_input


def test_load_input_checks_the_pin(project):
    frame = load_input("demo_experiment", project)
    assert len(frame) == 20_000 and str(frame["date"].dtype).startswith("datetime64")
    data = project.root / "data/demo_experiment.csv"
    data.write_text(data.read_text()[:-30] + "\n")
    with pytest.raises(InputError, match="does not match its pin"):
        load_input("demo_experiment", project)
