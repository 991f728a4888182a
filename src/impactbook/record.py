"""The run record (run.json): everything an auditor needs to know what produced a number."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .results import EffectNumbers


class Status(str, Enum):
    COMPLETED = "COMPLETED"
    INADMISSIBLE = "INADMISSIBLE"
    FAILED = "FAILED"


class Verdict(str, Enum):
    CONFIRMED = "CONFIRMED"
    REFUTED = "REFUTED"
    INCONCLUSIVE = "INCONCLUSIVE"
    INADMISSIBLE = "INADMISSIBLE"
    DEVIATED = "DEVIATED"
    INTERIM = "INTERIM"


class Action(str, Enum):
    SHIP = "ship"
    HOLD = "hold"
    ROLLBACK = "rollback"


GATE_EXIT = {Action.SHIP: 0, Action.HOLD: 10, Action.ROLLBACK: 20}


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanRef(_Record):
    id: str
    version: int
    sha256: str
    path: str
    frozen_at: str
    title: str
    amendment_reason: str | None = None


class TemplateRef(_Record):
    name: str
    path: str
    version: int | str
    sha256: str | None


class HypothesisVerdict(_Record):
    metric: str
    arm: str | None = None
    role: str
    verdict: Verdict
    statistical_verdict: Verdict | None = None
    reason: str

    @property
    def key(self) -> str:
        """The hypothesis's id: the metric, or "metric:arm" with several treatment arms."""
        return f"{self.metric}:{self.arm}" if self.arm else self.metric


class EffectSummary(EffectNumbers):
    """One metric's effect in plain words, beside its final verdict: what CI and stakeholders read."""

    model_config = ConfigDict(extra="forbid")

    unit: str = ""
    verdict: str | None = None
    sentence: str


class DecisionRecord(_Record):
    action: Action
    reason: str
    arm: str | None = Field(None, description="with several treatment arms: the one to ship, if any")


class Timings(_Record):
    started_at: str
    finished_at: str | None = None
    duration_s: float | None = None
    execution_s: float | None = None
    cells: list[dict[str, Any]] = Field(default_factory=list)
    process_started_at: str | None = Field(None, description="when the command's process started (the phases' zero)")
    phases: dict[str, list[float]] = Field(default_factory=dict,
                                           description="phase -> [start, end] s since the process started")


class RunRecord(_Record):
    schema_version: int = 2
    run_id: str
    status: Status
    labels: list[str] = Field(default_factory=list, description="SIMULATED, RETROSPECTIVE, INTERIM")
    reproduces: str | None = Field(None, description="the run this one re-executes (impactbook reproduce)")
    plan: PlanRef
    model_change: dict[str, str]
    template: TemplateRef
    inputs: list[dict[str, Any]]
    parameters: dict[str, Any]
    seed: int
    environment: dict[str, Any]
    timings: Timings
    gate: dict[str, Any]
    errors: list[str] = Field(default_factory=list)
    verdicts: list[HypothesisVerdict] = Field(default_factory=list)
    effects: list[EffectSummary] = Field(default_factory=list)
    decision: DecisionRecord

    @property
    def gate_exit_code(self) -> int:
        return GATE_EXIT[self.decision.action]

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status.value, "labels": self.labels, "plan_id": self.plan.id,
                "plan_version": self.plan.version, "decision": self.decision.action.value,
                "decision_reason": self.decision.reason,
                "verdicts": {v.key: v.verdict.value for v in self.verdicts},
                "effects": [e.model_dump(mode="json") for e in self.effects],
                "started_at": self.timings.started_at, "finished_at": self.timings.finished_at}
