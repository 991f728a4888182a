"""Fault injection for the run store's tests: one environment variable names a point and what happens there.

    IMPACTBOOK_FAULT="kill@publish.renamed"       SIGKILL to this process at that point
    IMPACTBOOK_FAULT="kill@notebook.saved#3"      ... the third time it is reached
    IMPACTBOOK_FAULT="enospc@write:run.json"      OSError(ENOSPC) at that write ('*' globs: write:*)
    IMPACTBOOK_FAULT="eacces@ledger.append"       OSError(EACCES) there
    IMPACTBOOK_FAULT="sleep=5@publish.renamed"    wait 5 s there (overlapping-run tests)

Several faults are separated by commas; helper processes inherit them (`kill@inputs.helper` kills the gate's
file-check helper before its first answer). Unset (always, outside tests) a point costs one lookup.
The points a run passes, in order, are listed in POINTS; tests iterate over them.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
import time
from collections import Counter

FAULT_ENV = "IMPACTBOOK_FAULT"

POINTS = (
    "staging.created",      # a locked, still hidden staging folder exists; nothing written yet
    "staging.visible",      # plan, draft record and template copy written; the folder has its run id
    "gates.checked",        # admissibility known (on the gate's thread); the kernel may be starting, no cell ran
    "notebook.saved",       # papermill saved the notebook after a cell (repeats; use #n)
    "execution.done",       # the kernel has finished
    "publish.scraps",       # scraps.json written
    "publish.report",       # report.html written
    "publish.record",       # the final run.json written: the result is complete
    "publish.sums",         # SHA256SUMS written, files read-only, not yet renamed
    "publish.marked",       # the publishing mark written (runs/.staging/.publishing-<id>), not yet renamed
    "publish.renamed",      # renamed into runs/<id>, folder still writable
    "publish.sealed",       # folder read-only
    "publish.ledgered",     # ledger entry appended
    "publish.indexed",      # index row written; the lock is released next
)

_reached: Counter[str] = Counter()


def point(name: str, path: object = None) -> None:
    """Act on any fault the environment names for this point (`path`: the file an injected error names)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    _reached[name] += 1
    for item in spec.split(","):
        action, _, where = item.strip().partition("@")
        where, _, nth = where.partition("#")
        if not fnmatch.fnmatchcase(name, where) or (nth and int(nth) != _reached[name]):
            continue
        action, _, argument = action.partition("=")
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "sleep":
            time.sleep(float(argument or 1))
        elif action in ("enospc", "eacces", "erofs"):
            code = {"enospc": errno.ENOSPC, "eacces": errno.EACCES, "erofs": errno.EROFS}[action]
            raise OSError(code, os.strerror(code), str(path) if path is not None else None)
