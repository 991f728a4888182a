"""Comparison of runs: the same plan for two candidate models, or a projected effect against the one
measured after deployment — each shared metric's effects and intervals side by side, the deltas,
and which conclusions differ. Also the historical baseline check of a plan's latest run."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pydantic_core

from .errors import ImpactbookError
from .index import load_record, open_index, run_folder
from .plan import Plan, plan_from_canonical
from .project import Project
from .record import RunRecord
from .results import rows_by_metric


@dataclass(frozen=True)
class RunEffects:
    """What a stored run says about each metric: the engine's result row and the final verdict."""

    record: RunRecord
    results: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, folder: Path) -> "RunEffects":
        record = load_record(folder)
        scraps_path = folder / "scraps.json"
        # pydantic's Rust parser: a third of json.loads's time, which the site pays for every run it renders
        scraps = pydantic_core.from_json(scraps_path.read_bytes()) if scraps_path.exists() else {}
        return cls(record, rows_by_metric(scraps))

    def verdict(self, metric: str) -> str | None:
        found = [v.verdict.value for v in self.record.verdicts if v.key == metric]
        return found[0] if found else (self.results.get(metric, {}).get("verdict") or None)


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    rows: list[dict[str, Any]]
    conclusions_differ: bool


@dataclass(frozen=True)
class Comparison:
    runs: list[dict[str, Any]]
    metrics: list[MetricComparison]
    not_shared: dict[str, list[str]] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"runs": self.runs, "metrics": [asdict(m) for m in self.metrics], "not_shared": self.not_shared}


def frozen_plan_of(folder: Path) -> Plan:
    return plan_from_canonical(json.loads((folder / "plan.json").read_text(encoding="utf-8")))


def resolve_run(project: Project, run: str) -> Path:
    """The run's folder: local, or a verified copy fetched from a remote run store."""
    return run_folder(project, open_index(project).find(run)["run_id"])


def compare_runs(project: Project, runs: list[str]) -> Comparison:
    if len(runs) < 2:
        raise ImpactbookError("name at least two runs to compare", field="RUN")
    loaded = [RunEffects.load(resolve_run(project, run)) for run in runs]
    return compare_effects(loaded)


def compare_effects(loaded: list[RunEffects]) -> Comparison:
    """Side by side; deltas are against the first run named (the reference)."""
    shared = [m for m in loaded[0].results if all(m in r.results for r in loaded[1:])]
    if not shared:
        names = ", ".join(r.record.run_id for r in loaded)
        raise ImpactbookError(f"runs {names} share no metric, so there is nothing to compare",
                              hint="compare runs of plans that measure at least one metric in common")
    reference = loaded[0]
    metrics = []
    for metric in shared:
        rows = []
        for run in loaded:
            row = run.results[metric]
            base = reference.results[metric]
            rows.append({"run_id": run.record.run_id, "plan": run.record.plan.id, "metric": metric,
                         "kind": row.get("kind"), "level": row.get("level"),
                         "candidate": run.record.model_change.get("candidate"),
                         "role": row.get("role"), "relative": row.get("relative"),
                         "relative_low": row.get("relative_low"), "relative_high": row.get("relative_high"),
                         "difference": row.get("difference"), "difference_low": row.get("difference_low"),
                         "difference_high": row.get("difference_high"), "p_value": row.get("p_value"),
                         "verdict": run.verdict(metric),
                         "delta_relative": _minus(row.get("relative"), base.get("relative")),
                         "delta_difference": _minus(row.get("difference"), base.get("difference"))})
        metrics.append(MetricComparison(metric, rows, len({r["verdict"] for r in rows}) > 1))
    runs = [{"run_id": r.record.run_id, "plan": r.record.plan.id, "plan_version": r.record.plan.version,
             "title": r.record.plan.title, "baseline": r.record.model_change.get("baseline"),
             "candidate": r.record.model_change.get("candidate"), "status": r.record.status.value,
             "decision": r.record.decision.action.value, "started_at": r.record.timings.started_at} for r in loaded]
    not_shared = {r.record.run_id: sorted(set(r.results) - set(shared)) for r in loaded if set(r.results) - set(shared)}
    return Comparison(runs, metrics, not_shared)


def _minus(a: Any, b: Any) -> float | None:
    return a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None


@dataclass(frozen=True)
class BaselineFlag:
    metric: str
    latest: float
    history_mean: float
    history_sd: float
    z: float
    flagged: bool


@dataclass(frozen=True)
class BaselineCheck:
    plan_id: str
    latest_run: str
    history_runs: list[str]
    threshold_sd: float
    flags: list[BaselineFlag]
    note: str = ""

    @property
    def deviating(self) -> list[str]:
        return [f.metric for f in self.flags if f.flagged]

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "deviating": self.deviating}


def baseline_check(project: Project, plan_id: str, against: list[str] | None = None,
                   threshold_sd: float | None = None, min_runs: int | None = None) -> BaselineCheck:
    """Is the latest completed run's relative effect, per metric, within `threshold_sd` standard
    deviations of the effects of earlier completed runs of the plan (or of the runs named)? The
    threshold and the minimum history come from the plan's `history` section unless given."""
    rows = [r for r in open_index(project).rows(plan_id) if r["status"] == "COMPLETED"]
    if not rows:
        raise ImpactbookError(f"plan {plan_id!r} has no completed run to check")
    latest_folder = run_folder(project, rows[-1]["run_id"])
    latest = RunEffects.load(latest_folder)
    settings = frozen_plan_of(latest_folder).history
    index = open_index(project)
    history_ids = [index.find(r)["run_id"] for r in against] if against else [r["run_id"] for r in rows[:-1]]
    history = [RunEffects.load(run_folder(project, run_id)) for run_id in history_ids]
    return judge_against_history(
        plan_id, (latest.record.run_id, relative_effects(latest.results)),
        [(h.record.run_id, relative_effects(h.results)) for h in history],
        threshold_sd if threshold_sd is not None else settings.threshold_sd,
        min_runs if min_runs is not None else settings.min_runs)


def relative_effects(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """metric -> relative effect: all the baseline check reads of a run."""
    return {metric: row.get("relative") for metric, row in results.items()}


def judge_against_history(plan_id: str, latest: tuple[str, dict[str, Any]], history: list[tuple[str, dict[str, Any]]],
                          threshold: float, needed: int) -> BaselineCheck:
    """The baseline check on (run id, metric -> relative effect) pairs, so the site can judge from the effects
    it keeps for unchanged runs without reloading them."""
    flags = []
    latest_run, latest_effects = latest
    for metric, effect in latest_effects.items():
        values = [h[metric] for _, h in history if isinstance(h.get(metric), (int, float))]
        if len(values) < max(needed, 2) or not isinstance(effect, (int, float)):
            continue
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        z = (effect - mean) / sd if sd > 0 else (0.0 if effect == mean else float("inf"))
        flags.append(BaselineFlag(metric, effect, mean, sd, z, abs(z) > threshold))
    note = "" if flags else f"fewer than {max(needed, 2)} earlier completed runs: nothing to compare against"
    return BaselineCheck(plan_id, latest_run, [run_id for run_id, _ in history], threshold, flags, note)
