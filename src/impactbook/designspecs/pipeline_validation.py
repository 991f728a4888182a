"""The plan schema of a `pipeline_validation` design: the stages of a multi-stage pipeline, the contract at
each stage's output boundary, latency and memory budgets, the changed stages' versions, downstream metrics,
perturbations with preregistered tolerances, and drift checks with thresholds.

Only pydantic and the standard library are imported, so the plan layer can validate a plan without the
harness. Every model forbids unknown fields and is frozen; errors name the field path.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENTRY_POINT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
NAME = r"^[A-Za-z_][\w-]*$"


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _entry_point(value: str) -> str:
    if not ENTRY_POINT.match(value):
        raise ValueError(f"must be an entry point 'package.module:function' (got {value!r})")
    return value


def _notebook(value: str) -> str:
    path = value.replace("\\", "/")
    if not path.endswith(".ipynb") or path.startswith("/") or ".." in path.split("/") or re.match(r"^[A-Za-z]:", path):
        raise ValueError(f"must be a notebook path relative to the project, ending in .ipynb (got {value!r})")
    return value


def _stage_code(value: str) -> str:
    """A stage version is a function entry point or a notebook (a path ending in .ipynb)."""
    return _notebook(value) if value.endswith(".ipynb") else _entry_point(value)


EntryPoint = Annotated[str, Field(min_length=3)]


class ColumnContract(Spec):
    """What one output column must satisfy: a dtype family, an inclusive range, and a null-rate ceiling."""

    type: Literal["number", "integer", "string", "boolean"] | None = None
    min: float | None = None
    max: float | None = None
    max_null_rate: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _range(self) -> "ColumnContract":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class Contract(Spec):
    """The data contract at a stage's output boundary; `row_ratio` bounds output rows / input rows."""

    columns: dict[str, ColumnContract] = Field(default_factory=dict)
    row_ratio: tuple[float, float] | None = None

    @field_validator("row_ratio", mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        """YAML has lists, not tuples: a plan is validated strictly, which takes no list for a tuple."""
        return tuple(value) if isinstance(value, list) else value

    @field_validator("row_ratio")
    @classmethod
    def _ratio(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] <= value[1]:
            raise ValueError(f"must be [low, high] with 0 <= low <= high (got {list(value)})")
        return value


class LatencyBudget(Spec):
    """A p95 budget per batch (the whole stage call) or per row, in milliseconds, after `warmup` calls."""

    p95_ms: float = Field(gt=0)
    per: Literal["batch", "row"] = "batch"
    repeats: int = Field(7, ge=2, le=1000)
    warmup: int = Field(1, ge=0, le=100)


class Stage(Spec):
    """One stage: a function (`entry_point`, DataFrame in, DataFrame out) or a notebook (`notebook`, a path
    relative to the project, executed by Papermill in a fresh kernel with `input_path` and `output_path`
    injected: it reads its input from the Parquet file at `input_path` and writes its output frame as
    Parquet to `output_path`)."""

    name: str = Field(pattern=NAME)
    entry_point: EntryPoint | None = None
    notebook: str | None = Field(None, min_length=7)
    inputs: list[str] = Field(default_factory=list, description="datasets or earlier stages' outputs")
    outputs: list[str] = Field(default_factory=list)
    contract: Contract = Field(default_factory=Contract)
    latency: LatencyBudget | None = None
    memory_mb: float | None = Field(None, gt=0, description="peak memory budget, MiB: the larger of the tracemalloc "
                                     "peak and the rise of the resident high-water mark over one call")

    _check_entry = field_validator("entry_point")(classmethod(lambda cls, v: v and _entry_point(v)))
    _check_notebook = field_validator("notebook")(classmethod(lambda cls, v: v and _notebook(v)))

    @model_validator(mode="after")
    def _one_kind(self) -> "Stage":
        if (self.entry_point is None) == (self.notebook is None):
            raise ValueError("entry_point, notebook: give exactly one (a function 'package.module:function' or a "
                             "notebook path ending in .ipynb)")
        return self

    @property
    def code(self) -> str:
        """What runs: the entry point, or the notebook path."""
        return self.entry_point or self.notebook


class StageChange(Spec):
    """A changed stage: the entry point (or notebook path) of its baseline and of its candidate version."""

    stage: str = Field(pattern=NAME)
    baseline: EntryPoint
    candidate: EntryPoint

    _check_entries = field_validator("baseline", "candidate")(classmethod(lambda cls, v: _stage_code(v)))


class DownstreamMetric(Spec):
    """A metric computed from the last stage's output and the evaluation frame, per evaluation unit."""

    id: str = Field(pattern=NAME)
    entry_point: EntryPoint
    direction: Literal["increase", "decrease"]
    tolerance: float | None = Field(None, ge=0, description="largest harmful candidate-vs-baseline change")

    _check_entry = field_validator("entry_point")(classmethod(lambda cls, v: _entry_point(v)))


class PerturbationBase(Spec):
    id: str = Field(pattern=NAME)
    metric: str = Field(pattern=NAME, description="the downstream metric the tolerance bounds")
    tolerance: float = Field(ge=0, description="largest harmful change of the metric (metric units)")
    magnitudes: list[float] = Field(default_factory=lambda: [1.0], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    replicates: int = Field(1, ge=1, le=1000)


class MissingValues(PerturbationBase):
    """Values set to missing at rate r (the magnitude) in named columns."""

    kind: Literal["missing"]
    columns: list[str] = Field(min_length=1)
    magnitudes: list[float] = Field(min_length=1)

    @field_validator("magnitudes")
    @classmethod
    def _rates(cls, value: list[float]) -> list[float]:
        if any(not 0 <= r <= 1 for r in value):
            raise ValueError(f"each rate must be in [0, 1] (got {value})")
        return value


class Corruption(PerturbationBase):
    """Gaussian noise of scale s x column sd, out-of-range values (column max + s x range) at rate `rate`,
    or type flips (numbers become strings) at rate r (the magnitude)."""

    kind: Literal["corrupt"]
    mode: Literal["noise", "out_of_range", "type_flip"]
    columns: list[str] = Field(min_length=1)
    rate: float = Field(1.0, gt=0, le=1)


class TargetDistribution(Spec):
    """A declared distribution for one column. Categorical: `proportions` maps each value (matched by its
    text) to its share. Numeric: k+1 increasing `edges` (use -.inf / .inf for open ends) and k `proportions`,
    one per bin [e0, e1], (e1, e2], ..., (e(k-1), ek]. Shares are non-negative and sum to 1."""

    proportions: dict[str, float] | list[float]
    edges: list[float] | None = None

    @field_validator("proportions", mode="before")
    @classmethod
    def _text_keys(cls, value):
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _shares(self) -> "TargetDistribution":
        shares = list(self.proportions.values()) if isinstance(self.proportions, dict) else self.proportions
        if not shares or any(share < 0 for share in shares):
            raise ValueError(f"proportions: must be non-negative shares (got {shares})")
        if abs(sum(shares) - 1) > 1e-9:
            raise ValueError(f"proportions: must sum to 1 (got {sum(shares):.10g})")
        if self.edges is None and not isinstance(self.proportions, dict):
            raise ValueError("proportions: a list of shares needs `edges` (numeric bins); name the values for a category")
        if self.edges is not None:
            if isinstance(self.proportions, dict):
                raise ValueError("proportions: with `edges`, give one share per bin as a list")
            if len(self.edges) != len(self.proportions) + 1:
                raise ValueError(f"edges: {len(self.proportions)} proportions need {len(self.proportions) + 1} edges "
                                 f"(got {len(self.edges)})")
            if any(b <= a for a, b in zip(self.edges, self.edges[1:])):
                raise ValueError(f"edges: must increase strictly (got {self.edges})")
        return self


class Shift(PerturbationBase):
    """Distribution shift: every value moved by `magnitude` x the column's interquartile range (`quantile`),
    rows resampled with weights tilting toward the column's upper tail (`reweight`), or the column moved
    to a declared `target` distribution (`target`; magnitude m in [0, 1] is the share of the way from the
    observed distribution to the target, 1 = exactly the target), by resampling rows or by a weight column."""

    kind: Literal["shift"]
    mode: Literal["quantile", "reweight", "target"] = "quantile"
    column: str
    target: TargetDistribution | None = None
    method: Literal["resample", "weight"] = "resample"
    weight_column: str = Field("weight", pattern=NAME, description="the column `method: weight` writes")

    @model_validator(mode="after")
    def _target(self) -> "Shift":
        if (self.mode == "target") != (self.target is not None):
            raise ValueError("target: required with mode 'target' and only there")
        if self.mode == "target" and any(not 0 <= m <= 1 for m in self.magnitudes):
            raise ValueError(f"magnitudes: a move toward a target is a share in [0, 1] (got {self.magnitudes})")
        return self


class Ablation(PerturbationBase):
    """A stage replaced by its baseline version, an identity, or a constant (the column mean) output."""

    kind: Literal["ablation"]
    stage: str = Field(pattern=NAME)
    replacement: Literal["baseline", "identity", "mean"]
    columns: list[str] = Field(default_factory=list, description="the columns 'mean' replaces")


class VersionSwap(PerturbationBase):
    """An upstream stage swapped to another entry point (e.g. last release's feature builder)."""

    kind: Literal["version_swap"]
    stage: str = Field(pattern=NAME)
    entry_point: EntryPoint

    _check_entry = field_validator("entry_point")(classmethod(lambda cls, v: _stage_code(v)))


Perturbation = Annotated[Union[MissingValues, Corruption, Shift, Ablation, VersionSwap], Field(discriminator="kind")]


class ColumnDrift(Spec):
    """Drift of one column between a reference and a current dataset; breached when the statistic exceeds
    `threshold`."""

    column: str
    statistic: Literal["psi", "ks", "jensen_shannon", "chi_square"]
    threshold: float = Field(gt=0)
    bins: int = Field(10, ge=2, le=1000)


class DriftCheck(ColumnDrift):
    """Drift of one column (a feature, or `prediction` at a stage's output) between the reference and the
    current dataset; breached when the statistic exceeds `threshold`."""

    stage: str | None = Field(None, pattern=NAME, description="check at this stage's output; None: on the input")


class PipelineValidationDesign(Spec):
    kind: Literal["pipeline_validation"]
    stages: list[Stage] = Field(min_length=1)
    changes: list[StageChange] = Field(default_factory=list)
    evaluation: str = Field(min_length=1, description="the pinned evaluation dataset (catalog name)")
    reference: str | None = Field(None, description="the pinned drift reference dataset (catalog name)")
    unit: str | None = Field(None, description="the evaluation unit column bootstrapped over (e.g. query id)")
    metrics: list[DownstreamMetric] = Field(min_length=1)
    perturbations: list[Perturbation] = Field(default_factory=list)
    drift: list[DriftCheck] = Field(default_factory=list)
    level: float = Field(0.95, gt=0, lt=1)
    bootstrap: int = Field(1000, ge=100, le=100000)
    seed: int = 0

    def check_ids(self) -> list[str]:
        """The check ids a run ends with, known before any data is read: the plan's hypotheses."""
        ids = [f"tolerance.{m.id}" for m in self.metrics if m.tolerance is not None]
        ids += [f"perturbation.{p.id}" for p in self.perturbations]
        ids += [f"contract.{s.name}" for s in self.stages if s.contract.columns or s.contract.row_ratio]
        ids += [f"latency.{s.name}" for s in self.stages if s.latency]
        ids += [f"memory.{s.name}" for s in self.stages if s.memory_mb]
        ids += [drift_id(d.column, d.statistic, d.stage) for d in self.drift]
        return ids

    def columns(self) -> dict[str, str]:
        """Field -> column of the evaluation data the design names (the stages read the rest)."""
        return {"unit": self.unit} if self.unit else {}

    @model_validator(mode="after")
    def _references(self) -> "PipelineValidationDesign":
        stages = [s.name for s in self.stages]
        metrics = [m.id for m in self.metrics]
        for label, names in (("stages", stages), ("metrics", metrics), ("perturbations", [p.id for p in self.perturbations])):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise ValueError(f"{label}: duplicated names {duplicated}")
        for i, change in enumerate(self.changes):
            _known(f"changes[{i}].stage", change.stage, stages)
        for i, p in enumerate(self.perturbations):
            _known(f"perturbations[{i}].metric", p.metric, metrics)
            if isinstance(p, (Ablation, VersionSwap)):
                _known(f"perturbations[{i}].stage", p.stage, stages)
            if isinstance(p, Ablation) and p.replacement == "baseline" and p.stage not in {c.stage for c in self.changes}:
                raise ValueError(f"perturbations[{i}].replacement: 'baseline' needs stage {p.stage!r} in changes")
        for i, d in enumerate(self.drift):
            if d.stage is not None:
                _known(f"drift[{i}].stage", d.stage, stages)
        return self


def _known(field: str, value: str, names: list[str]) -> None:
    if value not in names:
        raise ValueError(f"{field}: {value!r} is not declared (declared: {', '.join(names)})")


def drift_id(column: str, statistic: str, stage: str | None) -> str:
    return f"drift.{column}.{statistic}" + (f"@{stage}" if stage else "")
