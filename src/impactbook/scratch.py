"""Scratch folders in the system's temporary folder that outlive nobody: the process that makes one holds a
lock on it while it is used, and a later process removes those whose owner died without cleaning up (a
SIGKILL runs no cleanup), instead of letting copies of large inputs pile up in /tmp."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from .durable import try_lock

GRACE_S = 60.0  # a folder this new may be one whose maker has not locked it yet


class ScratchFolder:
    """A new folder named `prefix...` in the temporary folder, locked until `remove()`; making one first
    removes the dead leftovers of earlier processes with the same prefix."""

    def __init__(self, prefix: str) -> None:
        sweep(prefix)
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._lock = try_lock(self.path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def sweep(prefix: str, grace_s: float = GRACE_S) -> list[Path]:
    """Remove this user's `prefix...` folders that no live process holds and that are older than `grace_s`;
    returns them. Symlinks and other users' folders are never touched."""
    removed, folder, oldest = [], Path(tempfile.gettempdir()), time.time() - grace_s
    try:
        entries = [entry for entry in os.scandir(folder) if entry.name.startswith(prefix)]
    except OSError:  # an unreadable temporary folder: nothing to sweep
        return removed
    for entry in entries:
        try:
            found = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mtime > oldest:
            continue
        try:
            lock = try_lock(Path(entry.path))
        except OSError:  # one we cannot open (its mode changed): left as it is, never a reason to fail a run
            continue
        if lock is None:  # its owner is alive (or it went away meanwhile)
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.lexists(entry.path):
                removed.append(Path(entry.path))
        finally:
            os.close(lock)
    return removed
