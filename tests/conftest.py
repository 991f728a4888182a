"""Shared fixtures: a real project on disk (init + pinned synthetic data), real kernels, real SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from impactbook.catalog import Catalog
from impactbook.demo import DATA_PATH, DATASET, DEMO_CONTRACT, generate_demo_data
from impactbook.freezing import freeze_plan
from impactbook.project import Project
from impactbook.runner import run_plan
from impactbook.scaffold import init_project
from impactbook.yamlio import dump_yaml, load_yaml

REPO = Path(__file__).resolve().parents[1]
PLAN = "plans/example.yaml"
FIXTURES = Path(__file__).parent / "fixtures"


def make_project(root: Path, users: int = 20_000, **effects: float) -> Project:
    """An init'd project whose plan window opens tomorrow, with small synthetic data pinned."""
    project = init_project(root)
    window = load_yaml(project.root / PLAN, RuntimeError, PLAN)["window"]
    write_data(project, window["start"], users=users, **effects)
    return project


def write_data(project: Project, start, users: int = 20_000, path: Path = DATA_PATH, days: int = 14,
               **effects: float) -> Path:
    effects.setdefault("conversion_lift", 0.03)
    target = generate_demo_data(project.resolve(path), start, days, users=users, **effects)
    Catalog.load(project).pin_dataset(DATASET, target, contract=DEMO_CONTRACT, replace=True, reason="test data",
                                         synthetic=True)
    return target


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "project")


@pytest.fixture
def frozen_project(project: Project) -> Project:
    freeze_plan(project, PLAN)
    return project


def edit_yaml(path: Path, *changes: tuple[tuple[Any, ...], Any]) -> None:
    """Set (or with value ... delete) nested keys in a YAML file, keeping its comments."""
    data = load_yaml(path, RuntimeError, str(path))
    for keys, value in changes:
        node = data
        for key in keys[:-1]:
            node = node[key]
        if value is ...:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    dump_yaml(data, path)


def edit_template(project: Project, name: str, change) -> Path:
    """Write a variant of the ab_test template as templates/<name>.ipynb and pin it under that name."""
    notebook = nbformat.read(project.root / "templates/ab_test.ipynb", as_version=4)
    change(notebook)
    path = project.root / "templates" / f"{name}.ipynb"
    nbformat.write(notebook, path)
    Catalog.load(project).pin_template(name, path)
    edit_yaml(project.root / PLAN, (("template",), name))
    return path


def run(project: Project, **kwargs):
    return run_plan(project, PLAN, **kwargs)


def run_variant(project: Project, name: str, change, **kwargs):
    """Freeze the plan pointed at a changed copy of the template, and run it."""
    edit_template(project, name, change)
    freeze_plan(project, PLAN)
    return run(project, **kwargs)


def cli(project: Project | Path, *args: str, timeout: int = 300,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m impactbook ARGS` in the project, as a user would run it (extra environment in `env`)."""
    root = project.root if isinstance(project, Project) else project
    return subprocess.run([sys.executable, "-m", "impactbook", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
