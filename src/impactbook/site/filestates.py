"""Each run folder's file states (name, size and mtime of every file) as one digest per run: how the site sees
an artifact changed in place even when SHA256SUMS did not change. At 10,000 runs that is a stat of 70,000
files, 0.45 s of an incremental build, so `impactbook site` has a helper process (`Scan`, running this module)
take them on the second core while the command reconciles the project; a run the helper did not report (its
folder published since) gets its digest here. Both use `state_digest`, so a digest is the same either way."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

from ..processes import Helper

SCAN_TIMEOUT_S = 5.0  # from asking for the digests (10,000 runs: 0.5-0.7 s); beyond it they are taken here


def state_digest(folder: str) -> str:
    """The sha256 of the folder's sorted (name, size, mtime_ns) file states. Plain strings and one scandir: this
    runs for every run of the project."""
    with os.scandir(folder) as found:
        state = sorted((e.name, (st := e.stat()).st_size, st.st_mtime_ns) for e in found if e.is_file())
    return hashlib.sha256(repr(state).encode()).hexdigest()


def scan(runs_dir: str) -> dict[str, str]:
    """Every run folder's digest (hidden folders and plain files are not runs; a folder gone meanwhile or one
    this user cannot read, such as a file system's lost+found, is left out: the build takes its digest itself)."""
    digests = {}
    with os.scandir(runs_dir) as found:
        folders = [e.name for e in found if not e.name.startswith(".") and e.is_dir()]
    for name in folders:
        try:
            digests[name] = state_digest(os.path.join(runs_dir, name))
        except OSError:
            continue
    return digests


class Scan:
    """The digests of every run folder in `runs_dir`, taken by a helper process started now (`helper`) and
    read with `digests()`; an empty answer when the helper cannot run, died, hung or answered nonsense (each
    run's digest is then taken by the caller, with `state_digest`)."""

    def __init__(self, runs_dir: str, helper: bool = True) -> None:
        self._helper = Helper(__name__, runs_dir) if helper else None

    @property
    def helper_pid(self) -> int | None:
        return self._helper.pid if self._helper is not None else None

    def digests(self) -> dict[str, str]:
        if self._helper is None:
            return {}
        answer = self._helper.receive(time.monotonic() + SCAN_TIMEOUT_S)
        self.close()
        if isinstance(answer, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in answer.items()):
            return answer
        return {}

    def close(self) -> None:
        if self._helper is not None:
            self._helper.close()


if __name__ == "__main__":
    sys.stdout.write(json.dumps(scan(sys.argv[1])) + "\n")
    sys.stdout.flush()
