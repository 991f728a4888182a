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
    template = folder / "templates" / "ab_test.ipynb"
    if not template.exists():
        with resources.as_file(source / "ab_test.ipynb") as path:
            shutil.copyfile(path, template)
    Catalog.load(project).pin_template("ab_test", template)
    plan_path = folder / "plans" / "example.yaml"
    if not plan_path.exists():
        with resources.as_file(source / "example.yaml") as path:
            plan = load_yaml(path, ProjectError, str(path))
        # a fresh example plan's outcome window opens tomorrow, after the freeze you are about to make
        start = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
        plan["window"]["start"] = start
        plan["window"]["end"] = start + dt.timedelta(days=13)
        dump_yaml(plan, plan_path)
    return project
