"""Connections to PostgreSQL (the run index, warehouse inputs). libpq waits for a server that does not answer
(a dropped route, a firewall that discards packets) as long as the operating system lets it, minutes on end,
with no word: every connection here gives up after CONNECT_TIMEOUT seconds unless told otherwise."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 10  # seconds; a `connect_timeout=` in the URL or $PGCONNECT_TIMEOUT overrides it


def connect(url: str):
    """A psycopg connection to `url`, given up on after CONNECT_TIMEOUT seconds unless the URL or the
    environment (libpq's own settings) says how long to wait."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    waits = "connect_timeout" in conninfo_to_dict(url) or os.environ.get("PGCONNECT_TIMEOUT")
    return psycopg.connect(url) if waits else psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT)


def shown(url: str) -> str:
    """Where a PostgreSQL URL points, for messages: scheme, host, port and database; never its user,
    password or options."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: libpq says so when it connects
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
