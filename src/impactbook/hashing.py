"""sha256 of files and canonical JSON: the one definition every stage shares."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import ProjectError

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


REMOTE_SCHEMES = ("s3",)  # object stores a pinned input may live in, read through fsspec (s3fs)


def remote_url(path: Path | str) -> str | None:
    """`s3://bucket/key` when a pinned input lives in an object store, else None. A Path collapses the
    double slash (`s3:/bucket/key`), so both spellings are recognised."""
    text = str(path)
    for scheme in REMOTE_SCHEMES:
        if text.startswith(f"{scheme}:/"):
            return f"{scheme}://" + text[len(scheme) + 1:].lstrip("/")
    return None


S3_TIMEOUT_ENV = "IMPACTBOOK_S3_TIMEOUT"
S3_TIMEOUT_DEFAULT = 20.0


S3_TIMEOUT_MAX = 86_400  # a day: longer than any request should wait, well inside what a socket accepts


def s3_timeouts() -> dict[str, float]:
    """botocore's socket timeouts for every S3 request impactbook makes: a store that accepts connections and
    never answers fails in about a minute, not botocore's default 5 attempts x 60 s. IMPACTBOOK_S3_TIMEOUT
    (seconds, default 20) is how long one read may wait; a connection waits at most 10 s of it."""
    raw = os.environ.get(S3_TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw.strip() else S3_TIMEOUT_DEFAULT
    except ValueError:
        raise ProjectError(f"{S3_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not 0 < seconds <= S3_TIMEOUT_MAX:  # (1e309 is inf; 1e11 overflowed the socket's timeout)
        raise ProjectError(f"{S3_TIMEOUT_ENV}={raw!r} must be more than 0 and at most {S3_TIMEOUT_MAX:,} seconds")
    return {"connect_timeout": min(seconds, 10.0), "read_timeout": seconds}


def fresh_options() -> dict[str, Any]:
    """fsspec options for a pinned input in an object store: ask the store, never a cache; s3fs retries a
    timed-out request itself (5 times), so botocore's own retries are off beneath it."""
    return {"skip_instance_cache": True, "use_listings_cache": False,
            "config_kwargs": {**s3_timeouts(), "retries": {"total_max_attempts": 1}}}


def sha256_url(url: str, copy_to: Path | None = None) -> str:
    """sha256 of an object streamed from its store through fsspec, never held whole in memory; with
    `copy_to`, the same bytes are written there as they are hashed (what a run then reads: a second GET
    could return another version of the object)."""
    import fsspec

    digest = hashlib.sha256()
    with fsspec.open(url, "rb", **fresh_options()) as handle, open(copy_to or os.devnull, "wb") as copy:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            copy.write(chunk)
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


WAREHOUSE_SCHEMES = ("postgresql", "postgres")  # a pinned input may be a table or view in PostgreSQL


def warehouse_url(uri: Path | str) -> str | None:
    """`postgresql://[user@]host[:port]/database[?libpq options]#schema.table` when a pinned input is a
    table or view in a warehouse, else None (the fragment names the relation; the rest is a libpq URL)."""
    text = str(uri)
    for scheme in WAREHOUSE_SCHEMES:
        if text.startswith(f"{scheme}://"):  # without a '#table', backends.warehouse says what is missing
            return text
    return None

