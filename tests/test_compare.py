"""compare.py: runs side by side on shared metrics; the historical baseline check."""

from __future__ import annotations

import json

import pytest

from impactbook.compare import baseline_check, compare_runs
from impactbook.errors import ImpactbookError
from impactbook.freezing import amend_plan, freeze_plan
from conftest import PLAN, cli, edit_yaml, make_project, run, write_data


def test_two_candidate_models_side_by_side(tmp_path):
    project = make_project(tmp_path / "p", conversion_lift=0.03)
    freeze_plan(project, PLAN)
    first = run(project).record.run_id
    edit_yaml(project.root / PLAN, (("model_change", "candidate"), "ranker-v3"))
    amend_plan(project, PLAN, "evaluate ranker-v3 as well")
    import datetime as dt
    write_data(project, dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1), conversion_lift=0.0)
    second = run(project).record.run_id
    comparison = compare_runs(project, [first, second])
    conversion = next(m for m in comparison.metrics if m.metric == "conversion")
    assert [r["candidate"] for r in conversion.rows] == ["ranker-v2", "ranker-v3"]
    assert conversion.rows[0]["delta_relative"] == 0
    assert conversion.rows[1]["delta_relative"] == pytest.approx(conversion.rows[1]["relative"] - conversion.rows[0]["relative"])
    assert conversion.conclusions_differ and [r["verdict"] for r in conversion.rows] == ["CONFIRMED", "INCONCLUSIVE"]
    done = cli(project, "compare", first, second, "--json", "--html", str(tmp_path / "c.html"))
    assert done.returncode == 0, done.stderr
    assert {m["metric"] for m in json.loads(done.stdout)["metrics"]} >= {"conversion", "revenue_per_user"}
    assert "conclusions differ" in (tmp_path / "c.html").read_text()


def test_runs_that_share_no_metric_are_refused(tmp_path):
    project = make_project(tmp_path / "p")
    freeze_plan(project, PLAN)
    first = run(project).record.run_id
    edit_yaml(project.root / PLAN, (("id",), "other"), (("metrics",), [
        {"id": "sessions_per_user", "column": "sessions", "kind": "mean", "role": "primary", "direction": "increase"}]),
        (("decision_rule",), ...), (("correction",), ...))
    freeze_plan(project, PLAN)
    second = run(project).record.run_id
    with pytest.raises(ImpactbookError, match="share no metric"):
        compare_runs(project, [first, second])
    done = cli(project, "compare", first, second)
    assert done.returncode == 1 and "share no metric" in done.stderr


def test_baseline_check_flags_a_deviating_latest_run(tmp_path):
    project = make_project(tmp_path / "p", conversion_lift=0.03)
    freeze_plan(project, PLAN)
    import datetime as dt
    start = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
    for seed in (1, 2, 3):
        write_data(project, start, conversion_lift=0.03, seed=seed)
        run(project)
    assert baseline_check(project, "example").deviating == []
    write_data(project, start, conversion_lift=-0.04, seed=4)
    run(project)
    check = baseline_check(project, "example")
    assert "conversion" in check.deviating and len(check.history_runs) == 3
    done = cli(project, "baseline", "example", "--json")
    assert done.returncode == 3 and "conversion" in json.loads(done.stdout)["deviating"]
