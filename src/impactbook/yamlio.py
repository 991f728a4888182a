"""Round-trip YAML (comments and order kept) and line numbers for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError


def round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load_yaml(path: Path, error: type[Exception], shown: str) -> Any:
    """Parse YAML keeping line information; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", where=shown) from exc
    try:
        return round_trip().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise error(f"invalid YAML: {exc.problem or exc.context}", where=f"{shown}{line}") from exc


def line_of(data: Any, loc: Iterable[Any]) -> int | None:
    """1-based line of the deepest node along `loc` that ruamel recorded a position for."""
    line = None
    node = data
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            line = node.lc.key(key)[0] + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            line = node.lc.item(key)[0] + 1
            node = node[key]
        else:
            break
    return line


def field_path(loc: Iterable[Any]) -> str:
    """('metrics', 1, 'margin') -> 'metrics[1].margin'."""
    text = ""
    for key in loc:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def dump_yaml(data: Any, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        round_trip().dump(data, handle)


def explain_validation(exc: Any, data: Any, shown: str) -> str:
    """One line per pydantic error: `file:line: field.path: what was expected (got value)`."""
    lines = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
        line = line_of(data, loc)
        where = f"{shown}:{line}" if line else shown
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check its spelling against the schema)"
        got = error.get("input")
        if error["type"] not in ("missing", "extra_forbidden") and not isinstance(got, (dict, list)) \
                and "(got" not in message:
            message += f" (got {got!r})"
        lines.append(f"{where}: {field_path(loc) or '<top level>'}: {message}")
    return "\n".join(lines)
