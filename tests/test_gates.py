"""gates.py: reading a template's parameters on the gate's thread leaves the run's logging as the run set it."""

from __future__ import annotations

import logging

from impactbook.gates import template_parameters
from conftest import REPO


def test_reading_parameters_never_makes_papermill_louder_than_the_run_made_it():
    """The gate reads the parameters while the kernel starts; the run has silenced papermill (CRITICAL) so that
    a kernel stopped by a refusal does not print nbclient's "Kernel died before replying" beside the verdict."""
    papermill_log = logging.getLogger("papermill")
    before = papermill_log.level
    try:
        papermill_log.setLevel(logging.CRITICAL)
        assert "experiment" in template_parameters(REPO / "templates/ab_test.ipynb")
        assert papermill_log.level == logging.CRITICAL
        papermill_log.setLevel(logging.NOTSET)
        template_parameters(REPO / "templates/ab_test.ipynb")
        assert papermill_log.getEffectiveLevel() >= logging.ERROR  # its warnings are still kept out
    finally:
        papermill_log.setLevel(before)
