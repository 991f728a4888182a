"""The decision log: human decisions (who, when, why, on which run) in the hash-chained ledger, and the
stage history of a rollout across its monitoring runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ImpactbookError
from .index import load_record, open_index
from .ledger import Ledger
from .project import Project

HumanAction = Literal["advance", "hold", "rollback"]
AUTOMATIC = {"ship": "advance", "hold": "hold", "rollback": "rollback"}


def record_decision(project: Project, run: str, action: HumanAction, by: str, reason: str) -> dict[str, Any]:
    """Append a human decision resting on `run`. Overriding an automatic roll back is allowed, never
    silent: it needs a reason (every decision does) and is marked as an override."""
    if action not in ("advance", "hold", "rollback"):
        raise ImpactbookError(f"unknown action {action!r}", field="--action", hint="advance, hold or rollback")
    if not by.strip():
        raise ImpactbookError("say who decides", field="--by")
    if not reason.strip():
        raise ImpactbookError("a decision needs a reason", field="--reason")
    row = open_index(project).find(run)
    automatic = AUTOMATIC[row["decision"]]
    override = automatic == "rollback" and action != "rollback"
    return Ledger(project.ledger_path).append("decision", {
        "run_id": row["run_id"], "plan_id": row["plan_id"], "action": action, "by": by.strip(),
        "reason": reason.strip(), "automatic": automatic, "override": override})


def decisions_for(project: Project, run_id: str | None = None, plan_id: str | None = None) -> list[dict[str, Any]]:
    return [e for e in Ledger(project.ledger_path).entries() if e["kind"] == "decision"
            and (run_id is None or e["run_id"] == run_id) and (plan_id is None or e["plan_id"] == plan_id)]


@dataclass(frozen=True)
class StageHistory:
    plan_id: str
    runs: list[dict[str, Any]]

    def record(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "runs": self.runs}


def rollout_status(project: Project, plan_id: str) -> StageHistory:
    """Each monitoring run of a rollout plan: its stage, automatic decision, key intervals, and the
    human decisions that rest on it."""
    rows = open_index(project).rows(plan_id)
    if not rows:
        raise ImpactbookError(f"no runs of plan {plan_id!r} in the index",
                              hint="`impactbook runs list` shows the plans that have runs")
    humans = decisions_for(project, plan_id=plan_id)
    history = []
    for row in rows:
        folder = project.runs_dir / row["run_id"]
        record = load_record(folder)
        scraps_path = folder / "scraps.json"
        scraps = json.loads(scraps_path.read_text(encoding="utf-8")) if scraps_path.exists() else {}
        monitor = scraps.get("rollout") or {}
        history.append({
            "run_id": row["run_id"], "status": row["status"], "started_at": row["started_at"],
            "stage": (monitor.get("stage") or {}).get("name"), "decision": record.decision.action.value,
            "reason": record.decision.reason,
            "intervals": {m: {"relative": v.get("relative"), "low": v.get("low"), "high": v.get("high"),
                              "breach": v.get("breach")} for m, v in (monitor.get("latest") or {}).items()},
            "recent_intervals": {m: {"window_start": v.get("window_start"), "relative": v.get("relative"),
                                     "low": v.get("low"), "high": v.get("high"), "breach": v.get("breach")}
                                 for m, v in (monitor.get("recent") or {}).items()},
            "stage_mismatches": [c["stage"] for c in monitor.get("stage_srm") or [] if c.get("mismatch")],
            "human_decisions": [{k: h[k] for k in ("time", "action", "by", "reason", "override", "seq")}
                                for h in humans if h["run_id"] == row["run_id"]]})
    return StageHistory(plan_id, history)
