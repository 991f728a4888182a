"""The result contract every template follows: a `results` scrap of rows in one standard schema, and a
`verdicts` scrap mapping each preregistered hypothesis to CONFIRMED, REFUTED or INCONCLUSIVE.

`compare`, `baseline`, the site and the plain-words effects read only these fields, so they work for
any template that glues them — not just `ab_test`. Capture validates both scraps like any declared one;
a row or verdict that breaks the contract fails the run, naming it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

STATISTICAL_VERDICTS = ("CONFIRMED", "REFUTED", "INCONCLUSIVE")


class EffectNumbers(BaseModel):
    """An effect as numbers: the difference (treatment minus control, in the metric's units) and the
    relative effect (treatment / control - 1), each with its interval at `level`."""

    metric: str = Field(min_length=1)
    arm: str | None = Field(None, description="the treatment arm, in experiments with more than two arms")
    role: str | None = None
    level: float | None = Field(None, gt=0, lt=1)
    difference: float | None = None
    difference_low: float | None = None
    difference_high: float | None = None
    relative: float | None = None
    relative_low: float | None = None
    relative_high: float | None = None


class ResultRow(EffectNumbers):
    """One metric's estimate (one row per metric, or per metric and arm). Differences are treatment
    minus control in the metric's units; relative effects are treatment / control - 1; intervals are at
    `level`. Templates may add fields of their own."""

    model_config = ConfigDict(extra="allow")

    kind: str | None = Field(None, description="proportion, mean, ratio, or the template's own kind")
    direction: Literal["increase", "decrease"] | None = None
    method: str | None = Field(None, description="the test, e.g. 'Welch t test'")
    control_n: int | None = Field(None, ge=0)
    treatment_n: int | None = Field(None, ge=0)
    control_mean: float | None = None
    treatment_mean: float | None = None
    p_value: float | None = Field(None, ge=0, le=1)
    adjusted_p_value: float | None = Field(None, ge=0, le=1)
    verdict: Literal["CONFIRMED", "REFUTED", "INCONCLUSIVE"] | None = Field(
        None, description="the statistical result (the run's final verdict is impactbook's)")
    note: str | None = Field(None, description="why a number is missing, in words")

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number or null")
        return value


def result_problems(scraps: dict[str, Any], hypotheses: list[str], metrics: list[str]) -> list[str]:
    """What breaks the contract in `results` and `verdicts`, each named by scrap, row and field."""
    problems = []
    rows = scraps.get("results")
    if isinstance(rows, list):
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                problems.append(f"scrap 'results'[{index}]: expected an object with at least 'metric'")
                continue
            try:
                parsed = ResultRow.model_validate(row)
            except ValidationError as exc:
                for error in exc.errors():
                    field = ".".join(str(part) for part in error["loc"])
                    problems.append(f"scrap 'results'[{index}].{field}: {error['msg']} (got {error.get('input')!r})")
                continue
            if parsed.metric not in metrics:
                problems.append(f"scrap 'results'[{index}].metric: {parsed.metric!r} is not a metric of the plan "
                                f"(its metrics: {', '.join(metrics)})")
    verdicts = scraps.get("verdicts")
    if isinstance(verdicts, dict):
        unknown = sorted(set(verdicts) - set(hypotheses))
        if unknown:
            problems.append(f"scrap 'verdicts': {unknown} are not preregistered hypotheses of the plan "
                            f"(its hypotheses: {', '.join(hypotheses)})")
        wrong = {k: v for k, v in verdicts.items() if v not in STATISTICAL_VERDICTS}
        if wrong:
            problems.append(f"scrap 'verdicts': {wrong} — each value must be one of {', '.join(STATISTICAL_VERDICTS)} "
                            "(upper case)")
    return problems


def rows_by_metric(scraps: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The `results` rows keyed by metric (by "metric:arm" when rows name an arm)."""
    rows = scraps.get("results") if isinstance(scraps.get("results"), list) else []
    keyed = {}
    for row in rows:
        if isinstance(row, dict) and isinstance(row.get("metric"), str):
            keyed[f"{row['metric']}:{row['arm']}" if row.get("arm") else row["metric"]] = row
    return keyed
