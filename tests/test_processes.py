"""A helper that cannot be set up leaves the work to the caller; one that answers does so through the protocol."""

import subprocess

import pytest

from impactbook import processes
from impactbook.processes import Helper, usable_cores

TWO_CORES = pytest.mark.skipif(usable_cores() < 2, reason="the helper runs only beside a second core")


def test_a_child_that_cannot_be_set_up_is_no_helper(monkeypatch):
    def failing() -> None:
        raise OSError("no parent-death signal here")

    monkeypatch.setattr(processes, "dying_with_this_process", lambda: failing)
    with pytest.raises(subprocess.SubprocessError):  # what Popen raises for a failing preexec_fn
        subprocess.Popen(["true"], preexec_fn=failing)
    with Helper("json.tool") as helper:
        assert helper.pid is None
        assert helper.send({"a": 1}, deadline=0.0) is False and helper.receive(deadline=0.0) is None


@TWO_CORES
def test_a_helper_answers_a_line_and_one_answering_nonsense_is_closed(monkeypatch):
    import time

    monkeypatch.setenv("PYTHONUNBUFFERED", "1")  # json.tool does not flush its lines (the site's helpers do)
    with Helper("json.tool", "--compact", "--json-lines") as helper:  # echoes each JSON line it reads
        assert helper.pid is not None
        assert helper.send({"runs": [1, 2]}, time.monotonic() + 30)
        assert helper.receive(time.monotonic() + 30) == {"runs": [1, 2]}
    with Helper("http.server", "--help") as talker:  # prints help text, not JSON
        assert talker.receive(time.monotonic() + 30) is None and talker.pid is None


@TWO_CORES
def test_a_helper_is_out_of_reach_of_a_ctrl_c_to_the_command():
    """Ctrl-C signals the terminal's foreground process group: the command decides what to do about it, and a
    helper killed mid-work by it would leave the work to the command, to be done again from the start."""
    import os

    with Helper("json.tool") as helper:
        assert helper.pid is not None
        assert os.getpgid(helper.pid) == helper.pid != os.getpgid(0)
