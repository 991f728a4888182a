"""The helper API templates call, identical in JupyterLab and under `impactbook run`.

    import impactbook.notebook as ib
    plan = ib.plan_parameter(plan)          # a path by default, the frozen plan when automated
    analysis = ib.analyse_input(experiment, plan)   # DuckDB over the pinned file; pin checked
    ib.glue("verdicts", {...})              # scraps validated against the template's contract
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

from . import stats
from .designs.aggregate import aggregate_table
from .designs.randomized import Analysis, analyse, analyse_file
from .capture import glue
from .errors import InputError
from .inputs import load_input, pinned_input, run_pin
from .plan import Plan, load_plan, plan_from_canonical
from .project import Project
from .results import ResultRow
from .designs.rollout import Monitor, monitor_file

RESULT_FIELDS = set(ResultRow.model_fields)

__all__ = ["Analysis", "Monitor", "analyse_input", "monitor_input", "pinned_file", "escape", "facts", "glue",
           "interval", "load_input", "number", "percent", "plan_parameter", "result_row", "stats", "table"]


def result_row(metric: Any, effect: stats.Effect | None, verdict: str | None = None, note: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """A row of the standard `results` scrap (impactbook.results.ResultRow) from a plan metric and an
    effect; `effect` None (not estimable) keeps the numbers empty and says why in `note`."""
    numbers = {k: v for k, v in effect.as_dict().items() if k in RESULT_FIELDS} if effect is not None else {}
    if effect is not None:
        numbers["method"] = effect.method
        note = note or effect.note
    return {"metric": metric.id, "role": metric.role, "kind": metric.kind, "direction": metric.direction,
            **numbers, "verdict": verdict, "note": note, **extra}


def table(frame: Any) -> Any:
    """A results table for the report: every cell escaped (values from data render as text), no index."""
    from IPython.display import HTML

    return HTML(frame.to_html(index=False, escape=True, border=0, classes="dataframe", na_rep=""))


def facts(mapping: dict[str, Any]) -> Any:
    """A design's data_quality as a two-column table for the report: each key in words, each value as text
    (lists joined, mappings as 'key: value'), escaped once, by `table` (escaping them first showed
    '2026\\-01\\-01' and '&amp;#x27;' in the report)."""
    import pandas as pd

    def shown(value: Any) -> str:
        if isinstance(value, dict):
            return "; ".join(f"{key}: {shown(item)}" for key, item in value.items()) or "none"
        if isinstance(value, (list, tuple)):
            return (" | " if any(isinstance(item, dict) for item in value) else ", ").join(map(shown, value)) or "none"
        return "" if value is None else f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
            else str(value)

    return table(pd.DataFrame([{"what": str(key).replace("_", " "), "value": shown(value)}
                               for key, value in mapping.items()], columns=["what", "value"]))


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:])")


def number(value: Any, spec: str = ".4f", scale: float = 1.0, unit: str = "") -> str:
    """A number for a results table; blank when missing (a metric the data could not estimate)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{scale * value:{spec}}{unit}"


def percent(value: Any) -> str:
    return number(value, "+.2f", 100, "%")


def interval(low: Any, high: Any, scale: float = 100, unit: str = "%") -> str:
    """[low, high] in the given unit, blank when either end is missing."""
    if number(low) == "" or number(high) == "":
        return ""
    return f"[{number(low, '+.2f', scale, unit)}, {number(high, '+.2f', scale, unit)}]"


def escape(value: Any) -> str:
    """Plan and data strings shown through Markdown or HTML render as text, never as markup: no tag, no
    emphasis, no link (`[Approve](https://...)` stays those characters)."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(value), quote=True))


def plan_parameter(value: str | dict[str, Any]) -> Plan:
    """The `plan` parameter: a project-relative path when run by hand, the frozen plan when injected."""
    if isinstance(value, dict):
        return plan_from_canonical(value)
    project = Project.find()
    return load_plan(project.resolve(value), value)


def pinned_file(name: str, project: Project | None = None) -> tuple[Path, str]:
    """A dataset's file and format, after checking its sha256 pin (the run's pin under `impactbook run`)."""
    item = pinned_input(name, project)
    if item.entry.format == "postgresql":
        raise InputError(f"dataset {name} is a warehouse table: only the A/B analysis (analyse_input) runs in the "
                         "database so far; the rollout monitor and the other designs read pinned files")
    return item.path, item.entry.format


def analyse_input(name: str, plan: Plan, project: Project | None = None) -> Analysis:
    """The whole A/B analysis of a catalog dataset, aggregated in DuckDB over the pinned file (its
    sha256 checked first), or in the warehouse over a pinned table (its snapshot hash checked in the same
    read-only snapshot the aggregation reads); no row is loaded into pandas."""
    item, _ = run_pin(name, project)
    if item.entry.format == "postgresql":
        return analyse(plan, aggregate_table(plan, item.entry.uri, item.entry.sha256))
    return analyse_file(plan, *pinned_file(name, project))


def monitor_input(name: str, plan: Plan, feedback: str | None = None, project: Project | None = None,
                  reference: str | None = None) -> Monitor:
    """The rollout monitor over a pinned daily exposure table (see impactbook.designs.rollout), with the
    pinned feedback dataset when the plan declares one, and the pinned drift reference dataset when it
    declares drift checks."""
    return monitor_file(plan, *pinned_file(name, project), feedback=pinned_file(feedback, project) if feedback else None,
                        reference=pinned_file(reference, project) if reference else None)
