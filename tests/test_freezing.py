"""freezing.py: freeze, amend with a reason, check; a changed plan is refused until amended."""

from __future__ import annotations

import pytest

from impactbook.errors import PlanChangedError, PlanError, PlanNotFrozenError
from impactbook.freezing import amend_plan, freeze_plan, plan_status, require_frozen
from impactbook.ledger import Ledger, parse_time
from conftest import PLAN, edit_yaml


def test_freeze_records_hash_time_and_git_state(project):
    frozen = freeze_plan(project, PLAN)
    entry = Ledger(project.ledger_path).entries()[-1]
    assert entry["kind"] == "freeze" and entry["plan_id"] == "example" and entry["version"] == 1
    assert entry["plan_hash"] == frozen.plan.sha256
    assert parse_time(entry["time"]).tzinfo is not None
    assert "git_commit" in entry and "git_dirty" in entry
    assert freeze_plan(project, PLAN).entry["seq"] == entry["seq"], "re-freezing an unchanged plan is a no-op"


def test_changed_plan_is_refused_until_amended(frozen_project):
    path = frozen_project.root / PLAN
    edit_yaml(path, (("alpha",), 0.01))
    assert plan_status(frozen_project, PLAN).state == "changed since freeze"
    with pytest.raises(PlanChangedError, match="edited after its latest frozen version 1"):
        require_frozen(frozen_project, PLAN)
    with pytest.raises(PlanChangedError, match="plan amend"):
        freeze_plan(frozen_project, PLAN)
    amended = amend_plan(frozen_project, PLAN, "alpha tightened by the review board")
    assert amended.version == 2
    assert amended.entry["replaces_version"] == 1 and amended.entry["reason"] == "alpha tightened by the review board"
    assert require_frozen(frozen_project, PLAN).version == 2


def test_amend_needs_a_reason_and_a_change(frozen_project):
    with pytest.raises(PlanError, match="needs a reason"):
        amend_plan(frozen_project, PLAN, "  ")
    with pytest.raises(PlanError, match="unchanged since version 1"):
        amend_plan(frozen_project, PLAN, "no change")


def test_unfrozen_plan_cannot_run(project):
    with pytest.raises(PlanNotFrozenError, match="plan freeze plans/example.yaml"):
        require_frozen(project, PLAN)
