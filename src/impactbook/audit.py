"""Verify: recompute every artifact hash and the ledger's hash chain, and tie each run to its entry."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import RunNotFoundError
from .hashing import sha256_file
from .ledger import Ledger
from .project import Project
from .store import SUMS, abandoned_stagings, artifact_problems, published_runs


@dataclass(frozen=True)
class VerifyReport:
    checked_runs: list[str]
    ledger_entries: int
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    def record(self) -> dict[str, object]:
        return {"intact": self.intact, "checked_runs": self.checked_runs, "ledger_entries": self.ledger_entries,
                "problems": self.problems}


def verify(project: Project, runs: list[str] | None = None) -> VerifyReport:
    ledger = Ledger(project.ledger_path)
    problems = ledger.problems()
    try:
        ledger_runs = ledger.runs()
        entries = len(ledger.entries())
    except Exception as exc:  # an unreadable ledger is itself the finding
        ledger_runs, entries = {}, 0
        problems.append(str(exc))
    folders = {f.name: f for f in published_runs(project)}
    if runs:
        chosen = []
        for wanted in runs:
            matches = [name for name in folders if name == wanted] or [n for n in folders if n.startswith(wanted)]
            if len(matches) != 1:
                raise RunNotFoundError(f"{wanted!r} matches {len(matches)} run folders in {project.relative(project.runs_dir)}")
            chosen.append(matches[0])
    else:
        chosen = sorted(folders)
        problems += [f"{project.relative(project.runs_dir)}/{name}: ledger records this run but its folder is missing"
                     for name in sorted(set(ledger_runs) - set(folders))]
        problems += [f"{project.relative(s.folder)}: a run was killed before publication; the next "
                     "`impactbook run` publishes it as FAILED" for s in abandoned_stagings(project)]
    for name in chosen:
        folder = folders[name]
        shown = project.relative(project.runs_dir)
        problems += [f"{shown}/{p}" for p in artifact_problems(folder)]
        entry = ledger_runs.get(name)
        if entry is None:
            problems.append(f"{shown}/{name}: not recorded in the ledger")
        elif (folder / SUMS).is_file() and sha256_file(folder / SUMS) != entry.get("sha256sums"):
            problems.append(f"{shown}/{name}/{SUMS}: does not match the hash in ledger entry {entry['seq']}")
    return VerifyReport(chosen, entries, problems)
