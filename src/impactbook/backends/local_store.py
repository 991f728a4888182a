"""The default run store: the project's runs/ folder itself, where store.py's atomic rename publishes a run.

Nothing is copied: publishing is the rename store.py already made, so a local project behaves exactly as it
always has. The other methods read the folder, so verify and the index treat it like any other store.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..durable import read_regular, write_new
from ..errors import ProjectError
from ..project import Project
from .run_store import RunStore, StoreMarkUnusable, folder_problems


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
        """This runs/ folder's own mark, made at first use in runs/.store/ and never changed: git ignores it (the
        folder says so itself, as the run folders' runs/*/ does), so each clone makes its own, while a shared
        file system shows every machine the same one (a copy made with `cp -r` carries it: delete it there). It
        says where it was made, for messages. A mark that cannot be read as one line of text, or made, is a
        StoreMarkUnusable naming it: without it this copy could not be told from another, and would remove the
        other's runs from a shared index."""
        mark, shown = self.runs_dir / IDENTITY, f"{self._shown}/{IDENTITY}"
        anew = ("delete it: the next command makes a new one, and `impactbook index rebuild` hands the index to "
                "this copy")
        if mark.is_symlink():
            raise StoreMarkUnusable("is a symbolic link; impactbook makes this mark as a file", where=shown, hint=anew)
        try:
            raw = read_regular(mark, MARK_BYTES + 1)
        except FileNotFoundError:
            raw = self._make_mark(mark, shown)
        except OSError as exc:
            raise StoreMarkUnusable(f"cannot be read ({exc.strerror})", where=shown, hint=anew) from None
        if raw is None:
            raise StoreMarkUnusable("is not a regular file", where=shown, hint=anew)
        text = raw.decode("utf-8", "replace").strip()
        if not text or len(raw) > MARK_BYTES or not text.isprintable():
            raise StoreMarkUnusable("is not one line of text like `host:/path/runs (3f9c…)`, as impactbook makes it",
                                    where=shown, hint=anew)
        return text

    def _make_mark(self, mark: Path, shown: str) -> bytes | None:
        where = f"{socket.gethostname()}:{self.runs_dir.resolve()}"
        where = "".join(c if c.isprintable() else "?" for c in where)[-200:]  # (for messages only)
        try:
            mark.parent.mkdir(parents=True, exist_ok=True)
            if not (mark.parent / ".gitignore").exists():  # (a project whose .gitignore lacks runs/*/)
                write_new(mark.parent / ".gitignore", b"# this copy's own (see impactbook's README)\n*\n")
            write_new(mark, f"{where} ({secrets.token_hex(8)})\n".encode("utf-8"))
            return read_regular(mark, MARK_BYTES + 1)
        except OSError as exc:
            raise StoreMarkUnusable(f"cannot be made ({exc.strerror}); an index outside runs/ (IMPACTBOOK_INDEX or "
                                    "settings.index) needs it to tell this copy's runs from another copy's",
                                    where=shown, hint="run one command where runs/ is writable, or give this copy "
                                                      "an index of its own (IMPACTBOOK_INDEX=sqlite:///<this copy>/"
                                                      "runs/index.sqlite)") from None

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
