"""Runs in an S3-compatible object store (`s3://bucket/prefix`): each object written once, SHA256SUMS last.

Write-once is S3's conditional write: `PutObject` with `If-None-Match: *` fails with 412 when the key exists
(AWS S3 user guide, "How to prevent object overwrites with conditional writes", 2024). A server that ignores
the header would let a second publisher overwrite a run, so the store checks once per process that a second
conditional put of its probe object is refused, and refuses to publish when it is not (there is no silent
fallback; buckets with Object Lock are the alternative, set up outside impactbook). moto's server honours the
header (moto >= 5.0.15, getmoto/moto#8109; 5.2.0 answered 500 instead of 412, getmoto/moto#10018, fixed).

boto3 is imported here only, so a local project never loads it. Endpoint and credentials come from the
standard AWS settings (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ..., or ~/.aws), never from the project.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from .. import faults
from ..errors import ProjectError, StorageError
from ..hashing import CHUNK, s3_timeouts
from ..ledger import Ledger
from ..project import Project
from .run_store import MANIFEST, RunStore, manifest_problems, parse_sums

PROBE = ".impactbook-write-once-probe"
OWNER = ".impactbook-owner"  # the first ledger entry's hash of the project whose runs the prefix holds


class S3RunStore(RunStore):
    remote = True

    def __init__(self, bucket: str, prefix: str = "", client: Any = None, owner: str | None = None) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._client, self._write_once_checked = client, False
        self.owner, self._owner_checked = owner, False

    @classmethod
    def from_url(cls, url: str, project: Project | None = None) -> "S3RunStore":
        parts = urlsplit(url)
        if not parts.netloc:
            raise ProjectError(f"storage URL {url!r} names no bucket", hint="use s3://bucket/prefix")
        if "@" in parts.netloc:  # s3://key:secret@bucket: a credential in a URL ends up in messages and logs
            raise ProjectError(f"storage URL s3://…@{parts.netloc.rsplit('@', 1)[1]}{parts.path} carries credentials",
                               hint="give the bucket only: credentials come from the AWS chain (environment, "
                                    "~/.aws, an instance role)")
        if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):  # (was dropped: another prefix)
            raise ProjectError(f"storage URL s3://{parts.netloc}{parts.path} has a query (?…) or a fragment (#…), "
                               "which an S3 location does not (it is not shown: it may carry a secret)",
                               hint="use s3://bucket/prefix; a prefix with ? or # in it is not supported")
        s3_timeouts()  # a malformed timeout setting is named before any command starts, not when a request fails
        return cls(parts.netloc, parts.path, owner=Ledger(project.ledger_path).identity() if project else None)

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError as exc:
                raise ProjectError(f"{self.where}: the S3 run store needs boto3",
                                   hint="pip install 'impactbook[s3]'") from exc
            from botocore.config import Config

            # timeouts bounded (s3_timeouts); standard retries (3 attempts) unless AWS_RETRY_MODE says otherwise,
            # AWS_MAX_ATTEMPTS still honoured
            retries = {} if os.environ.get("AWS_RETRY_MODE") else {"retries": {"mode": "standard"}}
            self._client = boto3.client("s3", config=Config(**s3_timeouts(), **retries))
        return self._client

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, run_id: str, name: str) -> str:
        return "/".join(p for p in (self.prefix, run_id, name) if p)

    def _error(self, exc: Exception, key: str, doing: str) -> StorageError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        return StorageError(f"{code} while {doing}: {exc}", where=f"s3://{self.bucket}/{key}")

    def _put_once(self, key: str, body: bytes) -> bool:
        """Write an object only if its key is free; False when the key already exists (412)."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412:
                return False
            raise self._error(exc, key, "writing") from exc
        return True

    def check_write_once(self) -> None:
        """Refuse to publish to a server that lets a conditional put overwrite an object."""
        if self._write_once_checked:
            return
        key = self._key("", PROBE)
        self._put_once(key, b"write-once probe: a second conditional put of this key must fail\n")
        if self._put_once(key, b"overwritten\n"):
            raise StorageError("the server ignored If-None-Match and overwrote an object; runs are write-once, so "
                               "nothing was published", where=f"s3://{self.bucket}/{key}",
                               hint="use a store that supports S3 conditional writes (AWS S3, MinIO, moto >= 5.0.15)")
        self._write_once_checked = True

    def _own(self) -> None:
        """Refuse a prefix that holds another project's runs; claim an unclaimed one for ours (by our ledger's
        first entry, as the index does). Two projects on one prefix reported each other's runs as stored
        without a ledger entry, and a rebuild read them."""
        if self._owner_checked or not self.owner:
            return
        from botocore.exceptions import ClientError

        key = self._key("", OWNER)
        try:
            found = self._body(key).read().decode("utf-8", "replace").strip()
        except StorageError as exc:
            if not isinstance(exc.__cause__, ClientError) or \
                    exc.__cause__.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            found = self.owner if self._put_once(key, f"{self.owner}\n".encode()) else \
                self._body(key).read().decode("utf-8", "replace").strip()  # (another process claimed it first)
        if found != self.owner:
            raise StorageError(f"{self.where} holds the runs of another project (its ledger begins with entry "
                               f"{found[:12]}…), not of this one (entry {self.owner[:12]}…); nothing is read from "
                               "or written to it", where=f"s3://{self.bucket}/{key}",
                               hint="point settings.storage (or IMPACTBOOK_STORAGE) at a prefix of this project's "
                                    "own")
        self._owner_checked = True

    def publish(self, run_id: str, folder: Path) -> None:
        self.check_write_once()
        self._own()
        manifest_key = self._key(run_id, MANIFEST)
        if self._exists(manifest_key):
            raise StorageError(f"run {run_id} is already published in {self.where}; runs are never overwritten",
                               where=f"s3://{self.bucket}/{manifest_key}")
        sums = (folder / MANIFEST).read_bytes()
        for name, digest in parse_sums(sums).items():
            key = self._key(run_id, name)
            if not self._put_once(key, (folder / name).read_bytes()) and self._digest(key) != digest:
                raise StorageError(f"run {run_id}: {name} already exists in the store with other content; "
                                   "runs are never overwritten", where=f"s3://{self.bucket}/{key}")
            # else written now, or left identical by an interrupted publication of this same run
        faults.point("store.manifest")  # every object is in; without SHA256SUMS the run is not published
        if not self._put_once(manifest_key, sums) and self._digest(manifest_key) != hashlib.sha256(sums).hexdigest():
            raise StorageError(f"run {run_id} was published in {self.where} by another process meanwhile",
                               where=f"s3://{self.bucket}/{manifest_key}")

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error(exc, key, "checking") from exc
        return True

    def _objects(self, run_id: str = "") -> dict[str, list[str]]:
        """Run id -> the names of its objects, from one listing of the prefix (or of one run)."""
        base = "/".join(p for p in (self.prefix, run_id) if p)
        start = f"{base}/" if base else ""
        found: dict[str, list[str]] = {}
        for _, run, name in self._listing(start):
            if run and name and not run.startswith("."):
                found.setdefault(run, []).append(name)
        return found

    def _listing(self, start: str) -> Iterator[tuple[str, str, str]]:
        """(key, run id, name) of each object under `start`; the run id is the key's first part below the prefix."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            for item in page.get("Contents", []):
                relative = item["Key"][len(self.prefix) + 1:] if self.prefix else item["Key"]
                run, _, name = relative.partition("/")
                yield item["Key"], run, name

    def strays(self) -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        return sorted(f"s3://{self.bucket}/{key}" for key, run, name in self._listing(start)
                      if not run and name)  # runs//x: its run segment is empty

    def published(self) -> list[str]:
        self._own()
        return sorted(run for run, names in self._objects().items() if MANIFEST in names)

    def unfinished(self) -> list[str]:
        self._own()
        return sorted(run for run, names in self._objects().items() if MANIFEST not in names)

    def problems(self, run_id: str) -> list[str]:
        self._own()
        shown = f"{self.where}/{run_id}"
        present = self._objects(run_id).get(run_id, [])
        if MANIFEST not in present:
            return [f"{shown}/{MANIFEST}: missing (publication to the store was interrupted, or it was deleted)"]
        recorded = parse_sums(self.read(run_id, MANIFEST))
        return manifest_problems(shown, recorded, present, lambda name: self._digest(self._key(run_id, name)))

    def _body(self, key: str) -> Any:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            raise self._error(exc, key, "reading") from exc

    def _digest(self, key: str) -> str:
        """sha256 of an object, streamed from the store (never trusting its ETag)."""
        digest, body = hashlib.sha256(), self._body(key)
        for chunk in body.iter_chunks(CHUNK):
            digest.update(chunk)
        return digest.hexdigest()

    def read(self, run_id: str, name: str) -> bytes:
        return self._body(self._key(run_id, name)).read()

