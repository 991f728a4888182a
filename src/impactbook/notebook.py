"""The helper API templates call, identical in JupyterLab and under `impactbook run`.

    import impactbook.notebook as ib
    plan = ib.plan_parameter(plan)          # a path by default, the frozen plan when automated
    data = ib.load_input(experiment)        # by catalog name; the sha256 pin is checked
    ib.glue("verdicts", {...})              # scraps validated against the template's contract
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from . import stats
from .capture import glue
from .inputs import load_input
from .plan import Plan, load_plan, plan_from_canonical
from .project import Project

__all__ = ["ab_results", "arm_statistics", "escape", "glue", "load_input", "plan_parameter", "stats"]


def escape(value: Any) -> str:
    """Plan and data strings shown through Markdown/HTML must render as text, never as markup."""
    return html.escape(str(value))


def plan_parameter(value: str | dict[str, Any]) -> Plan:
    """The `plan` parameter: a project-relative path when run by hand, the frozen plan when injected."""
    if isinstance(value, dict):
        return plan_from_canonical(value)
    project = Project.find()
    return load_plan(project.resolve(value), value)


def arm_statistics(frame: pd.DataFrame, plan: Plan, column: str) -> dict[str, stats.SampleMean]:
    """Sufficient statistics of one metric column per arm."""
    grouped = frame.groupby(plan.design.variant_column, observed=True)[column].agg(
        n="count", total="sum", squares=lambda s: float((s.astype("float64") ** 2).sum()))
    return {str(arm): stats.SampleMean(int(row.n), float(row.total), float(row.squares))
            for arm, row in grouped.iterrows()}


def ab_results(frame: pd.DataFrame, plan: Plan) -> list[dict[str, Any]]:
    """Every metric of the plan: effect with intervals, the test's p-value, and (for hypotheses) a verdict."""
    control, treatment = plan.design.control, plan.design.treatment
    rows = []
    for metric in plan.metrics:
        arms = arm_statistics(frame, plan, metric.column)
        test = stats.proportion_difference if metric.kind == "proportion" else stats.welch_difference
        effect = test(arms[control], arms[treatment], plan.alpha)
        row: dict[str, Any] = {"metric": metric.id, "role": metric.role, "kind": metric.kind,
                               "direction": metric.direction, **effect.as_dict(), "margin": metric.margin}
        if metric.role == "guardrail":
            verdict, low, high = stats.non_inferiority_verdict(effect, metric.direction, metric.margin, plan.alpha)
            row.update(verdict=verdict, test="non-inferiority", ni_low=low, ni_high=high)
        elif metric.role == "exploratory":
            row.update(verdict=None, test="exploratory (no verdict)")
        else:
            row.update(verdict=stats.superiority_verdict(effect, metric.direction, plan.alpha), test="superiority")
        rows.append(row)
    return rows
