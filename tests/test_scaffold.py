"""scaffold.py and the template: `init` makes a working project; the template runs by hand with defaults."""

from __future__ import annotations

import nbformat
import papermill

from impactbook.catalog import Catalog
from impactbook.plan import load_plan
from conftest import PLAN, REPO, cli


def test_init_creates_a_project_and_refuses_to_overwrite(tmp_path):
    done = cli(tmp_path, "init", "team-repo")
    assert done.returncode == 0, done.stderr
    root = tmp_path / "team-repo"
    for item in ("catalog.yaml", "templates/ab_test.ipynb", "templates/rollout_monitor.ipynb", "plans/example.yaml",
                 "plans/rollout.yaml", "runs"):
        assert (root / item).exists(), item
    again = cli(tmp_path, "init", "team-repo")
    assert again.returncode == 1 and "already an impactbook project" in again.stderr


def test_template_runs_with_its_defaults_as_in_jupyterlab(project):
    """Open templates/ab_test.ipynb, run all cells, no parameters: the defaults point at the demo inputs."""
    output = project.root / "by-hand.ipynb"
    papermill.execute_notebook(str(project.root / "templates/ab_test.ipynb"), str(output), kernel_name="python3",
                               cwd=str(project.root / "templates"), progress_bar=False)
    notebook = nbformat.read(output, as_version=4)
    assert not any(o.get("output_type") == "error" for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


def test_template_declares_its_output_contract_and_parameters():
    from impactbook.capture import output_contract
    from impactbook.gates import template_parameter_names
    template = REPO / "templates/ab_test.ipynb"
    assert output_contract(template) == {"srm": "object", "results": "array", "verdicts": "object", "power": "array",
                                         "cuped": "array", "segments": "array", "heterogeneity": "array",
                                         "daily": "array"}
    assert template_parameter_names(template) == ["experiment", "plan", "seed"]
    notebook = nbformat.read(template, as_version=4)
    assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "templates store no outputs"


def test_repository_catalog_pins_the_committed_template():
    from impactbook.hashing import sha256_file
    from impactbook.project import Project
    project = Project(REPO)
    for name in ("ab_test", "rollout_monitor"):
        entry = Catalog.load(project).template(name)
        assert entry.sha256 == sha256_file(REPO / entry.path), name
    assert load_plan(REPO / PLAN).template == "ab_test"
    assert load_plan(REPO / "plans/rollout.yaml").template == "rollout_monitor"
