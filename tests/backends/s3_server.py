"""A real S3-compatible server for tests: moto's standalone server in a subprocess on a free localhost port,
reached by real boto3/s3fs clients through the standard AWS settings (no network beyond localhost)."""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "impactbook-test", "AWS_SECRET_ACCESS_KEY": "impactbook-test",
               "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """The endpoint URL of a fresh moto server, stopped afterwards."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start on port {port}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """An endpoint that accepts every connection and never answers (a hung store or proxy)."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in held:
            connection.close()


@pytest.fixture(scope="module")
def s3_endpoint():
    with s3_server() as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """A fresh bucket; the environment points boto3, s3fs and every child process at the local server."""
    import boto3

    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    name = f"impactbook-{secrets.token_hex(4)}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
