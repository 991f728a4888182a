"""Trend plots drawn by the helper process are the very images drawn in the build's own process."""

import base64
import os
import signal

import pytest

from impactbook.site.plots import Painter, draw
from impactbook.processes import usable_cores

SPECS = [{"series": [{"label": "model v2", "colour": "#0969da", "x": [1, 2, 3], "y": [1.5, 2.0, -0.5],
                      "low": [0.5, 1.0, 0.7], "high": [0.6, 0.9, 0.8]},
                     {"label": "model v3", "colour": "#bc4c00", "x": [4], "y": [3.0], "low": [1.0], "high": [1.2]}],
          "margin": -2.0, "xlabel": "run number (oldest to newest)", "ylabel": "relative effect (%)",
          "title": "conversion (primary) across runs", "alt": "a plot"},
         {"series": [{"label": "model v2", "colour": "#0969da", "x": [1], "y": [0.1], "low": [0.2], "high": [0.2]}],
          "margin": None, "xlabel": "x", "ylabel": "y", "title": "revenue (guardrail) across runs", "alt": "another"}]


@pytest.mark.skipif(usable_cores() < 2, reason="the helper runs only beside a second core")
def test_the_helper_draws_byte_for_byte_what_this_process_draws():
    here = [draw(spec) for spec in SPECS]
    assert base64.b64decode(here[0]).startswith(b"\x89PNG") and here[0] != here[1]
    with Painter() as painter:
        assert painter.helper_pid is not None
        painter.send(SPECS)
        assert painter.receive() == here
        painter.send(SPECS[1:])  # the same helper answers the next build step
        assert painter.receive() == here[1:]


def test_a_helper_that_died_leaves_the_plots_to_this_process():
    with Painter() as painter:
        if painter.helper_pid is not None:
            os.kill(painter.helper_pid, signal.SIGKILL)
        painter.send(SPECS)
        assert painter.receive() == [draw(spec) for spec in SPECS]
        assert painter.helper_pid is None  # not asked again


def test_without_a_helper_the_plots_are_drawn_here():
    with Painter(helper=False) as painter:
        assert painter.helper_pid is None
        painter.send(SPECS[:1])
        assert painter.receive() == [draw(SPECS[0])]
        painter.send([])
        assert painter.receive() == []


@pytest.mark.skipif(usable_cores() < 2, reason="the helper runs only beside a second core")
def test_a_module_in_the_current_folder_does_not_shadow_the_helpers(tmp_path, monkeypatch):
    (tmp_path / "json.py").write_text("raise SystemExit('the project folder shadowed the standard library')\n")
    monkeypatch.chdir(tmp_path)
    with Painter() as painter:
        painter.send(SPECS[:1])
        assert painter.receive() == [draw(SPECS[0])]
        assert painter.helper_pid is not None, "the helper failed and the plots were drawn here"


@pytest.mark.skipif(usable_cores() < 2, reason="the helper runs only beside a second core")
def test_a_helper_that_hangs_is_killed_and_the_plots_are_drawn_here(monkeypatch):
    import time

    from impactbook.site import plots

    monkeypatch.setattr(plots, "HELPER_TIMEOUT_S", 1.0)
    with Painter() as painter:
        os.kill(painter.helper_pid, signal.SIGSTOP)
        painter.send(SPECS)
        started = time.monotonic()
        assert painter.receive() == [draw(spec) for spec in SPECS]
        assert painter.helper_pid is None and time.monotonic() - started < 30
