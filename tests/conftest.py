"""Shared fixtures: a real project on disk (init + pinned synthetic data), real kernels, real SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import shutil

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


def relabel_a_row(project: Project) -> None:
    """Pin demo data whose sixth line's arm is 'holdout': a contract violation (variant's allowed values)."""
    path = project.resolve("data/demo_experiment.csv")
    text = path.read_text().splitlines(keepends=True)
    text[5] = text[5].replace(",control,", ",holdout,").replace(",treatment,", ",holdout,")
    path.write_text("".join(text))
    Catalog.load(project).pin_dataset("demo_experiment", path, replace=True, reason="a row relabelled")


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


def project_with_template(root: Path, template: str) -> Project:
    """An init'd project with the shipped scaffold `template` copied into templates/ and pinned."""
    project = init_project(root)
    path = project.root / "templates" / f"{template}.ipynb"
    shutil.copyfile(REPO / "src/impactbook/scaffold" / f"{template}.ipynb", path)
    Catalog.load(project).pin_template(template, path)
    return project


def run_design_example(root: Path, template: str, plan_file: Path, plan_path: str, dataset: str, data: Path,
                       generate, contract) -> tuple[Project, Any]:
    """A design's example end to end: `generate(path)` writes the data at `data` (pinned as `dataset`, declared
    synthetic), the plan file is frozen at `plan_path` and run once. Returns (project, outcome)."""
    project = project_with_template(root, template)
    Catalog.load(project).pin_dataset(dataset, generate(project.resolve(data)), contract=contract, synthetic=True)
    shutil.copyfile(plan_file, project.root / plan_path)
    freeze_plan(project, plan_path)
    return project, run_plan(project, plan_path)


def assert_gate_follows_the_decision_and_verify_passes(project: Project, record) -> None:
    gate = cli(project, "gate", record.run_id)
    assert gate.returncode == {"ship": 0, "hold": 10, "rollback": 20}[record.decision.action.value], gate.stderr
    assert cli(project, "verify").returncode == 0


def run_plan_copy(project: Project, plan_path: str, plan_id: str, change) -> Any:
    """A copy of a plan under a new id, changed in place by `change(plan)`, frozen and run; it must complete."""
    plan = load_yaml(project.root / plan_path, RuntimeError, plan_path)
    plan["id"] = plan_id
    change(plan)
    path = f"plans/{plan_id}.yaml"
    dump_yaml(plan, project.root / path)
    freeze_plan(project, path)
    outcome = run_plan(project, path)
    assert outcome.record.status.value == "COMPLETED", outcome.record.errors
    return outcome


def assert_runs_compare_baseline_and_site(project: Project, plan_path: str, first_run: str) -> None:
    """`compare`, `baseline`, the site and the plain-words effects read a design's runs through the standard
    result rows only. Two more runs of the frozen plan on the same pinned data give three runs to compare, a
    history of two for the baseline check, and pages for each."""
    import html

    from impactbook.compare import RunEffects, baseline_check, compare_runs
    from impactbook.site.build import build_site
    from impactbook.wording import describe_effect

    runs = [first_run] + [run_plan(project, plan_path).record.run_id for _ in range(2)]
    stored = [RunEffects.load(project.runs_dir / r) for r in runs]
    assert all(s.record.status.value == "COMPLETED" for s in stored), [s.record.errors for s in stored]
    metrics = list(stored[0].results)
    assert metrics and all(isinstance(stored[0].results[m].get("relative"), float) for m in metrics)

    comparison = compare_runs(project, runs)
    assert [m.metric for m in comparison.metrics] == metrics and not comparison.not_shared
    for compared in comparison.metrics:
        assert [r["run_id"] for r in compared.rows] == runs
        for row, run_effects in zip(compared.rows, stored):
            assert row["relative"] == run_effects.results[compared.metric]["relative"]
            assert row["verdict"] == run_effects.verdict(compared.metric)
            assert row["delta_relative"] == pytest.approx(row["relative"] - compared.rows[0]["relative"], abs=1e-12)
    done = cli(project, "compare", *runs[:2], "--json")
    assert done.returncode == 0, done.stderr
    assert [m["metric"] for m in json.loads(done.stdout)["metrics"]] == metrics

    check = baseline_check(project, stored[0].record.plan.id, min_runs=2)
    assert check.latest_run == runs[-1] and check.history_runs == runs[:2]
    assert {f.metric for f in check.flags} == set(metrics)
    for flag in check.flags:
        history = [s.results[flag.metric]["relative"] for s in stored[:2]]
        assert flag.latest == stored[-1].results[flag.metric]["relative"]
        assert flag.history_mean == pytest.approx(sum(history) / 2, rel=1e-12)

    site = build_site(project, project.root / "site", [runs[:2]])
    page = (site.out / "runs" / f"{runs[0]}.html").read_text(encoding="utf-8")
    for metric in metrics:
        assert html.escape(describe_effect(stored[0].results[metric])) in page, metric
    plan_page = (site.out / "plans" / f"{stored[0].record.plan.id}.html").read_text(encoding="utf-8")
    assert all(r in plan_page for r in runs)
    compare_page = (site.out / "compare" / site.comparisons[0]).read_text(encoding="utf-8")
    assert all(m in compare_page for m in metrics) and "(reference)" in compare_page
