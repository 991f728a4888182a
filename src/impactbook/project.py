"""Where a project's pieces live: catalog.yaml, templates/, plans/, runs/ and the ledger."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ProjectError

CATALOG_FILE = "catalog.yaml"
PROJECT_ENV = "IMPACTBOOK_PROJECT"


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def find(cls, start: Path | str | None = None) -> "Project":
        """The nearest folder at or above `start` (default: $IMPACTBOOK_PROJECT, else cwd) with a catalog.yaml."""
        origin = Path(start or os.environ.get(PROJECT_ENV) or Path.cwd()).resolve()
        for folder in (origin, *origin.parents):
            if (folder / CATALOG_FILE).is_file():
                return cls(folder)
        raise ProjectError(f"no {CATALOG_FILE} in {origin} or any folder above it",
                           hint="run `impactbook init` to create a project, or cd into one")

    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG_FILE

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def staging_dir(self) -> Path:
        return self.runs_dir / ".staging"

    @property
    def rendered_dir(self) -> Path:
        """Re-rendered reports live outside the immutable run folders."""
        return self.runs_dir / ".reports"

    @property
    def ledger_path(self) -> Path:
        return self.runs_dir / "ledger.jsonl"

    @property
    def index_path(self) -> Path:
        return self.runs_dir / "index.sqlite"

    def own_folder_holding(self, path: Path) -> Path | None:
        """The project folder only impactbook writes (runs/, plans/, templates/) that is or holds `path`, a
        resolved path: a report or a site written there overwrote the ledger, a plan or a run."""
        root = self.root.resolve()
        return next((folder for folder in (self.runs_dir.resolve(), root / "plans", root / "templates")
                     if folder == path or folder in path.parents), None)

    def relative(self, path: Path | str) -> str:
        """A path as shown to users and stored in records: relative to the project when inside it."""
        path = Path(path)
        absolute = Path(os.path.abspath(path if path.is_absolute() else self.root / path))  # keep symlinks as named
        try:
            return absolute.relative_to(self.root).as_posix()
        except ValueError:
            return str(absolute)

    def resolve(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.root / path
