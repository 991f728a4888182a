"""Stage 6 of a run: stage every artifact, then publish with one atomic rename, read-only, hashed.

A run folder either exists complete under runs/<run-id>/ or not at all; work in progress lives
in runs/.staging/<run-id>/ with an owner file naming the process, so a killed run is found and
published as FAILED by the next command instead of being lost.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hashing import sha256_file
from .project import Project

SUMS = "SHA256SUMS"
OWNER = ".owner.json"


def new_run_id(plan_id: str) -> str:
    """UTC time to the microsecond first (sorts by time), then the plan id and a random suffix."""
    now = dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{plan_id}-{secrets.token_hex(3)}"


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Staging:
    run_id: str
    folder: Path

    @classmethod
    def create(cls, project: Project, run_id: str) -> "Staging":
        folder = project.staging_dir / run_id
        folder.mkdir(parents=True)
        write_json(folder / OWNER, {"pid": os.getpid(), "created": dt.datetime.now(dt.timezone.utc).isoformat()})
        return cls(run_id, folder)

    def path(self, name: str) -> Path:
        return self.folder / name

    def publish(self, runs_dir: Path) -> Path:
        """Hash every artifact into SHA256SUMS, make it all read-only, rename into place in one step."""
        (self.folder / OWNER).unlink(missing_ok=True)
        for leftover in self.folder.glob("*.tmp"):
            leftover.unlink()
        (self.folder / SUMS).write_text(sha256sums(self.folder), encoding="utf-8")
        for item in self.folder.iterdir():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
            item.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        self.folder.chmod(0o555)
        _fsync_dir(self.folder)
        target = runs_dir / self.run_id
        if target.exists():
            raise FileExistsError(f"run folder {target} already exists; runs are never overwritten")
        os.rename(self.folder, target)
        _fsync_dir(runs_dir)
        return target


def sha256sums(folder: Path) -> str:
    """`sha256sum`-compatible lines over every file but SHA256SUMS itself."""
    return "".join(f"{sha256_file(p)}  {p.name}\n" for p in sorted(folder.iterdir())
                   if p.is_file() and p.name not in (SUMS, OWNER))


def artifact_problems(folder: Path) -> list[str]:
    """Each file that is missing, added or changed since publication, named by its path."""
    sums = folder / SUMS
    if not sums.is_file():
        return [f"{folder.name}/{SUMS}: missing"]
    recorded = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        recorded[name] = digest
    problems = []
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != SUMS}
    for name, digest in recorded.items():
        if name not in present:
            problems.append(f"{folder.name}/{name}: missing")
        elif sha256_file(folder / name) != digest:
            problems.append(f"{folder.name}/{name}: content does not match SHA256SUMS")
    for name in sorted(present - set(recorded)):
        problems.append(f"{folder.name}/{name}: not listed in SHA256SUMS (added after publication)")
    return problems


def published_runs(project: Project) -> list[Path]:
    if not project.runs_dir.is_dir():
        return []
    return sorted(p for p in project.runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def abandoned_stagings(project: Project) -> list[Staging]:
    """Staging folders whose owning process is gone: runs that were killed before publication."""
    found = []
    if not project.staging_dir.is_dir():
        return found
    for folder in sorted(project.staging_dir.iterdir()):
        try:
            owner = json.loads((folder / OWNER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owner = {"pid": -1}
        if owner.get("pid", -1) <= 0 or not _alive(owner["pid"]):
            found.append(Staging(folder.name, folder))
    return found


def discard(staging: Staging) -> None:
    shutil.rmtree(staging.folder, ignore_errors=True)
