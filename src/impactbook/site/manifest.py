"""Where a site build records what it rendered, in the site's own folder: read by the build (build.py) and,
before the build's imports, by the command that starts its helpers (helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = ".site-manifest.json"  # what the last build rendered (build._Manifest)
EFFECTS = ".site-effects.json"  # each run's effect points, beside it


def verified_ledger_bytes(out: Path) -> int | None:
    """How many bytes of the ledger the last build into `out` verified (None: no build, or not one of ours)."""
    try:
        return int(json.loads((out / MANIFEST).read_text(encoding="utf-8"))["ledger"]["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
