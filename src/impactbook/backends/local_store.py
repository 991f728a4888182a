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

from ..errors import ProjectError
from ..project import Project
from .run_store import RunStore, folder_problems


IDENTITY = ".store/identity"  # under runs/ (see LocalRunStore.identity)


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

    def identity(self) -> str | None:
        """This runs/ folder's own mark, made at first use in runs/.store/ and never changed: git ignores it with
        the run folders (runs/*/), so each clone makes its own, while a shared file system shows every machine
        the same one. It says where it was made, for messages. None when it cannot be read or made (a read-only
        runs/): there is then nothing to tell copies apart by."""
        mark = self.runs_dir / IDENTITY
        try:
            return mark.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError):
            return None
        try:
            mark.parent.mkdir(parents=True, exist_ok=True)
            draft = mark.with_name(f".{mark.name}.{os.getpid()}.{secrets.token_hex(4)}")
            draft.write_text(f"{socket.gethostname()}:{self.runs_dir.resolve()} ({secrets.token_hex(8)})\n",
                             encoding="utf-8")
            try:
                os.link(draft, mark)  # the first process to get there makes the mark; the others read it
            except FileExistsError:
                pass
            finally:
                draft.unlink(missing_ok=True)
            return mark.read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

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
