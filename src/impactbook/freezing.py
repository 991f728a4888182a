"""Preregistration: freeze a plan into the ledger, amend it with a reason, check it is unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PlanChangedError, PlanError, PlanNotFrozenError
from .gitinfo import git_state
from .ledger import Ledger, parse_time
from .plan import Plan, load_plan, plan_from_canonical
from .project import Project


@dataclass(frozen=True)
class FrozenPlan:
    """A plan as recorded in the ledger: the version a run rests on."""

    plan: Plan
    version: int
    sha256: str
    frozen_at: str
    path: str
    entry: dict[str, Any]

    @property
    def frozen_time(self):
        return parse_time(self.frozen_at)

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> "FrozenPlan":
        return cls(plan=plan_from_canonical(entry["plan"]), version=entry["version"], sha256=entry["plan_hash"],
                   frozen_at=entry["time"], path=entry["path"], entry=entry)


@dataclass(frozen=True)
class PlanStatus:
    plan_id: str
    path: str
    on_disk_hash: str
    frozen: FrozenPlan | None

    @property
    def matches(self) -> bool:
        return self.frozen is not None and self.frozen.sha256 == self.on_disk_hash

    @property
    def state(self) -> str:
        if self.frozen is None:
            return "not frozen"
        return "frozen, unchanged" if self.matches else "changed since freeze"


def _read(project: Project, path: Path | str) -> tuple[Plan, str]:
    shown = project.relative(path)
    return load_plan(project.resolve(path), shown), shown


def freeze_plan(project: Project, path: Path | str) -> FrozenPlan:
    """Record version 1 of a plan. Re-freezing an unchanged plan is a no-op; a changed one needs `amend`."""
    plan, shown = _read(project, path)
    ledger = Ledger(project.ledger_path)
    latest = ledger.latest_version(plan.id)
    if latest is not None:
        if latest["plan_hash"] == plan.sha256:
            return FrozenPlan.from_entry(latest)
        raise PlanChangedError(f"plan {plan.id!r} is already frozen (version {latest['version']}) and the file "
                               "has changed since", where=shown,
                               hint=f"record the change with `impactbook plan amend {shown} --reason ...`")
    return FrozenPlan.from_entry(ledger.append("freeze", _version_body(project, plan, shown, 1)))


def amend_plan(project: Project, path: Path | str, reason: str) -> FrozenPlan:
    """Record a new version that points to the one it replaces, with the reason shown in every report."""
    if not reason.strip():
        raise PlanError("an amendment needs a reason", field="--reason")
    plan, shown = _read(project, path)
    ledger = Ledger(project.ledger_path)
    latest = ledger.latest_version(plan.id)
    if latest is None:
        raise PlanNotFrozenError(f"plan {plan.id!r} was never frozen, so there is nothing to amend", where=shown,
                                 hint=f"freeze it first: `impactbook plan freeze {shown}`")
    if latest["plan_hash"] == plan.sha256:
        raise PlanError(f"plan {plan.id!r} is unchanged since version {latest['version']}; nothing to amend",
                        where=shown)
    body = _version_body(project, plan, shown, latest["version"] + 1)
    body.update(replaces_hash=latest["plan_hash"], replaces_version=latest["version"], reason=reason.strip())
    return FrozenPlan.from_entry(ledger.append("amend", body))


def _version_body(project: Project, plan: Plan, shown: str, version: int) -> dict[str, Any]:
    git = git_state(project.root)
    return {"plan_id": plan.id, "version": version, "plan_hash": plan.sha256, "path": shown,
            "git_commit": git["commit"], "git_dirty": git["dirty"], "plan": plan.canonical()}


def plan_status(project: Project, path: Path | str) -> PlanStatus:
    plan, shown = _read(project, path)
    latest = Ledger(project.ledger_path).latest_version(plan.id)
    return PlanStatus(plan.id, shown, plan.sha256, FrozenPlan.from_entry(latest) if latest else None)


def require_frozen(project: Project, path: Path | str) -> FrozenPlan:
    """The frozen version a run may rest on, or a clear refusal."""
    status = plan_status(project, path)
    if status.frozen is None:
        raise PlanNotFrozenError(f"plan {status.plan_id!r} is not frozen; a run needs a preregistered plan",
                                 where=status.path, hint=f"run `impactbook plan freeze {status.path}` first")
    if not status.matches:
        raise PlanChangedError(
            f"plan {status.plan_id!r} was edited after its latest frozen version {status.frozen.version} "
            f"(frozen {status.frozen.frozen_at}, hash {status.frozen.sha256[:12]}, file now {status.on_disk_hash[:12]})",
            where=status.path, hint=f"revert the edit, or record it with `impactbook plan amend {status.path} --reason ...`")
    return status.frozen


def frozen_versions(project: Project) -> list[FrozenPlan]:
    return [FrozenPlan.from_entry(e) for e in Ledger(project.ledger_path).entries() if e["kind"] in ("freeze", "amend")]
