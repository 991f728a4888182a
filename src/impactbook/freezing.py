"""Preregistration: freeze a plan into the ledger, amend it with a reason, check it is unchanged.

A frozen version binds the plan *and* its template: the ledger entry records the template's source hash
(template.py), so the analysis code cannot change under a frozen plan without an amendment. The check
"what is the latest version, then append the next" happens under the ledger's lock: concurrent freezes
record one version, never two.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .errors import PlanChangedError, PlanError, PlanNotFrozenError
from .gitinfo import git_state
from .hashing import canonical_json
from .ledger import Ledger, parse_time
from .plan import Plan, load_plan, plan_from_canonical
from .project import Project
from .template import source_hash

MAX_CANONICAL_BYTES = 1 << 20


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

    @property
    def template_sha256(self) -> str | None:
        """The template source hash this version froze (None for versions frozen before templates were bound)."""
        return (self.entry.get("template") or {}).get("source_sha256")

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
    template_hash: str | None = None

    @property
    def matches(self) -> bool:
        return self.frozen is not None and self.frozen.sha256 == self.on_disk_hash and not self.template_changed

    @property
    def template_changed(self) -> bool:
        return self.frozen is not None and self.template_hash is not None \
            and self.frozen.template_sha256 != self.template_hash

    @property
    def state(self) -> str:
        if self.frozen is None:
            return "not frozen"
        if self.frozen.sha256 != self.on_disk_hash:
            return "changed since freeze"
        return "template changed since freeze" if self.template_changed else "frozen, unchanged"


def _read(project: Project, path: Path | str) -> tuple[Plan, str]:
    shown = project.relative(path)
    return load_plan(project.resolve(path), shown), shown


def bound_template(project: Project, plan: Plan) -> dict[str, Any]:
    """The template a version binds: its catalog name and version and the source hash of the file, which
    must be the one pinned in catalog.yaml."""
    catalog = Catalog.load(project)
    entry = catalog.template(plan.template)
    path = project.resolve(entry.path)
    actual = source_hash(path, entry.path)
    if entry.sha256 and actual != entry.sha256:
        raise PlanError(f"template {entry.path} has changed since it was pinned (pinned source {entry.sha256[:12]}, "
                        f"file {actual[:12]})", where=catalog.shown, field=f"templates.{plan.template}",
                        hint=f"review it, then `impactbook template add {plan.template} {entry.path}`")
    return {"name": plan.template, "path": entry.path, "version": entry.version, "source_sha256": actual}


def freeze_plan(project: Project, path: Path | str) -> FrozenPlan:
    """Record version 1 of a plan. Re-freezing an unchanged plan is a no-op; a changed one needs `amend`."""
    plan, shown = _read(project, path)
    template = bound_template(project, plan)
    ledger = Ledger(project.ledger_path)

    def build(entries: list[dict[str, Any]]):
        latest = _latest(entries, plan.id)
        if latest is None:
            return "freeze", _version_body(project, plan, shown, 1, template)
        frozen = FrozenPlan.from_entry(latest)
        if frozen.sha256 == plan.sha256 and frozen.template_sha256 == template["source_sha256"]:
            return None
        what = "the file" if frozen.sha256 != plan.sha256 else f"its template {template['path']}"
        raise PlanChangedError(f"plan {plan.id!r} is already frozen (version {frozen.version}) and {what} has "
                               "changed since", where=shown,
                               hint=f"record the change with `impactbook plan amend {shown} --reason ...`")

    entry = ledger.append_with(build)
    return FrozenPlan.from_entry(entry or _latest(ledger.entries(), plan.id))


def amend_plan(project: Project, path: Path | str, reason: str) -> FrozenPlan:
    """Record a new version that points to the one it replaces, with the reason shown in every report."""
    if not reason.strip():
        raise PlanError("an amendment needs a reason", field="--reason")
    plan, shown = _read(project, path)
    template = bound_template(project, plan)

    def build(entries: list[dict[str, Any]]):
        latest = _latest(entries, plan.id)
        if latest is None:
            raise PlanNotFrozenError(f"plan {plan.id!r} was never frozen, so there is nothing to amend", where=shown,
                                     hint=f"freeze it first: `impactbook plan freeze {shown}`")
        frozen = FrozenPlan.from_entry(latest)
        if frozen.sha256 == plan.sha256 and frozen.template_sha256 == template["source_sha256"]:
            raise PlanError(f"plan {plan.id!r} and its template are unchanged since version {frozen.version}; "
                            "nothing to amend", where=shown)
        body = _version_body(project, plan, shown, frozen.version + 1, template)
        body.update(replaces_hash=frozen.sha256, replaces_version=frozen.version, reason=reason.strip())
        return "amend", body

    return FrozenPlan.from_entry(Ledger(project.ledger_path).append_with(build))


def _latest(entries: list[dict[str, Any]], plan_id: str) -> dict[str, Any] | None:
    versions = [e for e in entries if e.get("kind") in ("freeze", "amend") and e.get("plan_id") == plan_id]
    return versions[-1] if versions else None


def _version_body(project: Project, plan: Plan, shown: str, version: int, template: dict[str, Any]) -> dict[str, Any]:
    canonical = plan.canonical()
    size = len(canonical_json(canonical).encode("utf-8"))
    if size > MAX_CANONICAL_BYTES:
        raise PlanError(f"the plan is {size:,} bytes as canonical JSON; at most {MAX_CANONICAL_BYTES:,} are frozen",
                        where=shown)
    git = git_state(project.root)
    return {"plan_id": plan.id, "version": version, "plan_hash": plan.sha256, "path": shown,
            "git_commit": git["commit"], "git_dirty": git["dirty"], "template": template, "plan": canonical}


def plan_status(project: Project, path: Path | str) -> PlanStatus:
    plan, shown = _read(project, path)
    latest = Ledger(project.ledger_path).latest_version(plan.id)
    try:
        template = Catalog.load(project).template(plan.template)
        current = source_hash(project.resolve(template.path), template.path)
    except Exception:  # a missing template is the run's problem to report; the plan's state is still known
        current = None
    return PlanStatus(plan.id, shown, plan.sha256, FrozenPlan.from_entry(latest) if latest else None, current)


def require_frozen(project: Project, path: Path | str) -> FrozenPlan:
    """The frozen version a run may rest on, or a clear refusal."""
    status = plan_status(project, path)
    if status.frozen is None:
        raise PlanNotFrozenError(f"plan {status.plan_id!r} is not frozen; a run needs a preregistered plan",
                                 where=status.path, hint=f"run `impactbook plan freeze {status.path}` first")
    if status.frozen.sha256 != status.on_disk_hash:
        raise PlanChangedError(
            f"plan {status.plan_id!r} was edited after its latest frozen version {status.frozen.version} "
            f"(frozen {status.frozen.frozen_at}, hash {status.frozen.sha256[:12]}, file now {status.on_disk_hash[:12]})",
            where=status.path, hint=f"revert the edit, or record it with `impactbook plan amend {status.path} --reason ...`")
    return status.frozen


def require_bound_template(project: Project, frozen: FrozenPlan, current_source: str, template_path: str) -> None:
    """A run executes exactly the template source its plan version froze; anything else is refused before
    a kernel starts."""
    fix = f"`impactbook plan amend {frozen.path} --reason ...` records the template as it is now"
    if frozen.template_sha256 is None:
        raise PlanChangedError(f"plan {frozen.plan.id!r} version {frozen.version} was frozen before templates were "
                               f"bound to plans, so no template source is preregistered for it", where=frozen.path,
                               hint=fix)
    if current_source != frozen.template_sha256:
        raise PlanChangedError(f"template {template_path} has source {current_source[:12]}, but plan "
                               f"{frozen.plan.id!r} version {frozen.version} froze source {frozen.template_sha256[:12]}",
                               where=frozen.path, hint=f"revert the template, or {fix}")


def freeze_notes(frozen: FrozenPlan) -> list[str]:
    """What a freeze must say plainly: outcomes that already exist (declared or not)."""
    plan = frozen.plan
    opened = dt.datetime.combine(plan.window.start, dt.time(), dt.timezone.utc)
    closed = dt.datetime.combine(plan.window.end + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    if plan.registration.mode == "retrospective":
        return [f"retrospective registration: the outcomes already exist (window {plan.window.start} to "
                f"{plan.window.end}); every run is labelled RETROSPECTIVE and ships only on a recorded human decision"]
    if opened < frozen.frozen_time:
        when = "closed" if closed <= frozen.frozen_time else "opened"
        return [f"warning: the outcome window {when} ({plan.window.start} to {plan.window.end}) before this freeze "
                f"({frozen.frozen_at}): every verdict of its runs will be DEVIATED. If the outcomes already existed, "
                "say so: add `registration: {mode: retrospective, reason: ...}` and amend the plan"]
    return []


def frozen_versions(project: Project) -> list[FrozenPlan]:
    return [FrozenPlan.from_entry(e) for e in Ledger(project.ledger_path).entries() if e["kind"] in ("freeze", "amend")]
