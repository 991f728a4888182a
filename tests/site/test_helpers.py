"""The site's helpers, started before the command's reconciliation: what they take is what the build takes
itself, runs published after they started included, and the plot helper starts only when the ledger grew."""

import os

import pytest

from impactbook.site import filestates
from impactbook.site.helpers import SiteHelpers
from impactbook.processes import usable_cores
from impactbook.site.build import build_site
from conftest import run

TWO_CORES = pytest.mark.skipif(usable_cores() < 2, reason="the helpers run only beside a second core")


@TWO_CORES
def test_a_build_from_the_helpers_digests_equals_one_taken_in_process(frozen_project, tmp_path, monkeypatch):
    first = run(frozen_project)
    out = tmp_path / "site"
    taken_here = []
    real_digest = filestates.state_digest
    monkeypatch.setattr(filestates, "state_digest", lambda folder: taken_here.append(os.path.basename(folder))
                        or real_digest(folder))
    with SiteHelpers.start(frozen_project, out) as helpers:
        assert helpers.painter.helper_pid is not None and helpers.scan.helper_pid is not None  # no build yet
        assert helpers.scan.digests().keys() == {first.record.run_id}  # (asked now: the helper has answered)
    with SiteHelpers.start(frozen_project, out) as helpers:
        helpers.scan.digests = _answered(helpers.scan.digests())  # the scan done before the next run is published
        second = run(frozen_project).record.run_id  # published after the scan: its digest is taken by the build
        assert build_site(frozen_project, out, helpers=helpers).rendered == 2
    assert taken_here == [second]
    monkeypatch.undo()
    assert build_site(frozen_project, out).rendered == 0  # the same fingerprints, taken in this process
    with SiteHelpers.start(frozen_project, out) as helpers:
        assert helpers.painter.helper_pid is None  # nothing new in the ledger: any plot is drawn in the build
        assert build_site(frozen_project, out, helpers=helpers).rendered == 0
    report = first.folder / "report.html"
    report.chmod(0o644)
    report.write_text(report.read_text().replace("</body>", "<p>edited after publishing</p></body>"))
    with SiteHelpers.start(frozen_project, out) as helpers:
        assert helpers.scan.helper_pid is not None
        again = build_site(frozen_project, out, helpers=helpers)
    assert again.rendered == 1 and "ib-verify-failed" in (out / "runs" / f"{first.record.run_id}.html").read_text()
    assert (out / "runs" / f"{second}.html").exists()


def _answered(digests):
    """A scan's `digests` that returns what the helper already answered."""
    return lambda: digests
