"""A real, throwaway PostgreSQL server for tests and benchmarks (Debian's `postgresql` binaries).

initdb into a temporary folder and serve on a unix socket only. PostgreSQL refuses to run as root, so
when we are root the server binaries run as the unprivileged `postgres` user (runuser); never skipped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: "
                           "apt-get install -y postgresql")
    return Path(found[-1])


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a connection URL (superuser `impactbook`, database `postgres`) until the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="impactbook-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    bin_dir, data, log = _binaries(), folder / "data", folder / "server.log"

    def call(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True)

    try:
        call(str(bin_dir / "initdb"), "-D", str(data), "-U", "impactbook", "--auth=trust", "-E", "UTF8")
        call(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "start",
             "-o", f"-k {folder} -c listen_addresses='' -p 5432 -c fsync=off")
        yield f"postgresql://impactbook@/postgres?host={folder}&port=5432"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            call(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server_url: str, name: str) -> str:
    """Create an empty database on the server and return its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.replace("/postgres?", f"/{name}?")


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port on localhost that takes connections and never answers them (as a server behind a firewall
    that drops its replies looks to libpq); yields the port."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes the handshakes; nothing ever reads or replies
        yield listener.getsockname()[1]
