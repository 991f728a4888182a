"""Stage 5 of a run: scraps in and out of notebooks. The only module that imports scrapbook.

scrapbook 0.5.0 is kept behind this door: it imports `six` undeclared, its papermill_*
properties crash on pandas >= 2, and it returns dicts as nbformat NotebookNodes — so every
value leaves here as plain JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from .template import output_contract as contract_of
JSON_TYPES = {"number": (int, float), "integer": (int,), "string": (str,), "boolean": (bool,),
              "object": (dict,), "array": (list,)}


MAX_DEPTH = 100  # levels of nesting in a scrap: the readers of scraps.json (pydantic's JSON parser) stop near 200


def _plain(value: Any, depth: int = 1) -> Any:
    """numpy scalars/arrays, pandas objects and tuples to JSON values; NaN to None. Refuses (ValueError) nesting
    deeper than MAX_DEPTH and dict keys that become the same text."""
    import numpy as np
    import pandas as pd

    if depth > MAX_DEPTH and isinstance(value, (dict, list, tuple, np.ndarray, pd.Series, pd.Index, pd.DataFrame)):
        raise ValueError(f"nests more than {MAX_DEPTH} levels deep")
    if isinstance(value, pd.DataFrame):
        return [_plain(row, depth + 1) for row in value.to_dict(orient="records")]
    if isinstance(value, dict):
        plain = {str(k): _plain(v, depth + 1) for k, v in value.items()}
        if len(plain) < len(value):
            keys = sorted((str(k), repr(k)) for k in value)
            same = next(f"{a[1]} and {b[1]}" for a, b in zip(keys, keys[1:]) if a[0] == b[0])
            raise ValueError(f"the keys {same} are the same text")
        return plain
    if isinstance(value, (pd.Series, pd.Index)):  # as objects: pandas' own values (Int64 stays whole, times Timestamps)
        value = value.to_numpy(dtype=object)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _plain(value[()], depth)
    if isinstance(value, np.ndarray) and value.dtype.kind in "mMO":  # (.tolist() made nanosecond times integers)
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v, depth + 1) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (np.datetime64, np.timedelta64)) and np.datetime_data(value.dtype)[0] in ("ps", "fs", "as"):
        raise ValueError(f"a {value.dtype} value: finer than nanoseconds, which ISO text here does not keep")
    if isinstance(value, np.datetime64):  # .item(): a date or a datetime, but an integer for nanoseconds
        item = None if np.isnat(value) else value.item()
        return item if item is None else (item.isoformat() if hasattr(item, "isoformat") else
                                          pd.Timestamp(value).isoformat())
    if isinstance(value, (np.timedelta64, dt.timedelta)):
        return None if pd.isna(value) else pd.Timedelta(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def glue(name: str, value: Any, display: bool | list[str] | dict[str, Any] = False) -> None:
    """Record a scrap in the running notebook (templates call this through impactbook.notebook). A string is
    stored as text: scrapbook's json encoder would parse it as JSON (and fail on plain words).

    The output is the one `scrapbook.glue` displays (scrap schema version 1, read back by scrapbook), written
    here because importing scrapbook imports papermill, and with it boto3 and requests: 0.3-0.6 s of every
    run's kernel time. `display=True` also shows the value as an ordinary output (scrapbook's own display
    output would make it read back as null)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a scrap's name is text, not {name!r}")
    try:
        plain = _plain(value)
    except (ValueError, OverflowError) as exc:  # (_plain's depth limit comes long before Python's recursion limit)
        raise ValueError(f"scrap {name!r}: {exc}") from None
    if plain is None:
        raise ValueError(f"scrap {name!r}: the value is empty or not finite (None, NaN, ±inf or NaT), and a scrap "
                         "cannot be; glue a value, or the empty one inside a dict or a list")
    try:
        json.dumps(plain, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"scrap {name!r}: not JSON ({exc}); glue numbers, text, booleans, None, lists and dicts "
                        "of them, numpy values or DataFrames") from None
    from IPython.display import display as show

    encoder = "text" if isinstance(plain, str) else "json"
    show({f"application/scrapbook.scrap.{encoder}+json": {"name": name, "data": plain, "encoder": encoder,
                                                           "version": 1}},
         metadata={"scrapbook": {"name": name, "data": True, "display": False}}, raw=True)
    if display:  # True, or scrapbook's filters: the formats to show (a list) or display()'s own options (a dict)
        show(value, **({"include": display} if isinstance(display, (list, tuple)) else
                       display if isinstance(display, dict) else {}))


def warm_up() -> None:
    """Import scrapbook while the kernel works (the parent is idle then): reading the scraps after the
    last cell then costs only the reading."""
    import importlib

    importlib.import_module("scrapbook")


class UnreadableScraps(ValueError):
    """A scrap output that cannot be read (outside scrapbook's schema, an unknown encoder, a payload of another
    shape, nesting too deep for scraps.json's readers): it hides every scrap of the notebook, since scrapbook
    reads them all at once."""


def read_scraps(notebook_path: Path) -> dict[str, Any]:
    if not notebook_path.exists():
        return {}
    import logging

    import pydantic_core
    import scrapbook

    quiet = logging.getLogger("scrapbook")  # (it logs a payload version it does not know to the CLI's stderr)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        scraps = {name: scrap.data for name, scrap in scrapbook.read_notebook(str(notebook_path)).scraps.items()}
        return pydantic_core.from_json(json.dumps(scraps))  # as scraps.json's readers will read it (depth)
    except OSError:
        raise
    except Exception as exc:  # whatever a template displayed under scrapbook's media types: any shape at all
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UnreadableScraps(f"{notebook_path.name}: a scrap output that cannot be read, so no scrap is read: "
                               f"{type(exc).__name__}: {reason}") from exc
    finally:
        quiet.setLevel(level)


def output_contract(template_path: Path) -> dict[str, str]:
    """The scraps a template promises: notebook metadata `impactbook.outputs` = {name: JSON type}."""
    import nbformat  # (here, not at the top: the kernel imports this module for glue, and nbformat costs it 0.08 s)

    return contract_of(nbformat.read(template_path, as_version=4))


def scrap_problems(scraps: dict[str, Any], contract: dict[str, str], template_name: str) -> list[str]:
    problems = []
    if not contract:
        problems.append(f"{template_name}: notebook metadata declares no output contract (impactbook.outputs)")
    for name, kind in contract.items():
        if name not in scraps:
            problems.append(f"scrap {name!r}: missing (the template declares it but never glued it)")
            continue
        expected = JSON_TYPES.get(kind)
        value = scraps[name]
        if expected is None:
            problems.append(f"scrap {name!r}: the contract names unknown type {kind!r} "
                            f"(use one of {', '.join(JSON_TYPES)})")
        elif not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            text = " (text is kept as text: glue the value itself, not its JSON)" if isinstance(value, str) else ""
            problems.append(f"scrap {name!r}: expected {kind}, got {type(value).__name__}{text}")
    return problems
