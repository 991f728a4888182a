"""The project's git commit and whether its tree was dirty, recorded at freeze and run time."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_state(root: Path) -> dict[str, object]:
    """{"commit": sha or None, "dirty": bool or None}; None when the project is not a git checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    # runs/ (ledger, index, run folders) changes with every run; it says nothing about the code
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)runs") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}
