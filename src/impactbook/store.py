"""Stage 6 of a run: stage every artifact, then publish with one atomic rename, read-only, hashed.

A run folder either exists complete under runs/<run-id>/ or not at all. Work in progress lives in
runs/.staging/<run-id>/, and the process running it holds an exclusive `flock` on that folder for
the run's whole life (the lock follows the folder through the rename into runs/). A neighbour that
can take the lock knows the owner is dead, whatever its pid was; one that cannot, leaves it alone.

The folder only appears under its run id once its plan and draft record are written (it is made
under a hidden name, locked, filled, then renamed), so every visible staging folder can be
published by whoever recovers it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
import stat
from pathlib import Path

from . import faults
from .backends.run_store import MANIFEST as SUMS, folder_problems
from .durable import TEMPORARY_SUFFIX, fsync_path, try_lock, write_bytes, write_text
from .hashing import sha256_file
from .project import Project

HIDDEN_SUFFIX = ".new"
# runs/.staging/.publishing-<run id>: written before a run's folder is renamed into runs/, removed once its
# ledger entry exists. Only a run with this mark is one this project was publishing when its process died;
# a sealed folder without it and without a ledger entry was put there by hand and is never ledgered.
PUBLISHING = ".publishing-"
DRAFT = "draft.json"          # the record as it stands while the run works; replaced by run.json
CAUSE = "cause.txt"           # why a run stopped, when the process could still say so
CAUSE_ROOM = 4096             # bytes cause.txt holds from the start (blanks), so a full disk cannot stop the note
VERIFIED = "inputs.verified.json"  # the identities of the input files the gate hashed, for the kernel
WORKING_FILES = (DRAFT, CAUSE, VERIFIED)
EMPTY_IS_NOTHING = ("kernel.log",)  # the kernel's own output; kept only when it said something
PARTIAL_NOTEBOOK = "notebook.ipynb.partial"
READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
READ_ONLY_FOLDER = READ_ONLY_FILE | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


def publishing_mark(staging_dir: Path, run_id: str) -> Path:
    return staging_dir / f"{PUBLISHING}{run_id}"


def new_run_id(plan_id: str) -> str:
    """UTC time to the microsecond first (sorts by time), then the plan id and a random suffix."""
    now = dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{plan_id}-{secrets.token_hex(3)}"


class Staging:
    """A run's folder while it works: locked by its process, published once, then released."""

    def __init__(self, run_id: str, folder: Path, lock_fd: int | None) -> None:
        self.run_id, self.folder, self.lock_fd = run_id, folder, lock_fd
        self.published = False

    @classmethod
    def create(cls, project: Project, run_id: str, first_files: dict[str, bytes]) -> "Staging":
        """Lock a hidden folder, write the files that make a run recoverable, then give it its run id."""
        project.staging_dir.mkdir(parents=True, exist_ok=True)
        hidden = project.staging_dir / f".{run_id}{HIDDEN_SUFFIX}"
        hidden.mkdir()
        fd = try_lock(hidden)
        if fd is None:  # nobody else knows this random name; a failure here is the file system's
            raise OSError(f"cannot lock the new staging folder {hidden}")
        staging = cls(run_id, hidden, fd)
        try:
            faults.point("staging.created")
            for name, data in {**first_files, CAUSE: b" " * CAUSE_ROOM}.items():
                write_bytes(hidden / name, data)
            visible = project.staging_dir / run_id
            os.rename(hidden, visible)
            fsync_path(project.staging_dir)
            staging.folder = visible
            faults.point("staging.visible")
        except BaseException:
            if staging.folder == hidden:  # nothing had started: leave nothing behind
                shutil.rmtree(hidden, ignore_errors=True)
            staging.release()
            raise
        return staging

    @classmethod
    def adopt(cls, folder: Path) -> "Staging | None":
        """Take over the staging folder of a dead process; None when its owner is alive."""
        fd = try_lock(folder)
        return None if fd is None else cls(folder.name, folder, fd)

    def path(self, name: str) -> Path:
        return self.folder / name

    def write(self, name: str, data: bytes | str) -> Path:
        target = self.path(name)
        write_bytes(target, data.encode("utf-8") if isinstance(data, str) else data)
        return target

    def discard_kernel_output(self) -> None:
        """A run that never reached its analysis keeps nothing of the kernel that was started for it."""
        for name in ("notebook.ipynb", *EMPTY_IS_NOTHING):
            self.path(name).unlink(missing_ok=True)

    def note_cause(self, text: str) -> None:
        """Best effort: why this run stops. Often the disk is full, so the note is written over the blanks
        cause.txt was given at the start, in place (no new block is needed), cut to fit. A published folder is
        never written again (root could)."""
        if self.published:
            return
        data = text.encode("utf-8")[:CAUSE_ROOM].decode("utf-8", "ignore").encode("utf-8")
        with contextlib.suppress(OSError):
            try:
                fd = os.open(self.path(CAUSE), os.O_WRONLY | os.O_NOFOLLOW)
            except FileNotFoundError:  # a staging folder from before cause.txt was made room for
                write_text(self.path(CAUSE), text)
                return
            try:
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
                os.fsync(fd)
            finally:
                os.close(fd)

    def publish(self, runs_dir: Path) -> Path:
        """Hash every artifact into SHA256SUMS, make the files read-only, rename the folder into place in
        one step, then make the folder read-only (renaming a folder needs it writable: its `..` changes)."""
        for item in list(self.folder.iterdir()):
            if item.name.endswith(TEMPORARY_SUFFIX) or item.name in WORKING_FILES or (
                    item.name in EMPTY_IS_NOTHING and item.stat().st_size == 0):
                item.unlink()
        write_text(self.path(SUMS), sha256sums(self.folder))
        for item in self.folder.iterdir():
            fsync_path(item)
            item.chmod(READ_ONLY_FILE)
        fsync_path(self.folder)
        faults.point("publish.sums")
        target = runs_dir / self.run_id
        if target.exists():
            raise FileExistsError(f"run folder {target} already exists; runs are never overwritten")
        write_text(publishing_mark(self.folder.parent, self.run_id), "")
        fsync_path(self.folder.parent)  # the mark is on disk before the rename can be
        faults.point("publish.marked")
        try:
            os.rename(self.folder, target)
        except OSError as exc:  # it is runs/ that refused (permission, read-only), so name it
            raise OSError(exc.errno, exc.strerror, str(runs_dir)) from exc
        self.folder, self.published = target, True
        faults.point("publish.renamed")
        seal(target)
        fsync_path(runs_dir)
        faults.point("publish.sealed")
        return target

    def release(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def seal(folder: Path) -> None:
    """Published folders and their files are read-only."""
    for item in folder.iterdir():
        if item.stat().st_mode & 0o222:
            item.chmod(READ_ONLY_FILE)
    folder.chmod(READ_ONLY_FOLDER)


def is_sealed(folder: Path) -> bool:
    return not folder.stat().st_mode & 0o222 and all(not p.stat().st_mode & 0o222 for p in folder.iterdir())


def sha256sums(folder: Path) -> str:
    """`sha256sum`-compatible lines over every file but SHA256SUMS itself."""
    return "".join(f"{sha256_file(p)}  {p.name}\n" for p in sorted(folder.iterdir())
                   if p.is_file() and p.name != SUMS)


def artifact_problems(folder: Path, kept: dict[str, bytes] | None = None) -> list[str]:
    """Each file that is missing, added or changed since publication, named by its path (`kept`: see
    backends.run_store.folder_problems)."""
    return folder_problems(folder, kept)


def published_runs(project: Project) -> list[Path]:
    """Every run folder, by run id. The entries' types come with the listing (no stat per run: every command
    reconciles, and at 10,000 runs a stat each cost 0.15 s)."""
    if not project.runs_dir.is_dir():
        return []
    with os.scandir(project.runs_dir) as found:
        names = sorted(e.name for e in found if not e.name.startswith(".") and e.is_dir())
    return [project.runs_dir / name for name in names]


def staged_runs(project: Project) -> list[Path]:
    """Visible staging folders: runs in progress, or left by a process that died."""
    if not project.staging_dir.is_dir():
        return []
    return sorted(p for p in project.staging_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def hidden_stagings(project: Project) -> list[Path]:
    """Folders of runs that never got as far as their draft record."""
    if not project.staging_dir.is_dir():
        return []
    return sorted(p for p in project.staging_dir.iterdir() if p.is_dir() and p.name.endswith(HIDDEN_SUFFIX))
