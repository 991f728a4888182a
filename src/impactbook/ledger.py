"""The ledger: append-only, hash-chained JSON lines recording freezes, amendments and runs.

Each entry holds the sha256 of the previous entry, so editing or removing any entry but the
last breaks the chain at a place `verify` names. (Truncating the tail is only detectable
against an outside copy of the last hash — publish it, e.g. in a commit.)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import faults
from .errors import LedgerError
from .hashing import sha256_json

GENESIS = "0" * 64
MAX_ENTRY_BYTES = 4 << 20  # a frozen plan is at most 1 MiB; nothing legitimate comes near this


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def current_user() -> str:
    """Who acts, when a command is not told: git's user.name, else the login name."""
    import getpass
    import subprocess

    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        name = ""
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def entry_hash(entry: dict[str, Any]) -> str:
    return sha256_json({k: v for k, v in entry.items() if k != "hash"})


@dataclass(frozen=True)
class Ledger:
    path: Path

    def entries(self) -> list[dict[str, Any]]:
        return list(self._read())

    def identity(self) -> str | None:
        """The hash of the first entry: the same on every machine that has this ledger, another for any other
        project's (an index records it to know its project); None before the first entry."""
        try:
            with open(self.path, "rb") as handle:
                return str(json.loads(handle.readline())["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _read(self) -> Iterator[dict[str, Any]]:
        """Every committed entry. A last line without its newline is an append still being written (or
        torn by a kill): it is not an entry yet, and the next append removes it — unless it is a whole
        entry whose newline alone is missing (an editor or a copy stripped it), which counts and which the
        next append completes."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            yield from self._parse(handle)

    def entries_in(self, data: bytes) -> list[dict[str, Any]]:
        """The committed entries in `data`, this ledger's bytes as the caller read them once."""
        return list(self._parse(io.BytesIO(data)))

    def snapshot(self) -> "LedgerSnapshot":
        """The ledger's bytes read once, and the entries parsed from those very bytes."""
        data = self.path.read_bytes() if self.path.exists() else b""
        return LedgerSnapshot(data, self.entries_in(data))

    def _parse(self, lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
        for number, raw in enumerate(lines, start=1):
            if not raw.endswith(b"\n"):
                whole = _whole_entry(raw)
                if whole is not None:
                    yield whole
                return
            if not raw.strip():
                continue
            try:
                yield json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                raise LedgerError(f"entry is not valid JSON ({reason})", where=f"{self.path}:{number}") from exc

    def append(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Append one entry. Only the last entry is read (for its hash and number), so an append costs the
        same at entry 10 as at entry 100,000."""
        entry = self._append(lambda fd: (kind, body))
        assert entry is not None
        return entry

    def append_once(self, kind: str, body: dict[str, Any], key: str) -> dict[str, Any] | None:
        """Append unless an entry of `kind` already holds `body[key]` (a run is recorded once), checked under
        the lock; None when it was already there. The entries are parsed only when the ledger's bytes
        mention the value at all, so recording a new value costs one read, not a parse of every entry."""
        needle = json.dumps({key: body[key]}, ensure_ascii=False)[1:-1].encode("utf-8")

        def build(fd: int) -> tuple[str, dict[str, Any]] | None:
            if needle in os.pread(fd, os.fstat(fd).st_size, 0) and any(
                    e.get("kind") == kind and e.get(key) == body[key] for e in self.entries()):
                return None
            return kind, body
        return self._append(build)

    def append_with(self, build: Callable[[list[dict[str, Any]]], tuple[str, dict[str, Any]] | None]
                    ) -> dict[str, Any] | None:
        """Under an exclusive lock, `build` sees every entry and returns (kind, body) to append, or None
        to append nothing — so "check, then append" is one step and concurrent writers cannot fork the
        chain or record the same thing twice."""
        return self._append(lambda fd: build(self.entries()))

    def _append(self, build: Callable[[int], tuple[str, dict[str, Any]] | None]) -> dict[str, Any] | None:
        """`build(fd)` decides under the lock what to append, if anything. A write that fails (disk full) is
        undone, never left half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _drop_torn_tail(fd)
            built = build(fd)
            if built is None:
                return None
            kind, body = built
            previous = _last_entry(fd, self.path)
            entry = {"seq": (previous["seq"] + 1) if previous else 1, "time": utc_now(), "kind": kind, **body,
                     "prev_hash": previous["hash"] if previous else GENESIS}
            entry["hash"] = entry_hash(entry)
            line = (json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
            if len(line) > MAX_ENTRY_BYTES:
                raise LedgerError(f"a {kind} entry of {len(line):,} bytes exceeds the ledger's limit of "
                                  f"{MAX_ENTRY_BYTES:,} bytes per entry", where=str(self.path))
            size = os.fstat(fd).st_size
            try:
                faults.point("ledger.append", self.path)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except BaseException as exc:
                os.ftruncate(fd, size)
                if isinstance(exc, OSError) and not exc.filename:
                    raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
                raise
            return entry
        finally:
            os.close(fd)  # closing releases the lock

    def problems(self) -> list[str]:
        """Every entry whose own hash, sequence number or link to its predecessor does not match."""
        try:
            entries = self.entries()
        except LedgerError as exc:
            return [str(exc)]
        return chain_problems(entries, self.path.name)[0]

    def plan_versions(self, plan_id: str) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["kind"] in ("freeze", "amend") and e.get("plan_id") == plan_id]

    def latest_version(self, plan_id: str) -> dict[str, Any] | None:
        versions = self.plan_versions(plan_id)
        return versions[-1] if versions else None

    def runs(self) -> dict[str, dict[str, Any]]:
        return self.snapshot().runs()


@dataclass(frozen=True)
class LedgerSnapshot:
    """A ledger as one reader saw it: its bytes, and the committed entries in them (a torn last line is not
    one). Handed from the reconciliation to the site, so 10,000 entries are parsed once per command."""

    data: bytes
    entries: list[dict[str, Any]]

    def runs(self) -> dict[str, dict[str, Any]]:
        return {e["run_id"]: e for e in self.entries if e["kind"] == "run"}

    def frozen(self) -> set[PlanVersion]:
        return frozen_versions(self.entries)


PlanVersion = tuple[Any, Any, Any]  # (plan id, version, plan hash)


def frozen_versions(entries: list[dict[str, Any]]) -> set[PlanVersion]:
    """Every plan version this ledger froze or amended: a run of any other plan is not one of this project's."""
    return {(e.get("plan_id"), e.get("version"), e.get("plan_hash")) for e in entries
            if e.get("kind") in ("freeze", "amend")}


ChainState = tuple[str, int]  # the hash the next entry must link to, and the sequence number it must have


def chain_problems(entries: list[dict[str, Any]], name: str, state: ChainState = (GENESIS, 1)
                   ) -> tuple[list[str], ChainState]:
    """Each entry checked for its own hash, its sequence number and its link, starting from `state`; the
    state after the last one, so a caller that verified a prefix can check only what was appended since."""
    found = []
    previous_hash, expected_seq = state
    for entry in entries:
        seq = entry.get("seq")
        label = f"{name} entry {seq}"
        if seq != expected_seq:
            found.append(f"{label}: sequence number {seq}, expected {expected_seq} (an entry was removed or inserted)")
        if entry.get("hash") != entry_hash(entry):
            found.append(f"{label}: content does not match its hash (the entry was edited)")
        if entry.get("prev_hash") != previous_hash:
            found.append(f"{label}: prev_hash does not match the previous entry (the chain is broken)")
        previous_hash, expected_seq = entry.get("hash"), (seq or expected_seq) + 1
    return found, (previous_hash, expected_seq)


def _last_entry(fd: int, path: Path) -> dict[str, Any] | None:
    """The ledger's last committed entry (blank lines skipped, as `entries` does), read from the end."""
    size, window = os.fstat(fd).st_size, 1 << 16
    while True:
        start = max(0, size - window)
        tail = os.pread(fd, size - start, start).rstrip()
        cut = tail.rfind(b"\n")
        if cut >= 0 or start == 0:
            break
        if window > MAX_ENTRY_BYTES:
            raise LedgerError(f"the ledger's last line is longer than {MAX_ENTRY_BYTES:,} bytes", where=str(path),
                              hint="restore the ledger from version control")
        window *= 4
    line = tail[cut + 1:]
    if not line:
        return None
    try:
        entry = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerError("its last entry is not valid JSON", where=str(path),
                          hint="restore the ledger from version control") from exc
    if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int) or "hash" not in entry:
        raise LedgerError("its last entry has no sequence number or hash", where=str(path),
                          hint="restore the ledger from version control")
    return entry


def _whole_entry(line: bytes) -> dict[str, Any] | None:
    """`line` as an entry if it is one whole, self-consistent entry (its own hash matches), else None: only
    then is a line without its newline more than a torn append."""
    try:
        entry = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(entry, dict) and "hash" in entry and entry["hash"] == entry_hash(entry):
        return entry
    return None


def _drop_torn_tail(fd: int) -> None:
    """Remove an unterminated last line (an append killed mid-write), or end it with its newline when it is a
    whole entry that only lost the newline; called under the ledger lock."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    if os.pread(fd, 1, size - 1) == b"\n":
        return
    start = max(0, size - MAX_ENTRY_BYTES - 1)
    tail = os.pread(fd, size - start, start)
    cut = tail.rfind(b"\n")
    if cut < 0 and start > 0:
        raise LedgerError(f"the ledger ends in an unterminated line longer than {MAX_ENTRY_BYTES:,} bytes",
                          hint="restore the ledger from version control")
    if _whole_entry(tail[cut + 1:]) is not None:
        os.write(fd, b"\n")
        return
    os.ftruncate(fd, start + cut + 1)
