"""Stage 1 of a run: the preregistered plan — its schema, canonical form and hash."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from .designspecs.dates import Day
from .designspecs.difference_in_differences import DifferenceInDifferences
from .designspecs.interrupted_time_series import InterruptedTimeSeries
from .designspecs.observational import Observational
from .designspecs.pipeline_validation import ColumnDrift, PipelineValidationDesign
from .designspecs.synthetic_control import SyntheticControl
from .errors import PlanError
from .hashing import canonical_json, sha256_json
from .yamlio import load_yaml, validation_error

Slug = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
Role = Literal["primary", "secondary", "guardrail", "exploratory"]


class _Strict(BaseModel):
    """Unknown fields are errors, and no number may be inf or nan: a plan is read by people and machines."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelChange(_Strict):
    baseline: str
    candidate: str


class Design(_Strict):
    """A randomized experiment: one control arm and one treatment (`treatment`) or several
    (`treatments`: each is compared with the control). `kind` may be left out: plans frozen before
    other kinds existed keep their hash."""

    kind: Literal["randomized"] = "randomized"
    unit: str = Field(description="randomization unit id column, unique per row")
    variant_column: str
    control: str = "control"
    treatment: str = "treatment"
    treatments: list[str] | None = Field(None, min_length=2, description="several treatment arms (k-arm); one "
                                                                         "arm is `treatment`")
    expected_split: dict[str, float]

    @property
    def treatment_arms(self) -> list[str]:
        return list(self.treatments) if self.treatments is not None else [self.treatment]

    def columns(self) -> dict[str, str]:
        """Field -> column of every data column the design names (every design kind answers this)."""
        return {"unit": self.unit, "variant_column": self.variant_column}

    @property
    def arms(self) -> list[str]:
        return [self.control, *self.treatment_arms]

    @property
    def multi_arm(self) -> bool:
        return self.treatments is not None

    @model_validator(mode="after")
    def _split_covers_variants(self) -> "Design":
        if self.treatments is not None and "treatment" in self.model_fields_set:
            raise ValueError("name the treatment arms either as `treatment` (one) or `treatments` (a list), not both")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arm labels must differ (got {self.arms})")
        if set(self.expected_split) != set(self.arms):
            raise ValueError(f"expected_split must name exactly the arms "
                             f"{', '.join(map(repr, self.arms))} (got {sorted(self.expected_split)})")
        if any(share <= 0 for share in self.expected_split.values()):
            raise ValueError("expected_split shares must be positive")
        if abs(sum(self.expected_split.values()) - 1) > 1e-9:
            raise ValueError(f"expected_split must sum to 1 (got {sum(self.expected_split.values())})")
        return self


DESIGN_KINDS: dict[str, type[BaseModel]] = {
    "randomized": Design,
    "difference_in_differences": DifferenceInDifferences,
    "interrupted_time_series": InterruptedTimeSeries,
    "synthetic_control": SyntheticControl,
    "observational": Observational,
    "pipeline_validation": PipelineValidationDesign,
}
"""Every design kind a plan may declare (`design.kind`), with its schema. A new kind is one line here, a
schema in `designspecs/`, and its adapter and template under `designs/`."""


def _design_tag(value: Any) -> str:
    kind = value.get("kind", "randomized") if isinstance(value, dict) else getattr(value, "kind", "randomized")
    return f"kind-{kind}"


AnyDesign = Annotated[
    Union[tuple(Annotated[schema, Tag(f"kind-{kind}")] for kind, schema in DESIGN_KINDS.items())],  # type: ignore[misc]
    Discriminator(_design_tag, custom_error_type="design_kind",
                  custom_error_message=f"design.kind must be one of {', '.join(DESIGN_KINDS)}")]


WINDOW_DATES = (dt.date(1000, 1, 1), dt.date(8999, 12, 31))


class Window(_Strict):
    """The outcome window; it must start at or after the freeze, or every verdict is DEVIATED (unless the
    plan registers itself as retrospective). `time_type: number` for a time column of period numbers."""

    start: Day
    end: Day
    time_column: str | None = Field(None, description="required unless registration.mode is retrospective")
    time_type: Literal["date", "number"] = "date"

    @field_validator("start", "end")
    @classmethod
    def _within_calendar(cls, day: dt.date) -> dt.date:
        """Days are counted past the window's end (when it closes, rollout windows), so it stays clear of
        the calendar's last year."""
        if not WINDOW_DATES[0] <= day <= WINDOW_DATES[1]:
            raise ValueError(f"{day} is outside {WINDOW_DATES[0]} to {WINDOW_DATES[1]}")
        return day

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class Registration(_Strict):
    """Prospective (the default): frozen before the outcome data exists. Retrospective: the outcomes
    already existed when the plan was frozen (a model change that shipped, a historical trial) — declared
    with a reason, labelled RETROSPECTIVE everywhere, and shipping needs a recorded human decision."""

    mode: Literal["prospective", "retrospective"] = "prospective"
    reason: str | None = None

    @model_validator(mode="after")
    def _reason_for_retrospective(self) -> "Registration":
        if self.mode == "retrospective" and not (self.reason or "").strip():
            raise ValueError("a retrospective registration needs a reason (why the outcomes were seen first)")
        return self


class Cap(_Strict):
    """Winsorization: values above this quantile (of the control arm or of both arms) are capped."""

    quantile: float = Field(gt=0.5, lt=1)
    basis: Literal["control", "pooled"] = "control"


class Metric(_Strict):
    id: str = Slug
    kind: Literal["proportion", "mean", "ratio"]
    column: str | None = Field(None, description="per-unit value (proportion: 0/1); not for ratio metrics")
    numerator: str | None = Field(None, description="ratio metrics: per-unit numerator, e.g. revenue")
    denominator: str | None = Field(None, description="ratio metrics: per-unit denominator, e.g. sessions")
    filter: str | None = Field(None, description="SQL condition selecting the units this metric counts")
    covariate: str | None = Field(None, description="pre-period column for CUPED regression adjustment")
    cap: Cap | None = None
    role: Role
    direction: Literal["increase", "decrease"] = Field(description="the direction that is good")
    margin_type: Literal["relative", "absolute"] = "relative"
    margin: float | None = Field(None, validate_default=True,
                                 description="guardrails: non-inferiority margin, negative")
    minimum_detectable_effect: float | None = Field(None, gt=0, le=10, description="relative, for power")

    @model_validator(mode="after")
    def _columns_fit_kind(self) -> "Metric":
        if self.kind == "ratio":
            if not (self.numerator and self.denominator) or self.column:
                raise ValueError("a ratio metric names `numerator` and `denominator` columns, not `column`")
            if self.covariate:
                raise ValueError("CUPED (covariate) applies to mean and proportion metrics, not ratios")
        elif not self.column or self.numerator or self.denominator:
            raise ValueError(f"a {self.kind} metric names one `column` (and no numerator/denominator)")
        if self.covariate is not None and self.covariate == self.column:
            raise ValueError(f"covariate: {self.covariate!r} is the metric's own column; CUPED adjusts by a column "
                             "measured before the change (adjusting by the outcome removes all of its variance)")
        if self.cap is not None and self.kind != "mean":
            raise ValueError("cap (winsorization) applies to mean metrics only")
        return self

    @field_validator("filter")
    @classmethod
    def _filter_is_an_expression(cls, text: str | None) -> str | None:
        """Parsed here, at freeze, so a filter that is not a plain expression never reaches a ledger."""
        if text is not None:
            from .expressions import ExpressionError, parse_filter

            try:
                parse_filter(text)
            except ExpressionError as exc:
                raise ValueError(str(exc)) from None
        return text

    @field_validator("margin")
    @classmethod
    def _margin_fits_role(cls, margin: float | None, info: ValidationInfo) -> float | None:
        role = info.data.get("role")
        if role == "guardrail":
            if margin is None:
                raise ValueError("a guardrail needs a non-inferiority margin (a negative change, e.g. -0.02)")
            if not margin < 0:
                raise ValueError(f"must be a negative number for a guardrail (got {margin})")
        elif margin is not None and role is not None:
            raise ValueError(f"applies to guardrails only (this metric's role is {role})")
        return margin


class DecisionRule(_Strict):
    """Ship when every listed hypothesis is CONFIRMED; roll back when any listed one is REFUTED; else hold."""

    ship_when_confirmed: list[str] | None = None
    rollback_when_refuted: list[str] | None = None


class Correction(_Strict):
    """Multiple-testing correction across the preregistered family (default: primary and secondary), over
    every treatment arm: Holm or Benjamini-Hochberg across metrics x arms, or Dunnett's many-to-one
    adjustment across the arms of each metric (for more than two arms)."""

    method: Literal["holm", "bh", "dunnett", "none"] = "holm"
    family: list[str] | None = None


class Segments(_Strict):
    columns: list[str] = Field(default_factory=list)
    min_size: int = Field(1000, ge=1, le=10**9, description="segments with fewer units (per arm) are suppressed")
    correction: Literal["holm", "bh", "none"] = "holm"


class History(_Strict):
    """The historical baseline check: flag the latest run's effects that lie more than `threshold_sd`
    standard deviations from the effects of earlier runs of this plan (given at least `min_runs`)."""

    threshold_sd: float = Field(3.0, gt=0)
    min_runs: int = Field(3, ge=2)


class Stage(_Strict):
    name: str
    exposure: float = Field(gt=0, le=1, description="share of the stage's units on the candidate (the rest are "
                                                     "control); each stage's arm sizes are checked against it")
    min_days: int = Field(1, ge=1)
    min_units: int = Field(0, ge=0, description="units (both arms) needed in this stage before advancing")


class StopLoss(_Strict):
    metric: str
    threshold: float = Field(lt=0, description="relative harm in the metric's good direction, negative")


class Feedback(_Strict):
    """Structured user feedback: a dataset (a plan input) with a rating and a reason code per response."""

    input: str = Field(description="the plan input (template parameter) holding the feedback dataset")
    rating_column: str = "rating"
    reason_column: str = "reason"


class Score(_Strict):
    """A composite acceptance score: the weighted mean of relative effects in their good direction,
    metrics and (as `feedback`) the mean rating; advancing also needs score >= min_score."""

    weights: dict[str, float] = Field(min_length=1)
    min_score: float = 0.0


class Sequential(_Strict):
    """How the monitor looks: `msprt` (anytime-valid, look as often as you like) or `group_sequential`
    (`looks` looks equally spaced in information time: a look happens on the first day the information
    fraction reaches k/looks, and its boundary is computed by Lan-DeMets spending at the fraction actually
    observed; the outcome window's last day is the final analysis and spends all the alpha left;
    repeated confidence intervals at each look, Jennison & Turnbull 2000, ch. 7 and 9).

    The information fraction is the observed information over the planned maximum: with
    `planned_information`, 1/se^2 of the monitored relative effect over that number; otherwise effective
    units, sum over days of 4 n_c n_t / (n_c + n_t) (proportional to 1/se^2 while the outcome's variance
    is stable), over those that `planned_units` gives when split across the stages in proportion to
    their `min_units` (equally when none is set) at each stage's exposure."""

    method: Literal["msprt", "group_sequential"] = "msprt"
    looks: int = Field(5, ge=1, le=20)
    spending: Literal["obrien_fleming", "pocock"] = "obrien_fleming"
    planned_units: int | None = Field(None, ge=1, description="units (both arms) at the final look")
    planned_information: float | None = Field(None, gt=0, description="1/se^2 of the relative effect at the final "
                                                                       "look, if declared instead of planned_units")

    @model_validator(mode="after")
    def _planned(self) -> "Sequential":
        if self.method == "group_sequential" and self.planned_units is None and self.planned_information is None:
            raise ValueError("group_sequential monitoring needs planned_units or planned_information "
                             "(the information at the last look)")
        return self


class RecentWindow(_Strict):
    """A second stop-loss on recent data only, so that a drop starting mid-rollout is not diluted by the
    days before it: the effect since the current `stage` began (or within consecutive blocks of `days`
    days from the window's start), with its own anytime-valid confidence sequence. It takes
    `alpha_share` of the stop-loss alpha, split equally over the windows the rollout can have; the
    cumulative sequence of a stop-loss metric keeps the rest, so a false rollback stays within alpha/2."""

    window: Literal["stage"] | int = Field("stage", description="'stage', or a number of days (>= 1)")
    alpha_share: float = Field(0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _days(self) -> "RecentWindow":
        if not isinstance(self.window, str) and self.window < 1:
            raise ValueError("window must be 'stage' or a number of days of at least 1")
        return self


class RolloutDrift(_Strict):
    """The candidate's traffic in the current stage against a pinned reference dataset (a plan input, e.g.
    the traffic before the rollout), column by column (PSI, KS, Jensen-Shannon, chi-square); a breached
    check holds the rollout at its stage with the reason."""

    reference: str = Field(description="the plan input (template parameter) holding the reference dataset")
    checks: list[ColumnDrift] = Field(min_length=1)


class Rollout(_Strict):
    """A staged rollout watched continuously: each day's arms compared within the day (stratified, so a
    common time trend cancels while exposure ramps), anytime-valid intervals (mSPRT confidence sequences)
    or group-sequential looks in information time; advance when every acceptance metric is confidently
    good and the stage is long and large enough and its arms match its exposure; roll back as soon as a
    stop-loss guardrail is confidently beyond its threshold, on all data or on the recent window."""

    stage_column: str = "stage"
    stages: list[Stage] = Field(min_length=1)
    acceptance: list[str] = Field(min_length=1)
    stop_loss: list[StopLoss] = Field(default_factory=list)
    mixing_sd: float = Field(0.05, gt=0, description="prior scale of the relative effect (mSPRT mixing)")
    sequential: Sequential = Sequential()
    recent: RecentWindow | None = Field(RecentWindow(), description="the recent-window stop-loss (null: none)")
    drift: RolloutDrift | None = None
    feedback: Feedback | None = None
    score: Score | None = None


class Plan(_Strict):
    id: str = Slug
    title: str
    hypothesis: str
    owner: str | None = None
    model_change: ModelChange
    template: str
    inputs: dict[str, str] = Field(min_length=1, description="template parameter name -> catalog dataset name")
    design: AnyDesign
    window: Window
    registration: Registration = Registration()
    alpha: float = Field(ge=1e-6, lt=0.5, description="a smaller alpha has no interval a computer can hold")
    seed: int = Field(ge=0, lt=2**32, description="a 32-bit seed (numpy and PYTHONHASHSEED take no more)")
    srm_threshold: float = Field(0.001, ge=1e-12, lt=1)
    target_power: float = Field(0.8, gt=0, lt=1)
    metrics: list[Metric] = Field(default_factory=list, description="not for pipeline_validation: its checks "
                                                                       "(design.metrics, perturbations, ...) are its hypotheses")
    correction: Correction = Correction()
    segments: Segments = Segments()
    history: History = History()
    rollout: Rollout | None = None
    decision_rule: DecisionRule = DecisionRule()
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("inputs", "parameters")
    @classmethod
    def _names_are_python_names(cls, named: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Each name becomes a variable in the template's parameters cell, so it must be one."""
        import keyword

        for name in named:
            if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
                raise ValueError(f"{name!r} is not a Python variable name (letters, digits and _, not starting "
                                 f"with a digit, not a keyword); the template receives each {info.field_name[:-1]} "
                                 "as a variable")
        return named

    @field_validator("parameters")
    @classmethod
    def _parameters_are_plain_json(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        """Extra template parameters travel as JSON: strings, finite numbers, booleans, null, lists, maps."""
        def check(value: Any, where: str) -> None:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{where} is {value}; parameters must be finite numbers")
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise ValueError(f"{where} has a non-string key {key!r}")
                    check(item, f"{where}.{key}")
            elif isinstance(value, (list, tuple)):
                for number, item in enumerate(value):
                    check(item, f"{where}[{number}]")
            elif not isinstance(value, (str, int, float, bool, type(None), dt.date)):
                raise ValueError(f"{where} is a {type(value).__name__}, which is not a JSON value")

        for name, value in parameters.items():
            check(value, name)
        return parameters

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, metrics: list[Metric]) -> list[Metric]:
        ids = [m.id for m in metrics]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"metric ids must be unique (repeated: {', '.join(duplicates)})")
        return metrics

    @model_validator(mode="after")
    def _rule_names_hypotheses(self) -> "Plan":
        if isinstance(self.design, PipelineValidationDesign):
            if self.metrics:
                raise ValueError("metrics: a pipeline_validation plan declares its downstream metrics and checks "
                                 "in design (metrics, perturbations, drift); leave the top-level metrics out")
            if not self.design.check_ids():
                raise ValueError("design: a pipeline_validation plan needs at least one check (a metric tolerance, "
                                 "a perturbation, a stage contract or budget, or a drift check)")
        elif not any(m.role == "primary" for m in self.metrics):
            raise ValueError("metrics: at least one metric must have role: primary")
        known = {h.id for h in self.hypotheses}
        for name, listed in (("decision_rule.ship_when_confirmed", self.decision_rule.ship_when_confirmed),
                             ("decision_rule.rollback_when_refuted", self.decision_rule.rollback_when_refuted),
                             ("correction.family", self.correction.family)):
            unknown = [i for i in listed or [] if i not in known]
            if unknown:
                raise ValueError(f"{name} names {unknown}, which are not preregistered "
                                 f"hypotheses (choose from {sorted(known)})")
        if self.rollout is not None:
            metrics = {m.id for m in self.metrics}
            listed = [*self.rollout.acceptance, *(s.metric for s in self.rollout.stop_loss)]
            unknown = [i for i in listed if i not in metrics]
            if unknown:
                raise ValueError(f"rollout names metrics {unknown} the plan does not define (choose from {sorted(metrics)})")
            if self.rollout.drift and (self.rollout.drift.reference not in self.inputs
                                       or self.rollout.drift.reference == next(iter(self.inputs))):
                raise ValueError(f"rollout.drift.reference {self.rollout.drift.reference!r} must name one of the "
                                 f"plan's inputs other than the first (the exposures): {sorted(self.inputs)}")
            if self.rollout.feedback and self.rollout.feedback.input not in self.inputs:
                raise ValueError(f"rollout.feedback.input {self.rollout.feedback.input!r} is not one of the plan's inputs "
                                 f"{sorted(self.inputs)}")
            if self.rollout.score:
                allowed = metrics | ({"feedback"} if self.rollout.feedback else set())
                unknown = sorted(set(self.rollout.score.weights) - allowed)
                if unknown:
                    raise ValueError(f"rollout.score.weights names {unknown}; choose from {sorted(allowed)}")
                if any(w < 0 for w in self.rollout.score.weights.values()) or not sum(self.rollout.score.weights.values()):
                    raise ValueError("rollout.score.weights must be non-negative and not all zero")
            names = [stage.name for stage in self.rollout.stages]
            if len(set(names)) != len(names):
                raise ValueError("rollout stage names must be unique")
        if not self.randomized and self.metrics:
            used = [name for name, unset in (("rollout", self.rollout is None),
                                             ("segments", not self.segments.columns),
                                             ("srm_threshold", "srm_threshold" not in self.model_fields_set))
                    if not unset]
            if used:
                raise ValueError(f"{', '.join(used)} apply to randomized experiments only "
                                 f"(this plan's design.kind is {self.design.kind})")
            ratio = [m.id for m in self.metrics if m.kind == "ratio" or m.covariate or m.cap or m.filter]
            if ratio:
                raise ValueError(f"metrics {ratio}: a {self.design.kind} design analyses one outcome column per "
                                 "metric (kind mean or proportion, no ratio, covariate, cap or filter)")
        if isinstance(self.design, InterruptedTimeSeries):
            self._time_series_fits_window()
        if self.correction.method == "dunnett" and not self.multi_arm:
            raise ValueError("correction.method dunnett compares several treatment arms with the control; this "
                             "design has one (use holm, bh or none)")
        if self.rollout is not None and self.multi_arm:
            raise ValueError("a staged rollout monitors one candidate: design.treatments must name one arm")
        if self.window.time_column is None and self.registration.mode != "retrospective" and self.accrues_outcomes:
            raise ValueError("window.time_column is required: the outcomes' dates are checked against the freeze "
                             "(a retrospective plan, registration: {mode: retrospective, reason: ...}, may omit it)")
        if self.rollout is not None and self.window.time_column is None:
            raise ValueError("a rollout is monitored day by day: window.time_column is required")
        if (self.rollout is not None and self.rollout.recent is not None and not isinstance(self.rollout.recent.window, str)
                and self.window.time_type != "date"):
            raise ValueError("rollout.recent.window in days needs dates: window.time_type must be date")
        reserved = {"plan", "seed", *self.inputs} & set(self.parameters)
        if reserved:
            raise ValueError(f"parameters may not redefine {sorted(reserved)}: the framework injects them")
        return self

    def _time_series_fits_window(self) -> None:
        """The outcome window is the post-intervention period; an outcome is never its own control."""
        design = self.design
        if isinstance(design.intervention, dt.date) and design.intervention != self.window.start:
            raise ValueError(f"design.intervention ({design.intervention}) must be window.start "
                             f"({self.window.start}): the outcome window is the post-intervention period")
        if not isinstance(design.intervention, dt.date) and self.window.time_type != "number":
            raise ValueError("design.intervention is a period number: set window.time_type: number")
        outcomes = sorted({m.column for m in self.metrics} & set(design.regressors))
        if outcomes:
            raise ValueError(f"design.regressors {outcomes} are metric columns: a control regressor must be "
                             "unaffected by the change")

    @property
    def randomized(self) -> bool:
        return isinstance(self.design, Design)

    @property
    def multi_arm(self) -> bool:
        """Several treatment arms, each compared with the control (randomized designs only)."""
        return isinstance(self.design, Design) and self.design.multi_arm

    @property
    def treatment_arms(self) -> list[str | None]:
        """The arms each hypothesis is tested in; [None] for designs without arms."""
        return list(self.design.treatment_arms) if isinstance(self.design, Design) else [None]

    @property
    def accrues_outcomes(self) -> bool:
        """Outcomes that accrue over the window (an experiment, a panel): a look before it closes is interim.
        A pipeline validation scores a pinned evaluation set instead."""
        return not isinstance(self.design, PipelineValidationDesign)

    @property
    def assessed(self) -> list[Metric]:
        """What the run assesses: the plan's metrics, or a pipeline validation's preregistered checks (each a
        guardrail: any breach rolls back, every check confirmed ships)."""
        if isinstance(self.design, PipelineValidationDesign):
            return [Metric.model_construct(id=check, kind="check", column=None, numerator=None, denominator=None,
                                           filter=None, covariate=None, cap=None, role="guardrail",
                                           direction="increase", margin_type="relative", margin=None,
                                           minimum_detectable_effect=None)
                    for check in self.design.check_ids()]
        return list(self.metrics)

    @property
    def hypotheses(self) -> list[Metric]:
        """Every metric with a confirmatory role is a preregistered hypothesis; exploratory ones are not."""
        return [m for m in self.assessed if m.role != "exploratory"]

    def hypothesis_key(self, metric_id: str, arm: str | None) -> str:
        """A hypothesis's id: the metric's, or "metric:arm" when several treatment arms are compared."""
        return f"{metric_id}:{arm}" if self.multi_arm and arm else metric_id

    @property
    def hypothesis_keys(self) -> list[tuple[Metric, str, str]]:
        """(metric, treatment arm, id) of every preregistered hypothesis: each metric against each arm."""
        return [(m, arm, self.hypothesis_key(m.id, arm)) for m in self.hypotheses for arm in self.treatment_arms]

    @property
    def family(self) -> list[str]:
        """The hypotheses whose p-values are corrected together (guardrails are tested one-sided, apart)."""
        listed = self.correction.family
        return listed if listed is not None else [m.id for m in self.assessed if m.role in ("primary", "secondary")]

    @property
    def ship_requires(self) -> list[str]:
        rule = self.decision_rule.ship_when_confirmed
        return rule if rule is not None else [m.id for m in self.assessed if m.role in ("primary", "guardrail")]

    @property
    def rollback_on(self) -> list[str]:
        rule = self.decision_rule.rollback_when_refuted
        return rule if rule is not None else [m.id for m in self.assessed if m.role == "guardrail"]

    def canonical(self) -> dict[str, Any]:
        """What the author wrote, as JSON: fields left at their defaults are omitted, so a later
        release that adds an optional field does not change the hash of an already frozen plan."""
        return self.model_dump(mode="json", exclude_unset=True)

    def canonical_json(self) -> str:
        return canonical_json(self.canonical())

    @property
    def sha256(self) -> str:
        return sha256_json(self.canonical())

    def template_parameters(self) -> dict[str, Any]:
        """Exactly what is injected into the template's parameters cell."""
        return {**self.inputs, "plan": self.canonical(), "seed": self.seed, **self.parameters}


def load_plan(path: Path | str, shown: str | None = None) -> Plan:
    """Read and validate a plan; every error names the file, the line and the field path."""
    path = Path(path)
    shown = shown or str(path)
    data = load_yaml(path, PlanError, shown)
    if not isinstance(data, dict):
        raise PlanError("a plan must be a YAML mapping (key: value pairs)", where=shown)
    try:
        return Plan.model_validate(data, strict=True)  # `seed: true` or `alpha: "0.05"` is a mistake, not a number
    except ValidationError as exc:
        raise _plan_error(exc, data, shown) from None


def plan_from_canonical(data: dict[str, Any], shown: str = "<frozen plan>") -> Plan:
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise _plan_error(exc, data, shown) from None


def _plan_error(exc: ValidationError, data: Any, shown: str) -> PlanError:
    return validation_error(PlanError, exc, data, shown, Plan)
