"""The helper processes a site build hands work to, started by `impactbook site` before anything else (before
even the site's own imports and the command's reconciliation), so that they work on the second core meanwhile:
the trend plots' painter and the scan of the run folders' file states. Kept apart from build.py, whose
imports (Jinja2, the data model) take 0.2 s."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .filestates import Scan
from ..project import Project
from .manifest import verified_ledger_bytes
from .plots import Painter


@dataclass
class SiteHelpers:
    """A build's painter (trend plots) and scan (run folders' file states), each a helper process or, where
    none can run, the build's own process doing the work; closed (killed) when the build is done."""

    painter: Painter
    scan: Scan

    @classmethod
    def start(cls, project: Project, out: Path, full: bool = False) -> "SiteHelpers":
        """The painter is a helper only when plan pages will likely be redrawn: from scratch, or when the ledger
        has grown since the last build (new runs, plan versions or decisions); otherwise any plot is drawn in
        the build's own process."""
        scan = Scan(str(project.runs_dir))
        try:
            return cls(Painter(helper=full or _ledger_grew(project, out)), scan)
        except BaseException:  # (no helper is left running)
            scan.close()
            raise

    def close(self) -> None:
        self.painter.close()
        self.scan.close()

    def __enter__(self) -> "SiteHelpers":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _ledger_grew(project: Project, out: Path) -> bool:
    """Is the ledger's size other than the length the last build verified (none: it grew)?"""
    try:
        return project.ledger_path.stat().st_size != verified_ledger_bytes(out)
    except OSError:
        return True
