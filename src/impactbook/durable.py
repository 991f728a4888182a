"""Durable files: every artifact is written under a temporary name, fsynced and renamed into place,
so no reader ever sees half a file; an OS error becomes one line naming the path and the cause. Folder
locks (`flock`) tell a live owner from a dead one, whatever its pid was."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import json
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, Iterator

from . import faults
from .errors import StorageError

TEMPORARY_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """A hidden sibling unique to this process: two writers never share a temporary file."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")


def write_bytes(path: Path, data: bytes, *, sync: bool = True, mode: int | None = None) -> None:
    """Replace `path` (a symlink there is replaced, never followed) with `data`. The temporary file is created
    afresh, refusing a symlink in its place: its name is predictable, and someone who can write into the
    folder could otherwise point it at a file elsewhere for us to overwrite."""
    faults.point(f"write:{path.name}", path)
    temporary = temporary_name(path)
    try:
        with contextlib.suppress(FileNotFoundError):  # left by a killed process that had this pid
            temporary.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        with open(os.open(temporary, flags, 0o666), "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(exc, OSError) and not exc.filename:  # a failed write() names no file: name it
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_new(path: Path, data: bytes) -> bool:
    """Create `path` with `data` unless it exists (then False), never replacing it: the first process to get there
    makes it whole, the others find it made. The data is written and synced under a name of this process's own
    and linked into place, so a kill leaves at most that draft, never a half-written `path`; where the file
    system has no hard links (SMB, some FUSE), `path` is created exclusively and written in place instead."""
    faults.point(f"write:{path.name}", path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

    def write(target: Path) -> None:
        with open(os.open(target, flags, 0o644), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    write(draft)
    try:
        os.link(draft, path)
        made = True
    except FileExistsError:
        made = False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        try:
            write(path)
            made = True
        except FileExistsError:
            made = False
    finally:
        draft.unlink(missing_ok=True)
    fsync_path(path.parent)
    return made


def read_regular(path: Path, limit: int) -> bytes | None:
    """At most `limit` bytes of `path`, or None when it is not a regular file; opened without blocking, so a
    FIFO with no writer does not hang the open."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit)
    finally:
        os.close(fd)


def write_text(path: Path, text: str, *, sync: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), sync=sync)


def rewrite_text(path: Path, text: str) -> None:
    """Replace a file the user owns and may have locked (catalog.yaml, a template): a read-only one is
    refused, not replaced behind the user's back (a rename would succeed in a writable folder), and the
    replacement keeps the file's permissions."""
    write_bytes(path, text.encode("utf-8"), mode=editable_mode(path))


def editable_mode(path: Path) -> int | None:
    """The permissions of `path` (None if it does not exist yet), or an error naming it when it is read-only
    — for a caller to ask before it records a change it would then fail to write."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None
    if not mode & 0o222 or not os.access(path, os.W_OK):
        raise StorageError("is read-only, so it is left as it is and nothing is recorded", where=str(path),
                           hint="make it writable (chmod u+w) to change it")
    return mode


def write_json(path: Path, value: Any, *, sync: bool = True) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", sync=sync)


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes the renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        os.close(fd)


def _free_space(path: Path) -> str:
    for folder in (path, *path.parents):
        if folder.exists():
            free = shutil.disk_usage(folder).free
            for unit in ("bytes", "KB", "MB", "GB", "TB"):
                if free < 1024 or unit == "TB":
                    return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
                free /= 1024
    return "unknown"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def storage_error(exc: OSError, shown_path=lambda path: str(path), doing: str | None = None) -> StorageError:
    """One clear line for an OS error: `runs/: no space left on device (12.0 KB free)`."""
    raw = exc.filename or exc.filename2
    path = Path(raw) if raw else None
    code = exc.errno
    if path is not None and code in (errno.ENOSPC, errno.EDQUOT):
        folder = path.parent if not path.is_dir() else path
        where = shown_path(folder).rstrip("/") + "/"
        message = f"no space left on device ({_free_space(folder)} free)"
    else:
        where = shown_path(path) if path is not None else None
        if code in (errno.EACCES, errno.EPERM):
            message = f"permission denied for user {_user()}"
        elif code == errno.EROFS:
            message = "read-only file system"
        elif code in (errno.ENOSPC, errno.EDQUOT):
            message = "no space left on device"
        else:
            message = (exc.strerror or str(exc)).lower()
    if doing:
        message = f"{message} while {doing}"
    hint = {errno.ENOSPC: "free some space; the next impactbook command finishes or recovers what was interrupted",
            errno.EACCES: "check the ownership and permissions of that path",
            errno.EROFS: "run from a writable copy of the project"}.get(code)
    return StorageError(message, where=where, hint=hint)


def try_lock(folder: Path) -> int | None:
    """An exclusive lock on a folder, or None when a live process holds it (or the folder is gone)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[int | None]:
    """`try_lock` for the length of a block; yields None when a live process owns the folder."""
    fd = try_lock(folder)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)
