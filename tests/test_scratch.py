"""Scratch folders: a SIGKILLed process's folder is removed by the next process that makes one; a live
process's folder, a fresh one, a symlink and anything else are left alone. Real processes, real kills."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from impactbook.scratch import GRACE_S, ScratchFolder, sweep

HOLDER = """
import sys, time
from impactbook.scratch import ScratchFolder
folder = ScratchFolder(sys.argv[1])
(folder.path / "copy.parquet").write_bytes(b"x" * 1000)
print(folder.path, flush=True)
time.sleep(600)
"""


@pytest.fixture
def prefix():
    name = f"impactbook-test-{secrets.token_hex(4)}-"
    yield name
    for left in Path(tempfile.gettempdir()).glob(f"{name}*"):
        if left.is_symlink() or not left.is_dir():
            left.unlink()
        else:
            shutil.rmtree(left)


def _holder(prefix: str) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, prefix], stdout=subprocess.PIPE, text=True)
    folder = Path(process.stdout.readline().strip())
    assert folder.is_dir() and folder.name.startswith(prefix)
    return process, folder


def _age(folder: Path) -> None:
    old = time.time() - GRACE_S - 5
    os.utime(folder, (old, old))


def test_a_killed_processs_folder_is_removed_by_the_next_one_and_a_live_ones_is_kept(prefix):
    dead, dead_folder = _holder(prefix)
    alive, alive_folder = _holder(prefix)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        _age(dead_folder)
        _age(alive_folder)
        mine = ScratchFolder(prefix)
        assert not dead_folder.exists(), "the dead process's copies are gone"
        assert (alive_folder / "copy.parquet").is_file(), "a live process's copies are never touched"
        assert mine.path.is_dir()
        assert sweep(prefix) == [], "a folder in use by this process is not swept"
        mine.remove()
        assert not mine.path.exists()
    finally:
        alive.kill()
        alive.wait(timeout=30)


def test_a_fresh_folder_a_symlink_and_a_file_are_left_alone(prefix, tmp_path):
    temporary = Path(tempfile.gettempdir())
    fresh = temporary / f"{prefix}fresh"
    fresh.mkdir()  # unlocked, but new: it may be one whose maker has not locked it yet
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_text("keep")
    link = temporary / f"{prefix}link"
    link.symlink_to(target)
    plain = temporary / f"{prefix}file"
    plain.write_text("not a folder")
    old = time.time() - GRACE_S - 5
    for path in (target, plain):
        os.utime(path, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    assert sweep(prefix) == []
    assert fresh.is_dir() and (target / "keep").is_file() and link.is_symlink() and plain.is_file()
    _age(fresh)
    assert sweep(prefix) == [fresh], "once old and unheld, it is a leftover"


def test_a_folder_that_cannot_be_opened_is_left_and_fails_nothing(prefix):
    closed = Path(tempfile.gettempdir()) / f"{prefix}closed"
    closed.mkdir()
    _age(closed)
    closed.chmod(0)
    try:
        if os.access(closed, os.R_OK):  # (root opens it anyway: then it is swept as any leftover)
            assert sweep(prefix) == [closed]
        else:
            assert sweep(prefix) == [] and closed.is_dir()
            ScratchFolder(prefix).remove()
    finally:
        if closed.exists():
            closed.chmod(0o700)
