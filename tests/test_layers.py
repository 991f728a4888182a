"""The folder tree tells the data flow of a run: a module may import only modules on its own floor or
below (STYLE §1). An AST scan of every import in src/impactbook; a new module must be given a floor."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

FLOORS = [
    ["stats", "examples"],                                               # pure statistics; example user code
    ["errors", "hashing", "faults", "processes", "timeline", "gitinfo", "project", "yamlio", "expressions", "durable",
     "sqlengine", "scratch"],                                            # plumbing
    ["ledger"],                                                          # the hash chain
    ["designspecs", "template", "results", "plan"],                      # the data model
    ["record", "catalog"],
    ["backends"],                                                        # executors, index stores: narrow doors
    ["freezing", "anchors", "inputs", "datacheck", "wording"],           # before a kernel starts
    ["designs"],                                                         # analyses, inside the kernel
    ["capture", "execute", "gates", "store", "decision", "report"],      # the stages of a run
    ["index", "publication"],
    ["audit", "decisionlog", "runner", "compare"],
    ["reproduction", "site", "batch"],
    ["notebook", "demo", "scaffold", "cli", "__main__", "__init__"],     # the faces
]
FLOOR = {name: number for number, names in enumerate(FLOORS) for name in names}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts)


def _floor(module: str) -> int | None:
    """impactbook.designs.randomized -> the floor of "designs"; impactbook -> the package's own __init__."""
    parts = module.split(".")[1:] or ["__init__"]
    return FLOOR.get(parts[0])


def _imports(path: Path) -> list[tuple[int, str]]:
    return _imports_in(_module(path), path.read_text(encoding="utf-8"))


def _imports_in(module: str, source: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every impactbook import, relative ones resolved, lazy ones included."""
    package = [p for p in module.split(".") if p != "__init__"]
    package = package if module.endswith(".__init__") else package[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names = [f"{target}.{alias.name}" for alias in node.names] if node.module is None else [target]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "impactbook"]


def test_every_module_has_a_floor():
    unplaced = sorted({_module(p) for p in (SRC / "impactbook").rglob("*.py") if _floor(_module(p)) is None})
    assert not unplaced, f"give these modules a floor in tests/test_layers.py FLOORS: {unplaced}"


def test_no_module_imports_a_later_stage():
    upward = []
    for path in sorted((SRC / "impactbook").rglob("*.py")):
        here = _floor(_module(path))
        for line, target in _imports(path):
            there = _floor(target)
            if there is not None and here is not None and there > here:
                upward.append(f"{path.relative_to(SRC)}:{line} imports {target} (floor {there} > {here})")
    assert not upward, "imports that run back up the data flow:\n" + "\n".join(upward)


def test_statistics_stay_pure():
    impure = [f"{path.relative_to(SRC)}:{line} imports {target}"
              for path in (SRC / "impactbook" / "stats").rglob("*.py")
              for line, target in _imports(path) if not target.startswith("impactbook.stats")]
    assert not impure, impure


def test_the_scan_sees_an_upward_import():
    """The check itself can fail: relative, package-relative and lazy imports are all resolved."""
    source = "from ..runner import run_plan\ndef f():\n    from .. import cli\n    from .aggregate import x\n"
    assert _imports_in("impactbook.designs.randomized", source) == [
        (1, "impactbook.runner"), (3, "impactbook.cli"), (4, "impactbook.designs.aggregate")]
    here = _floor("impactbook.designs.randomized")
    assert [t for _, t in _imports_in("impactbook.designs.randomized", source) if _floor(t) > here] == [
        "impactbook.runner", "impactbook.cli"]
