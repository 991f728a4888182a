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
