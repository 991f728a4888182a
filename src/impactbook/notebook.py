"""The helper API templates call, identical in JupyterLab and under `impactbook run`.

    import impactbook.notebook as ib
    plan = ib.plan_parameter(plan)          # a path by default, the frozen plan when automated
    analysis = ib.analyse_input(experiment, plan)   # DuckDB over the pinned file; pin checked
    ib.glue("verdicts", {...})              # scraps validated against the template's contract
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from . import stats
from .analysis import Analysis, analyse_file
from .capture import glue
from .catalog import Catalog
from .errors import InputError
from .inputs import ResolvedInput, hash_problem, load_input
from .plan import Plan, load_plan, plan_from_canonical
from .project import Project
from .rollout import Monitor, monitor_file

__all__ = ["Analysis", "Monitor", "analyse_input", "monitor_input", "pinned_file", "escape", "glue", "load_input", "plan_parameter", "stats", "table"]


def table(frame: Any) -> Any:
    """A results table for the report: every cell escaped (values from data render as text), no index."""
    from IPython.display import HTML

    return HTML(frame.to_html(index=False, escape=True, border=0, classes="dataframe", na_rep=""))


def escape(value: Any) -> str:
    """Plan and data strings shown through Markdown/HTML must render as text, never as markup."""
    return html.escape(str(value))


def plan_parameter(value: str | dict[str, Any]) -> Plan:
    """The `plan` parameter: a project-relative path when run by hand, the frozen plan when injected."""
    if isinstance(value, dict):
        return plan_from_canonical(value)
    project = Project.find()
    return load_plan(project.resolve(value), value)


def pinned_file(name: str, project: Project | None = None) -> tuple[Path, str]:
    """A catalog dataset's file and format, after checking its sha256 pin."""
    project = project or Project.find()
    catalog = Catalog.load(project)
    entry = catalog.dataset(name)
    item = ResolvedInput(name, name, entry, project.resolve(entry.uri))
    if problem := hash_problem(item):
        raise InputError(problem, where=catalog.shown)
    return item.path, entry.format


def analyse_input(name: str, plan: Plan, project: Project | None = None) -> Analysis:
    """The whole A/B analysis of a catalog dataset, aggregated in DuckDB over the pinned file (its
    sha256 checked first); no row is loaded into pandas."""
    return analyse_file(plan, *pinned_file(name, project))


def monitor_input(name: str, plan: Plan, feedback: str | None = None, project: Project | None = None) -> Monitor:
    """The rollout monitor over a pinned daily exposure table (see impactbook.rollout), with the
    pinned feedback dataset when the plan declares one."""
    return monitor_file(plan, *pinned_file(name, project), feedback=pinned_file(feedback, project) if feedback else None)
