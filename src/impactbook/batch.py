"""Many runs at once: `impactbook run PLAN [PLAN ...]` and `impactbook run --all` on an executor.

Each run is an ordinary `impactbook run` in its own process (see backends/executors.py), so nothing
about publishing changes; this module only chooses the plans, reports progress per run and sums up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .backends.executors import Executor, JobResult, RunJob
from .catalog import Catalog
from .ledger import Ledger
from .processes import sigterm_as_interrupt
from .project import Project


@dataclass(frozen=True)
class Selection:
    """The plans `--all` runs, and those it leaves out with the reason."""

    plans: list[str]
    skipped: list[tuple[str, str]]


def runnable_plans(project: Project) -> Selection:
    """Every frozen plan (its latest version in the ledger) whose file is present and whose inputs are pinned."""
    latest: dict[str, dict] = {}
    for entry in Ledger(project.ledger_path).entries():
        if entry.get("kind") in ("freeze", "amend") and isinstance(entry.get("plan"), dict):
            latest[entry["plan"].get("id")] = entry
    pinned = set(Catalog.load(project).model.datasets)
    plans, skipped = [], []
    for plan_id, entry in sorted(latest.items(), key=lambda item: str(item[0])):
        path = str(entry.get("path") or "")
        missing = sorted(set((entry["plan"].get("inputs") or {}).values()) - pinned)
        if not path or not project.resolve(Path(path)).is_file():
            skipped.append((path or plan_id, f"plan {plan_id}: its file {path!r} is not in the project"))
        elif missing:
            skipped.append((path, f"plan {plan_id}: inputs not pinned in catalog.yaml: {', '.join(missing)}"))
        else:
            plans.append(path)
    return Selection(plans, skipped)


def run_many(project: Project, plans: list[str], executor: Executor, timeout_s: int | None = None,
             progress: Callable[[str], None] = lambda message: None) -> list[JobResult]:
    """Run every plan (a plan listed twice runs twice) and report each as it finishes."""
    jobs = [RunJob(number, plan, str(project.root), timeout_s) for number, plan in enumerate(plans, 1)]
    finished = 0

    def done(result: JobResult) -> None:
        nonlocal finished
        finished += 1
        progress(f"[{finished}/{len(jobs)}] {describe(result)}")

    progress(f"{len(jobs)} run(s) on the {executor.name} executor")
    with sigterm_as_interrupt():  # a cancelled batch stops its runs, which are stored FAILED (interrupted)
        return executor.run(jobs, done, progress)


def describe(result: JobResult) -> str:
    """One line: the plan, then its run id, status and decision, or why it could not run."""
    summary = result.summary
    if summary is None:
        ended = "" if result.exit_code is None else f" (exit {result.exit_code})"
        return f"{result.job.plan}: no result{ended}: {result.error}"
    return (f"{result.job.plan}: {summary.get('run_id')} {summary.get('status')}, "
            f"decision {summary.get('decision')} ({result.seconds:.1f} s)")


def batch_exit_code(results: list[JobResult]) -> int:
    """1 when any run could not start; otherwise the highest run exit code (0 all completed, 4, 5)."""
    if any(result.summary is None for result in results):
        return 1
    return max((result.exit_code or 0 for result in results), default=0)
