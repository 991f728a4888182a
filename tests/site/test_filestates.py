"""The run folders' file states taken by the helper process are the very digests taken in this process."""

import os
import signal
import time

import pytest

from impactbook.site import filestates
from impactbook.site.filestates import Scan, scan, state_digest
from impactbook.processes import usable_cores

TWO_CORES = pytest.mark.skipif(usable_cores() < 2, reason="the helper runs only beside a second core")


def _runs(root):
    for name, files in (("run-a", {"report.html": "a", "run.json": "{}"}), ("run-b", {"SHA256SUMS": "x"})):
        (root / name).mkdir(parents=True)
        for file, text in files.items():
            (root / name / file).write_text(text)
    (root / ".staging").mkdir()  # hidden folders and plain files are not runs
    (root / "index.sqlite").write_text("")
    return root


def test_a_digest_changes_when_a_file_is_edited_in_place_even_at_the_same_size(tmp_path):
    runs = _runs(tmp_path / "runs")
    before = state_digest(str(runs / "run-a"))
    assert state_digest(str(runs / "run-a")) == before
    report = runs / "run-a/report.html"
    stat = report.stat()
    report.write_text("b")
    os.utime(report, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert report.stat().st_size == stat.st_size and state_digest(str(runs / "run-a")) != before
    (runs / "run-a/extra.png").write_text("")
    assert state_digest(str(runs / "run-a")) not in (before, state_digest(str(runs / "run-b")))


@TWO_CORES
def test_the_helper_reports_every_run_folder_with_the_digest_taken_here(tmp_path, monkeypatch):
    runs = _runs(tmp_path / "runs")
    (tmp_path / "json.py").write_text("raise SystemExit('the current folder shadowed the standard library')\n")
    monkeypatch.chdir(tmp_path)
    here = scan(str(runs))
    assert here == {"run-a": state_digest(str(runs / "run-a")), "run-b": state_digest(str(runs / "run-b"))}
    started = Scan(str(runs))
    assert started.helper_pid is not None
    assert started.digests() == here
    assert started.helper_pid is None  # one answer, then it is gone


@TWO_CORES
def test_a_helper_that_died_or_hangs_answers_nothing_and_the_caller_takes_the_digests(tmp_path, monkeypatch):
    runs = _runs(tmp_path / "runs")
    died = Scan(str(runs))
    os.kill(died.helper_pid, signal.SIGKILL)
    assert died.digests() == {}
    monkeypatch.setattr(filestates, "SCAN_TIMEOUT_S", 1.0)
    hung = Scan(str(runs))
    os.kill(hung.helper_pid, signal.SIGSTOP)
    started = time.monotonic()
    assert hung.digests() == {} and time.monotonic() - started < 30
    assert Scan(str(runs), helper=False).digests() == {}
