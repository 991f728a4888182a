"""Anchors: the ledger's head (entry number and hash) written where the ledger cannot rewrite it on its
own — a git tag in the project's repository, or a line in a file kept elsewhere — so that removing the
last entries, or rewriting the chain and re-hashing it, is caught by `verify`.

A hash chain alone shows an edit in the middle, not a cut at the end; an anchor is the outside copy of
the last hash that the chain needs.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ImpactbookError, LedgerError
from .ledger import Ledger, utc_now
from .project import Project

TAG_PREFIX = "impactbook-ledger/"
TAG = re.compile(re.escape(TAG_PREFIX) + r"(\d+)-([0-9a-f]{64})$")


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    where: str

    def record(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "where": self.where}


def _git(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(project.root), *args], capture_output=True, text=True, timeout=60)


def _head(project: Project) -> dict[str, Any]:
    entries = Ledger(project.ledger_path).entries()
    if not entries:
        raise LedgerError("the ledger is empty: there is nothing to anchor yet", where=str(project.ledger_path))
    return entries[-1]


def anchor_in_git(project: Project) -> Anchor:
    """A lightweight tag `impactbook-ledger/<entry>-<hash>` on the current commit (push it: `git push --tags`)."""
    head = _head(project)
    if _git(project, "rev-parse", "HEAD").returncode != 0:
        raise ImpactbookError("the project is not in a git repository with a commit, so there is nowhere to tag",
                              hint="anchor into a file you keep elsewhere: `impactbook ledger anchor --file PATH`")
    name = f"{TAG_PREFIX}{head['seq']:08d}-{head['hash']}"
    done = _git(project, "tag", name)
    if done.returncode != 0 and "already exists" not in done.stderr:
        raise ImpactbookError(f"git tag {name} failed: {done.stderr.strip()}")
    return Anchor(head["seq"], head["hash"], f"git tag {name}")


def anchor_in_file(project: Project, path: Path) -> Anchor:
    """One JSON line per anchor, appended to a file the ledger's writers cannot reach (another volume,
    a CI artifact, a separate repository)."""
    head = _head(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"seq": head["seq"], "hash": head["hash"], "time": utc_now(),
                                 "ledger": str(project.ledger_path)}) + "\n")
    return Anchor(head["seq"], head["hash"], f"{path}:{sum(1 for _ in open(path, encoding='utf-8'))}")


def git_anchors(project: Project) -> list[Anchor]:
    done = _git(project, "tag", "--list", f"{TAG_PREFIX}*")
    if done.returncode != 0:
        return []
    found = []
    for name in done.stdout.split():
        if match := TAG.match(name):
            found.append(Anchor(int(match.group(1)), match.group(2), f"git tag {name}"))
    return found


MAX_ANCHOR_FILE_BYTES = 64 << 20  # a line per anchor: a million anchors fit


def file_anchors(path: Path) -> list[Anchor]:
    from .durable import read_regular

    try:
        raw = read_regular(path, MAX_ANCHOR_FILE_BYTES + 1)
    except OSError as exc:
        reason = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc.strerror})"
        raise ImpactbookError(f"anchor file {path} {reason}", field="--anchor") from None
    if raw is None:
        raise ImpactbookError(f"{path} is not a file; --anchor takes a file written by `impactbook ledger anchor "
                              "--file`", field="--anchor")
    if len(raw) > MAX_ANCHOR_FILE_BYTES:
        raise ImpactbookError(f"is larger than {MAX_ANCHOR_FILE_BYTES:,} bytes; it is not an anchor file",
                              where=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ImpactbookError("is not UTF-8 text; it is not an anchor file", where=str(path)) from None
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                value = json.loads(line)
                found.append(Anchor(int(value["seq"]), str(value["hash"]), f"{path}:{number}"))
            except (ValueError, KeyError, TypeError) as exc:
                raise ImpactbookError(f"line {number} is not an anchor ({exc})", where=str(path)) from exc
    return found


def anchor_problems(entries: list[dict[str, Any]], anchors: list[Anchor], ledger_name: str) -> list[str]:
    """Each anchor must still name an entry of the ledger with the same hash."""
    by_seq = {e.get("seq"): e for e in entries}
    last = entries[-1]["seq"] if entries else 0
    problems = []
    for anchor in sorted(anchors, key=lambda a: a.seq):
        entry = by_seq.get(anchor.seq)
        if entry is None:
            problems.append(f"{ledger_name}: truncated — entry {anchor.seq} (anchored by {anchor.where}) is missing; "
                            f"the ledger ends at entry {last}, so entries {last + 1} to {anchor.seq} were removed")
        elif entry.get("hash") != anchor.hash:
            problems.append(f"{ledger_name}: rewritten — entry {anchor.seq} no longer has the hash anchored by "
                            f"{anchor.where} (an entry at or before {anchor.seq} was changed and the chain re-hashed)")
    return problems
