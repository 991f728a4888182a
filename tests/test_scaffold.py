"""scaffold.py and the template: `init` makes a working project; the template runs by hand with defaults."""

from __future__ import annotations

import nbformat
import papermill

from impactbook.catalog import Catalog
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
                                         "daily": "array", "data_quality": "object"}
    assert template_parameter_names(template) == ["experiment", "plan", "seed"]
    notebook = nbformat.read(template, as_version=4)
    assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "templates store no outputs"


def test_the_committed_project_is_consistent_pins_templates_and_frozen_plans():
    """After a template edit: `impactbook template add`, then `impactbook plan amend` (a test catches a forgotten one)."""
    from impactbook.freezing import require_bound_template, require_frozen
    from impactbook.inputs import ResolvedInput, latest_pins, pin_problem
    from impactbook.ledger import Ledger
    from impactbook.project import Project
    from impactbook.template import source_hash
    project = Project(REPO)
    catalog = Catalog.load(project)
    for plan_path, name in ((PLAN, "ab_test"), ("plans/rollout.yaml", "rollout_monitor")):
        entry = catalog.template(name)
        source = source_hash(REPO / entry.path)
        assert entry.sha256 == source, name
        frozen = require_frozen(project, plan_path)
        assert frozen.plan.template == name
        require_bound_template(project, frozen, source, entry.path)
    pins = latest_pins(Ledger(project.ledger_path).entries())
    for name, entry in catalog.model.datasets.items():
        assert entry.synthetic, f"{name}: the demo's data is generated"
        assert pin_problem(ResolvedInput(name, name, entry, REPO / entry.uri), pins) is None
