"""The default run store: the project's runs/ folder itself, where store.py's atomic rename publishes a run.

Nothing is copied: publishing is the rename store.py already made, so a local project behaves exactly as it
always has. The other methods read the folder, so verify and the index treat it like any other store.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ProjectError
from ..project import Project
from .run_store import RunStore, folder_problems


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
