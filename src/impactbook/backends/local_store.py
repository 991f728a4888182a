"""The default run store: the project's runs/ folder itself, where store.py's atomic rename publishes a run.

Nothing is copied: publishing is the rename store.py already made, so a local project behaves exactly as it
always has. The other methods read the folder, so verify and the index treat it like any other store.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..durable import fsync_path, read_regular
from ..errors import ProjectError
from ..project import Project
from .run_store import RunStore, folder_problems


IDENTITY = ".store/identity"  # under runs/ (see LocalRunStore.identity)
MARK_BYTES = 1024


class LocalRunStore(RunStore):
    def __init__(self, runs_dir: Path, shown: str = "runs") -> None:
        self.runs_dir, self._shown = runs_dir, shown

    @classmethod
    def from_url(cls, url: str, project: Project) -> "LocalRunStore":
        runs_dir = Path(unquote(urlsplit(url).path))
        if runs_dir.resolve() != project.runs_dir.resolve():  # runs/ holds the ledger and index too
            raise ProjectError(f"storage URL {url!r}: a local run store is the project's own runs/ folder",
                               hint="leave IMPACTBOOK_STORAGE unset, or point it at s3://bucket/prefix")
        return cls(project.runs_dir, project.relative(project.runs_dir))

    @property
    def where(self) -> str:
        return self._shown

    def identity(self) -> str:
        """This runs/ folder's own mark, made at first use in runs/.store/ and never changed: git ignores it with
        the run folders (runs/*/), so each clone makes its own, while a shared file system shows every machine
        the same one (a copy made with `cp -r` carries it: delete it there). It says where it was made, for
        messages. A mark that cannot be read as one line of text, or made, is a ProjectError naming it: without
        it this copy could not be told from another, and would remove the other's runs from a shared index."""
        mark, shown = self.runs_dir / IDENTITY, f"{self._shown}/{IDENTITY}"
        anew = ("delete it: the next command makes a new one, and `impactbook index rebuild` hands the index to "
                "this copy")
        if mark.is_symlink():
            raise ProjectError("is a symbolic link; impactbook makes this mark as a file", where=shown, hint=anew)
        try:
            raw = read_regular(mark, MARK_BYTES + 1)
        except FileNotFoundError:
            raw = self._make_mark(mark, shown)
        except OSError as exc:
            raise ProjectError(f"cannot be read ({exc.strerror})", where=shown, hint=anew) from None
        if raw is None:
            raise ProjectError("is not a regular file", where=shown, hint=anew)
        text = raw.decode("utf-8", "replace").strip()
        if not text or len(raw) > MARK_BYTES or not text.isprintable():
            raise ProjectError("is not one line of text like `host:/path/runs (3f9c…)`, as impactbook makes it",
                               where=shown, hint=anew)
        return text

    def _make_mark(self, mark: Path, shown: str) -> bytes:
        """Write the mark whole (synced) under a name of our own, then link it into place: the first process
        there makes it, the others read that one; a kill leaves at most a stray draft, never half a mark."""
        try:
            mark.parent.mkdir(parents=True, exist_ok=True)
            draft = mark.with_name(f".{mark.name}.{os.getpid()}.{secrets.token_hex(4)}")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
            with open(os.open(draft, flags, 0o644), "wb") as handle:
                handle.write(f"{socket.gethostname()}:{self.runs_dir.resolve()} ({secrets.token_hex(8)})\n"
                             .encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(draft, mark)
            except FileExistsError:
                pass
            finally:
                draft.unlink(missing_ok=True)
            fsync_path(mark.parent)
            return read_regular(mark, MARK_BYTES + 1)
        except OSError as exc:
            raise ProjectError(f"cannot be made ({exc.strerror}); an index outside runs/ (IMPACTBOOK_INDEX or "
                               "settings.index) needs it to tell this copy's runs from another copy's", where=shown,
                               hint="run one command where runs/ is writable, or leave IMPACTBOOK_INDEX unset for "
                                    "the project's own index") from None

    def publish(self, run_id: str, folder: Path) -> None:
        if folder.resolve() != (self.runs_dir / run_id).resolve():
            raise ProjectError(f"{folder}: a local run is published by renaming it into {self._shown}/")

    def published(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def unfinished(self) -> list[str]:
        return []  # an unfinished local run is a staging folder: publication.reconcile finishes it

    def problems(self, run_id: str) -> list[str]:
        return folder_problems(self.runs_dir / run_id)

    def read(self, run_id: str, name: str) -> bytes:
        return (self.runs_dir / run_id / name).read_bytes()

    def fetch(self, run_id: str, cache: Path) -> Path:
        return self.runs_dir / run_id  # already local
