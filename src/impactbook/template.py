"""A template notebook as the preregistration sees it: its source hash (what a freeze binds), its
validity, and its outputs stripped.

The source hash covers what decides the analysis — every cell's type and source, which cell is tagged
`parameters`, and the output contract — and nothing that running it changes (outputs, execution
counts, other metadata), so "Run All + Save" in JupyterLab leaves it as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CatalogError
from .hashing import sha256_json

CONTRACT_KEY = "impactbook"
MAX_TEMPLATE_BYTES = 16 << 20


def read_template(path: Path, shown: str | None = None):
    """The notebook, or a clear error when the file is not one."""
    import nbformat

    shown = shown or str(path)
    if not path.is_file():
        raise CatalogError(f"no such file: {path}", where=shown)
    if path.stat().st_size > MAX_TEMPLATE_BYTES:
        raise CatalogError(f"is larger than {MAX_TEMPLATE_BYTES:,} bytes; a template is a notebook of code",
                           where=shown)
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises several kinds for "not a notebook"
        from nbformat.reader import NotJSONError

        # nbformat's NotJSONError quotes the file's bytes; whatever file was named, none of it is echoed
        detail = "not JSON" if isinstance(exc, NotJSONError) else str(getattr(exc, "message", exc)).splitlines()[0]
        raise CatalogError(f"is not a valid Jupyter notebook ({type(exc).__name__}: {detail[:200]})",
                           where=shown, hint="a template is an .ipynb file saved by Jupyter") from None
    return notebook


def output_contract(notebook) -> dict[str, str]:
    """The scraps a template promises: notebook metadata `impactbook.outputs` = {name: JSON type}."""
    return dict(notebook.metadata.get(CONTRACT_KEY, {}).get("outputs", {}))


def source_record(notebook) -> dict[str, Any]:
    """What the source hash covers."""
    return {
        "cells": [{"type": cell.cell_type, "source": cell.source,
                   "parameters": "parameters" in (cell.get("metadata", {}).get("tags") or [])}
                  for cell in notebook.cells],
        "outputs": output_contract(notebook),
    }


def source_hash(path: Path, shown: str | None = None) -> str:
    return sha256_json(source_record(read_template(path, shown)))


def has_outputs(notebook) -> bool:
    return any(cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
               for cell in notebook.cells)


def strip_outputs(notebook):
    """A template keeps no outputs: they are data from some run, not part of the analysis."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook
