"""The validation run: baseline and candidate unperturbed, the candidate under every declared perturbation
(each magnitude, seed and replicate), boundaries checked at every stage, costs measured, downstream deltas
bootstrapped, changes attributed, drift counted; each preregistered check ends in a verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ...designspecs.pipeline_validation import Ablation, PipelineValidationDesign, Shift, VersionSwap, drift_id
from . import perturb
from .attribution import Attribution, sequential_swap
from .budgets import StageCost, measure
from .checks import Check, limit_check, tolerance_check, worst
from .drift_tables import DriftRow, drift_rows
from .metrics import PairedDelta, paired_bootstrap
from .stages import PipelineRun, StageFunction, identity, load_entry_point, load_stage, run_pipeline

MetricFunction = Callable[[pd.DataFrame], pd.Series]


def preregistered_checks(design: PipelineValidationDesign) -> list[str]:
    """The check ids a run of `design` ends with, known before any data is read (the plan's hypotheses)."""
    return design.check_ids()


@dataclass(frozen=True)
class Validation:
    design: PipelineValidationDesign
    checks: list[Check]
    boundaries: list[dict[str, Any]]
    costs: list[StageCost]
    sensitivity: list[dict[str, Any]]
    deltas: dict[str, PairedDelta]
    attribution: list[Attribution]
    drift: list[DriftRow]
    failures: dict[str, str] = field(default_factory=dict)

    def verdicts(self) -> dict[str, str]:
        return {c.id: c.verdict for c in self.checks}

    def results(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.checks]

    def breached(self) -> list[str]:
        return [c.id for c in self.checks if c.verdict == "REFUTED"]

    def scraps(self) -> dict[str, Any]:
        """The scraps the template glues: the standard `results` and `verdicts` plus the report's tables."""
        return {"results": self.results(), "verdicts": self.verdicts(), "boundaries": self.boundaries,
                "costs": [c.__dict__ for c in self.costs], "sensitivity": self.sensitivity,
                "deltas": {k: v.__dict__ for k, v in self.deltas.items()},
                "attribution": [a.__dict__ for a in self.attribution], "drift": [d.__dict__ for d in self.drift]}


class Pipeline:
    """The design's stages with their baseline and candidate functions, and its metric functions."""

    def __init__(self, design: PipelineValidationDesign, overrides: dict[str, StageFunction] | None = None,
                 root: Path | None = None):
        self.design = design
        self.stages = design.stages
        self.root = root
        self.base = {s.name: load_stage(s.code, root) for s in design.stages}
        self.versions = {c.stage: (load_stage(c.baseline, root), load_stage(c.candidate, root)) for c in design.changes}
        self.base.update(overrides or {})
        self.metrics: dict[str, MetricFunction] = {m.id: load_entry_point(m.entry_point) for m in design.metrics}

    def functions(self, swapped: set[str] | None = None, replace: dict[str, StageFunction] | None = None) -> dict[str, StageFunction]:
        """Every stage's function: changed stages at their candidate when in `swapped` (all by default)."""
        swapped = set(self.versions) if swapped is None else swapped
        chosen = {name: self.versions[name][name in swapped] if name in self.versions else fn for name, fn in self.base.items()}
        return {**chosen, **(replace or {})}

    def run(self, frame: pd.DataFrame, **kwargs) -> PipelineRun:
        return run_pipeline(self.stages, self.functions(**kwargs), frame)

    def score(self, run: PipelineRun) -> dict[str, pd.Series]:
        return {m: fn(run.output) for m, fn in self.metrics.items()}


def _boundary_rows(label: str, run: PipelineRun) -> list[dict[str, Any]]:
    rows = []
    for stage in run.violations:
        found = run.violations[stage]
        status = "failed" if stage == run.failed_stage else ("breached" if found else "ok")
        rows.append({"run": label, "stage": stage, "status": status, "first_failure": stage == run.first_failure,
                     "violations": [f"{v.column or 'rows'}: {v.rule} ({v.rows} rows, e.g. {v.examples})" for v in found]
                     + ([run.error] if stage == run.failed_stage else [])})
    return rows


def _replacement(pipeline: Pipeline, spec, reference: PipelineRun) -> dict[str, StageFunction]:
    if isinstance(spec, VersionSwap):
        return {spec.stage: load_stage(spec.entry_point, pipeline.root)}
    if not isinstance(spec, Ablation):
        return {}
    if spec.replacement == "identity":
        return {spec.stage: identity}
    if spec.replacement == "baseline":
        return {spec.stage: pipeline.versions[spec.stage][0]}
    original = pipeline.functions()[spec.stage]
    means = reference.outputs[spec.stage][spec.columns].mean()
    return {spec.stage: lambda frame: original(frame).assign(**means.to_dict())}


def check_targets(design: PipelineValidationDesign, evaluation: pd.DataFrame) -> None:
    """Declared target distributions checked against the evaluation data before anything runs, so a target
    that names absent values fails at once, naming its perturbation."""
    for index, spec in enumerate(design.perturbations):
        if isinstance(spec, Shift) and spec.mode == "target":
            if spec.column not in evaluation:
                raise ValueError(f"perturbations[{index}].column: {spec.column!r} is not a column of the evaluation data")
            try:
                perturb.target_weights(evaluation, spec, 1.0)
            except ValueError as exc:
                raise ValueError(f"perturbations[{index}].{exc}") from exc


def validate(design: PipelineValidationDesign, evaluation: pd.DataFrame, reference: pd.DataFrame | None = None,
             overrides: dict[str, StageFunction] | None = None, measure_costs: bool = True,
             root: Path | None = None) -> Validation:
    """Run every preregistered check of `design` on the evaluation frame (and the drift reference); notebook
    stages are found under `root` (default: the project `impactbook run` names, else the working directory)."""
    pipeline = Pipeline(design, overrides, root)
    check_targets(design, evaluation)
    directions = {m.id: m.direction for m in design.metrics}
    checks: list[Check] = []
    base_run, cand_run = pipeline.run(evaluation, swapped=set()), pipeline.run(evaluation)
    boundaries = _boundary_rows("baseline", base_run) + _boundary_rows("candidate", cand_run)
    if cand_run.output is None or base_run.output is None:
        broken = cand_run if cand_run.output is None else base_run
        raise RuntimeError(f"the unperturbed pipeline fails at stage {broken.failed_stage!r}: {broken.error}")
    base_scores, cand_scores = pipeline.score(base_run), pipeline.score(cand_run)
    deltas = {m: paired_bootstrap(base_scores[m], cand_scores[m], design.level, design.bootstrap, design.seed + i)
              for i, m in enumerate(pipeline.metrics)}
    checks += [tolerance_check(f"tolerance.{m.id}", deltas[m.id], m.direction, m.tolerance,
                               "candidate minus baseline, unperturbed") for m in design.metrics if m.tolerance is not None]

    sensitivity, failures = [], {}
    for index, spec in enumerate(design.perturbations):
        verdicts, notes = [], []
        for magnitude in spec.magnitudes:
            replace = _replacement(pipeline, spec, cand_run)
            scored, broken = [], None
            for seed in spec.seeds:
                for replicate in range(spec.replicates):
                    data = perturb.apply(evaluation, spec, magnitude, seed * 1000 + replicate, design.unit)
                    run = pipeline.run(data, replace=replace)
                    if not scored and broken is None:
                        boundaries += _boundary_rows(f"{spec.id} @ {magnitude:g}", run)
                    if run.output is None:
                        broken = run
                        break
                    scored.append(pipeline.metrics[spec.metric](run.output))
                if broken:
                    break
            if broken:
                failures[spec.id] = f"stage {broken.failed_stage!r} raised at magnitude {magnitude:g}: {broken.error}"
                verdicts.append("REFUTED")
                notes.append(failures[spec.id])
                sensitivity.append({"perturbation": spec.id, "kind": spec.kind, "metric": spec.metric,
                                    "magnitude": magnitude, "failed": True})
                continue
            per_unit = pd.concat(scored, axis=1).mean(axis=1)
            delta = paired_bootstrap(cand_scores[spec.metric], per_unit, design.level, design.bootstrap,
                                     design.seed + 1000 + index)
            check = tolerance_check(spec.id, delta, directions[spec.metric], spec.tolerance)
            verdicts.append(check.verdict)
            sensitivity.append({"perturbation": spec.id, "kind": spec.kind, "metric": spec.metric, "magnitude": magnitude,
                                "failed": False, "difference": delta.difference, "difference_low": delta.difference_low,
                                "difference_high": delta.difference_high, "tolerance": spec.tolerance,
                                "verdict": check.verdict})
        worst_at = [s for s in sensitivity if s["perturbation"] == spec.id and not s["failed"]]
        shown = max(worst_at, key=lambda s: abs(s["difference"]), default=None)
        checks.append(Check(f"perturbation.{spec.id}", "tolerance", worst(verdicts),
                            shown["difference"] if shown else None, spec.tolerance,
                            "paired percentile bootstrap over units; worst magnitude", shown and shown["difference_low"],
                            shown and shown["difference_high"], design.level, directions[spec.metric],
                            "; ".join(notes) or f"largest change at magnitude {shown['magnitude']:g}"))

    for stage in design.stages:
        if stage.contract.columns or stage.contract.row_ratio:
            found = cand_run.violations.get(stage.name, [])
            checks.append(Check(f"contract.{stage.name}", "contract", "REFUTED" if found else "CONFIRMED",
                                float(sum(v.rows for v in found)), 0.0, "boundary contract on the candidate's output",
                                note="; ".join(f"{v.column or 'rows'}: {v.rule}" for v in found) or None))

    costs = []
    if measure_costs:
        functions, current = pipeline.functions(), evaluation
        for stage in design.stages:
            costs.append(measure(stage, functions[stage.name], current))
            current = cand_run.outputs[stage.name]
        for cost in costs:
            if cost.budget_ms is not None:
                checks.append(limit_check(f"latency.{cost.stage}", "latency", cost.p95_ms, cost.budget_ms,
                                          f"p95 per {cost.per}, ms (after warm-up)"))
            if cost.memory_budget_mb is not None:
                checks.append(limit_check(f"memory.{cost.stage}", "memory", cost.peak_mb, cost.memory_budget_mb,
                                          "peak memory, MiB: the larger of the tracemalloc peak and the resident high-water rise"))

    known = {frozenset(): base_scores, frozenset(pipeline.versions): cand_scores}  # runs already made

    def means(swapped: set[str]) -> dict[str, float]:
        scores = known.get(frozenset(swapped)) or pipeline.score(pipeline.run(evaluation, swapped=swapped))
        return {m: float(s.mean()) for m, s in scores.items()}

    attribution = sequential_swap([c.stage for c in design.changes], means)

    drift = []
    if design.drift:
        if reference is None:
            raise ValueError("the design declares drift checks but no reference dataset was given")
        on_reference = pipeline.run(reference)
        for stage_name in {d.stage for d in design.drift}:
            current = evaluation if stage_name is None else cand_run.outputs[stage_name]
            past = reference if stage_name is None else on_reference.outputs[stage_name]
            drift += drift_rows(past, current, [d for d in design.drift if d.stage == stage_name])
        drift.sort(key=lambda r: r.value / r.threshold, reverse=True)
        checks += [limit_check(drift_id(d.column, d.statistic, d.stage), "drift", d.value, d.threshold, d.method,
                               None if d.p_value is None else f"p = {d.p_value:.3g}") for d in drift]

    order = {check_id: i for i, check_id in enumerate(preregistered_checks(design))}
    checks.sort(key=lambda c: order.get(c.id, len(order)))
    return Validation(design, checks, boundaries, costs, sensitivity, deltas, attribution, drift, failures)
