"""The ledger: append-only, hash-chained JSON lines recording freezes, amendments and runs.

Each entry holds the sha256 of the previous entry, so editing or removing any entry but the
last breaks the chain at a place `verify` names. (Truncating the tail is only detectable
against an outside copy of the last hash — publish it, e.g. in a commit.)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import LedgerError
from .hashing import sha256_json

GENESIS = "0" * 64


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def entry_hash(entry: dict[str, Any]) -> str:
    return sha256_json({k: v for k, v in entry.items() if k != "hash"})


@dataclass(frozen=True)
class Ledger:
    path: Path

    def entries(self) -> list[dict[str, Any]]:
        return list(self._read())

    def _read(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LedgerError(f"entry is not valid JSON ({exc.msg})", where=f"{self.path}:{number}") from exc

    def append(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Append under an exclusive lock so concurrent runs cannot fork the chain."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                entries = self.entries()
                previous = entries[-1] if entries else None
                entry = {
                    "seq": (previous["seq"] + 1) if previous else 1,
                    "time": utc_now(),
                    "kind": kind,
                    **body,
                    "prev_hash": previous["hash"] if previous else GENESIS,
                }
                entry["hash"] = entry_hash(entry)
                handle.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return entry

    def problems(self) -> list[str]:
        """Every entry whose own hash, sequence number or link to its predecessor does not match."""
        found = []
        previous_hash, expected_seq = GENESIS, 1
        try:
            entries = self.entries()
        except LedgerError as exc:
            return [str(exc)]
        for entry in entries:
            seq = entry.get("seq")
            label = f"{self.path.name} entry {seq}"
            if seq != expected_seq:
                found.append(f"{label}: sequence number {seq}, expected {expected_seq} (an entry was removed or inserted)")
            if entry.get("hash") != entry_hash(entry):
                found.append(f"{label}: content does not match its hash (the entry was edited)")
            if entry.get("prev_hash") != previous_hash:
                found.append(f"{label}: prev_hash does not match the previous entry (the chain is broken)")
            previous_hash, expected_seq = entry.get("hash"), (seq or expected_seq) + 1
        return found

    def plan_versions(self, plan_id: str) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["kind"] in ("freeze", "amend") and e.get("plan_id") == plan_id]

    def latest_version(self, plan_id: str) -> dict[str, Any] | None:
        versions = self.plan_versions(plan_id)
        return versions[-1] if versions else None

    def runs(self) -> dict[str, dict[str, Any]]:
        return {e["run_id"]: e for e in self.entries() if e["kind"] == "run"}
