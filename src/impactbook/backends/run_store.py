"""The run store's narrow door: where published runs live — the project's runs/ folder (default) or an object
store by URL (`s3://bucket/prefix`) — one interface, a registry keyed by URL scheme, chosen like the index.

Following papermill's iorw handlers keyed by scheme (STYLE §2), the registry is a value passed in, not an
import-time singleton. A run is always staged and published locally first (store.py: lock, atomic rename,
SHA256SUMS, seal); a remote store then receives it object by object, write-once, SHA256SUMS last, so a run
whose SHA256SUMS is not in the store is not published there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

from ..catalog import project_setting
from ..errors import ProjectError
from ..hashing import sha256_file
from ..project import Project

STORAGE_ENV = "IMPACTBOOK_STORAGE"
MANIFEST = "SHA256SUMS"
CACHE_FOLDER = ".cache"  # under runs/: stored runs fetched for reading, one folder per run id and manifest


def parse_sums(data: bytes) -> dict[str, str]:
    """`sha256sum` lines (`<digest>  <name>`) as name -> digest. Bytes that are not UTF-8 (a manifest
    tampered with) are read as U+FFFD: their names then match no file, which is how they are reported."""
    recorded = {}
    for line in data.decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        recorded[name] = digest
    return recorded


UNLISTED = f"not listed in {MANIFEST} (added after publication)"
UNLISTED_IN_CHANGED = (f"not listed in {MANIFEST}, which was itself changed after publication: added, or its line "
                       "removed")


def manifest_problems(shown: str, recorded: dict[str, str], present: Iterable[str],
                      digest_of: Callable[[str], str]) -> list[str]:
    """Each artifact missing, changed or added since publication, named `<shown>/<name>: cause`; shared by the
    local folder and every remote store so both say the same thing."""
    present = set(present) - {MANIFEST}
    problems = []
    for name, digest in recorded.items():
        if name not in present:
            problems.append(f"{shown}/{name}: missing")
        elif digest_of(name) != digest:
            problems.append(f"{shown}/{name}: content does not match {MANIFEST}")
    problems += [f"{shown}/{name}: {UNLISTED}"
                 for name in sorted(present - set(recorded))]
    return problems


def folder_problems(folder: Path, kept: dict[str, bytes] | None = None) -> list[str]:
    """A run folder checked against its own SHA256SUMS, each problem named `<run id>/<name>: cause`. With
    `kept`, each file is read whole and its bytes kept there as hashed: a caller that shows them then shows
    exactly the bytes verified, and reads each file once."""
    sums = folder / MANIFEST
    if not sums.is_file():
        return [f"{folder.name}/{MANIFEST}: missing"]
    present = [p.name for p in folder.iterdir()]  # folders, links and pipes too: anything added is named

    def digest_of(name: str) -> str:
        if not (folder / name).is_file():  # a folder or a pipe where a file was: nothing to hash (a pipe would block)
            return "not a file"
        if kept is None:
            return sha256_file(folder / name)
        kept[name] = (folder / name).read_bytes()
        return hashlib.sha256(kept[name]).hexdigest()
    return manifest_problems(folder.name, parse_sums(sums.read_bytes()), present, digest_of)


def _discard(folder: Path) -> None:
    for item in [folder, *folder.iterdir()]:
        item.chmod(stat.S_IRWXU)
    shutil.rmtree(folder)


def _check_names(recorded: dict[str, str], shown: str) -> None:
    """A stored manifest is read before anything in it is trusted: each name must be a plain file name (a run
    folder holds no sub-folders), so one written into a bucket cannot make a fetch write outside its folder,
    and a run's record must be among them."""
    for name in recorded:
        if not name or name in (".", "..", MANIFEST) or "/" in name or "\\" in name or "\0" in name:
            raise ProjectError(f"{shown}: names {name!r}, which is not a file of a run folder; nothing was fetched",
                               hint="run `impactbook verify`")
    if "run.json" not in recorded:
        raise ProjectError(f"{shown}: does not list run.json; nothing was fetched", hint="run `impactbook verify`")


class StoreMarkUnusable(ProjectError):
    """A run store's identity (RunStore.identity) cannot be read or made: this copy of the project could not be
    told from another, so an index outside the store is not used with it."""


class RunStore(ABC):
    """What the rest of impactbook may ask of the place published runs live."""

    remote = False  # True when the runs/ folder is only a staging area and cache for the store

    @property
    @abstractmethod
    def where(self) -> str:
        """Where runs live, for messages (never with a secret)."""

    @abstractmethod
    def publish(self, run_id: str, folder: Path) -> None:
        """Put a locally published (sealed) run folder into the store: each object write-once, SHA256SUMS last.
        Refuses a run id whose SHA256SUMS is already there; resumes one that was interrupted."""

    @abstractmethod
    def published(self) -> list[str]:
        """Run ids whose SHA256SUMS is in the store, sorted."""

    @abstractmethod
    def unfinished(self) -> list[str]:
        """Run ids with objects in the store but no SHA256SUMS: a publication that was interrupted."""

    @abstractmethod
    def problems(self, run_id: str) -> list[str]:
        """Every object missing, changed or added since publication, re-hashed from the store, named by its key."""

    @abstractmethod
    def read(self, run_id: str, name: str) -> bytes:
        """One stored object's bytes."""

    def identity(self) -> str:
        """What tells this store from another copy of the project's: a run index outside the store (PostgreSQL,
        shared between machines) records it, so that each copy does not remove the other's runs as runs it has
        no folder for. A remote store's location."""
        return self.where

    def strays(self) -> list[str]:
        """Objects that belong to no run (a key with an empty run id, `runs//x`): reported, never read as a run."""
        return []

    def manifest_sha256(self, run_id: str) -> str:
        return hashlib.sha256(self.read(run_id, MANIFEST)).hexdigest()

    def fetch(self, run_id: str, cache: Path) -> Path:
        """A read-only local copy of a stored run under `cache/<run id>-<manifest hash>` (a new manifest, a new
        folder), each object checked against SHA256SUMS as it arrives; reused when already complete."""
        sums = self.read(run_id, MANIFEST)
        folder = cache / f"{run_id}-{hashlib.sha256(sums).hexdigest()[:16]}"
        if folder.is_dir() and not folder.stat().st_mode & stat.S_IWUSR:
            if (folder / MANIFEST).is_file() and (folder / MANIFEST).read_bytes() == sums \
                    and not folder_problems(folder):
                return folder
            _discard(folder)  # a copy edited since it was fetched (it is only a cache): fetched again
        recorded = parse_sums(sums)
        _check_names(recorded, self.key_url(run_id, MANIFEST))
        _sweep_abandoned_fetches(cache)
        partial = cache / f".{folder.name}.{os.getpid()}.partial"
        partial.mkdir(parents=True, exist_ok=True)
        try:
            for name, digest in recorded.items():
                data = self.read(run_id, name)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ProjectError(f"{self.key_url(run_id, name)}: content does not match {MANIFEST}",
                                       hint="run `impactbook verify`")
                (partial / name).write_bytes(data)
        except BaseException:  # nothing half-fetched is left behind
            shutil.rmtree(partial, ignore_errors=True)
            raise
        (partial / MANIFEST).write_bytes(sums)
        for item in partial.iterdir():
            item.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        try:
            partial.rename(folder)
        except OSError:  # a concurrent reader fetched it first: theirs is as good as ours
            return folder
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        return folder

    def key_url(self, run_id: str, name: str) -> str:
        return f"{self.where}/{run_id}/{name}"


def _sweep_abandoned_fetches(cache: Path) -> None:
    """Remove the partial copies of fetches whose process is gone: a SIGKILL skips a fetch's own clean-up, and
    `.<run>.<pid>.partial` folders piled up in runs/.cache."""
    for partial in cache.glob(".*.partial") if cache.is_dir() else []:
        pid = partial.name.rsplit(".", 2)[-2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(partial, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


class RunStores:
    """Run-store backends by URL scheme: `register(scheme, factory)`, `open(url, project)`."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[str, Project], RunStore]] = {}

    def register(self, scheme: str, factory: Callable[[str, Project], RunStore]) -> None:
        self._factories[scheme] = factory

    def open(self, url: str, project: Project) -> RunStore:
        scheme = urlsplit(url).scheme
        if scheme not in self._factories:
            known = ", ".join(f"{s}://" for s in sorted(self._factories))
            raise ProjectError(f"storage URL {url!r}: no run-store backend for {scheme!r}:// (known: {known})",
                               hint=f"set {STORAGE_ENV} to s3://bucket/prefix, or leave it unset for runs/")
        return self._factories[scheme](url, project)


def default_run_stores() -> RunStores:
    """The project's runs/ folder (default) and S3 (boto3, imported only when used)."""
    from .local_store import LocalRunStore
    from .s3_store import S3RunStore

    stores = RunStores()
    stores.register("file", LocalRunStore.from_url)
    stores.register("s3", S3RunStore.from_url)
    return stores


def storage_url(project: Project) -> str:
    """$IMPACTBOOK_STORAGE (e.g. s3://bucket/prefix), else catalog.yaml's `settings.storage`, else the
    project's runs/ folder."""
    return os.environ.get(STORAGE_ENV) or project_setting(project, "storage") or project.runs_dir.resolve().as_uri()


def open_run_store(project: Project, stores: RunStores | None = None) -> RunStore:
    """The project's run store, chosen by its URL among `stores` (default: runs/ and S3)."""
    return (stores or default_run_stores()).open(storage_url(project), project)


def cache_dir(project: Project) -> Path:
    return project.runs_dir / CACHE_FOLDER
