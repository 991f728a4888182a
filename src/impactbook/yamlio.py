"""Round-trip YAML (comments and order kept) and line numbers for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .durable import read_regular


MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64  # a plan nests a handful of levels; a parser recursing on thousands would crash
MAX_EXPANDED = 2_000_000  # values plus characters of text, counting every expansion of an alias


class _Constructor(RoundTripConstructor):
    """Round-trip construction, except that an impossible date (2026-02-30) is a YAML error with its
    line, not a bare ValueError from deep inside the parser."""

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        try:
            return super().construct_yaml_timestamp(node, values)
        except ValueError as exc:
            raise ConstructorError(None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark)


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)


def round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load_yaml(path: Path, error: type[Exception], shown: str, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Parse YAML keeping line information; syntax errors name the file and line. Files are bounded in
    size, and so is what they expand to (a few nested aliases can stand for gigabytes) and how deep they
    nest. Only regular files are read: a FIFO or a device (/dev/zero) would never end."""
    try:
        raw = read_regular(path, max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", where=shown) from exc
    if raw is None:
        raise error("is not a regular file", where=shown)
    if len(raw) > max_bytes:
        raise error(f"is more than {max_bytes:,} bytes; at most {max_bytes:,} are read", where=shown)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise error(f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as "
                    "UTF-8", where=f"{shown}:{line}") from None
    try:
        data = round_trip().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise error(f"invalid YAML: {exc.problem or exc.context}", where=f"{shown}{line}") from exc
    except YAMLError as exc:
        raise error(f"invalid YAML: {exc}", where=shown) from exc
    except RecursionError:
        raise error(f"nests too deeply to parse; at most {MAX_DEPTH} levels are read", where=shown) from None
    if _expands_beyond(data, MAX_EXPANDED):
        raise error(f"expands to more than {MAX_EXPANDED:,} values and characters (nested YAML aliases?); "
                    "write the values out", where=shown)
    if _deeper_than(data, MAX_DEPTH):
        raise error(f"nests more than {MAX_DEPTH} levels deep", where=shown)
    return data


def _deeper_than(data: Any, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((child, depth + 1) for child in node)
    return False


def _expands_beyond(data: Any, limit: int) -> bool:
    """Weigh every value (and the text of strings), each expansion of a shared (aliased) node again,
    stopping as soon as `limit` passes: a bomb is refused after `limit` steps, not after expanding."""
    stack, count = [data], 0
    while stack:
        node = stack.pop()
        count += 1 + (len(node) if isinstance(node, str) else 0)
        if count > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
            stack.extend(node.keys())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return False


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


def fields_at(model: Any, loc: Iterable[Any]) -> list[str]:
    """The field names a pydantic model accepts at `loc` (for "did you mean"), [] when unknown."""
    import typing

    from pydantic import BaseModel

    def models_in(annotation: Any) -> list[Any]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]

    current = [model]
    for key in loc:
        if isinstance(key, int):
            continue  # into a list: the item's model is what the annotation holds
        nested = [m for c in current if key in c.model_fields for m in models_in(c.model_fields[key].annotation)]
        if not nested:
            return []
        current = nested
    return sorted({name for c in current for name in c.model_fields})


def validation_error(kind: type, exc: Any, data: Any, shown: str, model: Any = None) -> Exception:
    """`kind` (an ImpactbookError) saying every pydantic error, one per line (explain_validation), with the
    first one's file:line and field as its `where` and `field` for --json."""
    error = kind(explain_validation(exc, data, shown, model))
    first = exc.errors()[0] if exc.errors() else None
    if first is not None:
        loc = [part for part in first["loc"] if not (isinstance(part, str) and part.startswith(("function-", "kind-")))]
        line = line_of(data, loc)
        error.where, error.field, error.located = f"{shown}:{line}" if line else shown, field_path(loc) or None, True
    return error


def explain_validation(exc: Any, data: Any, shown: str, model: Any = None) -> str:
    """One line per pydantic error: `file:line: field.path: what was expected (got value)`; an unknown
    field suggests the closest known ones."""
    import difflib

    lines = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if not (isinstance(part, str) and part.startswith(("function-", "kind-")))]
        line = line_of(data, loc)
        where = f"{shown}:{line}" if line else shown
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            known = fields_at(model, loc[:-1]) if model is not None else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=3) if known else []
            message = ("unknown field; did you mean " + " or ".join(map(repr, close)) + "?") if close else (
                f"unknown field (known: {', '.join(known)})" if known else
                "unknown field (check its spelling against the schema)")
        got = error.get("input")
        if error["type"] not in ("missing", "extra_forbidden") and not isinstance(got, (dict, list)) \
                and "(got" not in message:
            message += f" (got {_without_password(got)!r})"
        lines.append(f"{where}: {field_path(loc) or '<top level>'}: {message}")
    return "\n".join(lines)


def _without_password(value: Any) -> Any:
    """A value as echoed in an error, a URL's password (also as a `password=` query parameter) masked (the
    error is refusing it for that reason)."""
    import re
    from urllib.parse import urlsplit

    if not isinstance(value, str) or "://" not in value:
        return value
    value = re.sub(r"(?i)([?&](?:ssl)?password=)[^&#]*", r"\1***", value)
    try:
        password = urlsplit(value).password
    except ValueError:
        return value
    return value.replace(f":{password}@", ":***@") if password else value
