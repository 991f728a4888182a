"""`impactbook init`: a new project with catalog, the example template and plan, and runs/."""

from __future__ import annotations

import datetime as dt
import shutil
from importlib import resources
from pathlib import Path

from .catalog import Catalog
from .errors import ProjectError
from .project import CATALOG_FILE, Project
from .yamlio import dump_yaml, load_yaml

CATALOG_TEXT = """\
# impactbook catalog: every input a plan may use, pinned by sha256 and described by a data contract.
# Edit by hand and review like code; `impactbook dataset add` and `impactbook template add` write pins
# here and keep these comments.
datasets: {}
templates: {}
models: {}
"""
GITIGNORE = "runs/*/\nruns/index.sqlite*\ndata/\n"


def init_project(folder: Path) -> Project:
    folder = folder.resolve()
    if (folder / CATALOG_FILE).exists():
        raise ProjectError(f"{folder / CATALOG_FILE} already exists; this is already an impactbook project")
    for sub in ("templates", "plans", "runs", "data"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / CATALOG_FILE).write_text(CATALOG_TEXT, encoding="utf-8")
    if not (folder / ".gitignore").exists():
        (folder / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    project = Project(folder)
    source = resources.files("impactbook") / "scaffold"
    catalog = Catalog.load(project)
    for name in ("ab_test", "rollout_monitor"):
        template = folder / "templates" / f"{name}.ipynb"
        if not template.exists():
            with resources.as_file(source / f"{name}.ipynb") as path:
                shutil.copyfile(path, template)
        catalog.pin_template(name, template)
    # fresh example plans' outcome windows open tomorrow, after the freezes you are about to make
    start = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
    for name in ("example.yaml", "rollout.yaml"):
        plan_path = folder / "plans" / name
        if not plan_path.exists():
            with resources.as_file(source / name) as path:
                plan = load_yaml(path, ProjectError, str(path))
            plan["window"]["start"] = start
            plan["window"]["end"] = start + dt.timedelta(days=13)
            dump_yaml(plan, plan_path)
    return project


MINIMAL_TEMPLATE = '''import impactbook.notebook as ib
from IPython.display import Markdown, display
import pandas as pd

plan = ib.plan_parameter(plan)
frame = ib.load_input({input})          # by catalog name; the pin is checked (the run's pin under `impactbook run`)
design = plan.design
results, verdicts = [], {{}}
for metric in plan.metrics:
    if metric.kind == "ratio":
        for arm in design.treatment_arms:
            key = plan.hypothesis_key(metric.id, arm)
            if metric.role != "exploratory":
                verdicts[key] = "INCONCLUSIVE"
            results.append(ib.result_row(metric, None, verdicts.get(key), note="this template estimates per-unit metrics only",
                                         **({{"arm": arm}} if design.multi_arm else {{}})))
        continue
    arms = {{arm: ib.stats.SampleMean.of(frame.loc[frame[design.variant_column].astype(str) == arm, metric.column].dropna())
            for arm in design.arms}}
    test = ib.stats.proportion_difference if metric.kind == "proportion" else ib.stats.welch_difference
    for arm in design.treatment_arms:  # each treatment arm against the control (no multiplicity correction here)
        try:
            effect, note = test(arms[design.control], arms[arm], plan.alpha), None
        except ib.stats.NotEstimable as reason:
            effect, note = None, str(reason)
        verdict = None
        if metric.role == "guardrail":
            verdict = ib.stats.non_inferiority(effect, metric.direction, metric.margin, plan.alpha, metric.margin_type).verdict if effect else "INCONCLUSIVE"
        elif metric.role != "exploratory":
            verdict = ib.stats.superiority_verdict(effect, metric.direction, plan.alpha) if effect else "INCONCLUSIVE"
        if verdict:
            verdicts[plan.hypothesis_key(metric.id, arm)] = verdict
        results.append(ib.result_row(metric, effect, verdict, note, **({{"arm": arm}} if design.multi_arm else {{}})))

ib.glue("results", results)
ib.glue("verdicts", verdicts)
display(ib.table(pd.DataFrame(results)[["metric", "role", "control_n", "treatment_n", "difference", "relative", "p_value", "verdict", "note"]]))
'''


def new_template(project: Project, name: str, input_parameter: str = "data", dataset: str = "demo_experiment"):
    """A minimal template that satisfies the result contract: a parameters cell (the plan's input, `plan`,
    `seed`), one analysis cell, the `results` and `verdicts` scraps; pinned in the catalog."""
    import nbformat

    path = project.root / "templates" / f"{name}.ipynb"
    if path.exists():
        raise ProjectError(f"{project.relative(path)} already exists", hint="choose another name")
    v4 = nbformat.v4
    notebook = v4.new_notebook(cells=[
        v4.new_markdown_cell(f"# {name}\n\nA custom impactbook template. `impactbook run` injects the parameters below "
                             "from the frozen plan; by hand, their defaults are used. It must glue `results` (one row "
                             "per metric, in the standard schema: `ib.result_row`) and `verdicts` (each preregistered "
                             "hypothesis: CONFIRMED, REFUTED or INCONCLUSIVE)."),
        v4.new_code_cell(f'{input_parameter} = "{dataset}"  # catalog dataset name (a plan input); required\n'
                         'plan = "plans/example.yaml"  # a path by hand; `impactbook run` injects the frozen plan\n'
                         "seed = 0  # fixed by the plan", metadata={"tags": ["parameters"]}),
        v4.new_code_cell(MINIMAL_TEMPLATE.format(input=input_parameter)),
    ])
    notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    notebook.metadata["impactbook"] = {"outputs": {"results": "array", "verdicts": "object"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return Catalog.load(project).pin_template(name, path)
