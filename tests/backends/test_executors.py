"""Many runs at once (batch.py, backends/executors.py): a local process pool and a real Dask
`LocalCluster`; each run is an ordinary run, one failing run never stops the others."""

from __future__ import annotations

import json

from impactbook.index import RunIndex
from impactbook.ledger import Ledger
from impactbook.store import published_runs
from conftest import PLAN, cli, run


def _scraps(project, run_id: str) -> bytes:
    return (project.runs_dir / run_id / "scraps.json").read_bytes()


def test_several_plans_run_concurrently_and_a_broken_one_stops_nothing(frozen_project):
    done = cli(frozen_project, "run", PLAN, "plans/missing.yaml", PLAN, "--workers", "2", "--json", timeout=900)
    assert done.returncode == 1, done.stderr  # one plan could not run
    results = json.loads(done.stdout)
    assert [r["plan"] for r in results] == [PLAN, "plans/missing.yaml", PLAN]
    completed = [r for r in results if r.get("status") == "COMPLETED"]
    assert len(completed) == 2 and all(r["exit_code"] == 0 for r in completed)
    assert "plans/missing.yaml" in results[1]["error"] and results[1]["exit_code"] == 1
    assert "[3/3]" in done.stderr and "on the local executor" in done.stderr
    first, second = (r["run_id"] for r in completed)
    assert _scraps(frozen_project, first) == _scraps(frozen_project, second)
    folders = {f.name for f in published_runs(frozen_project)}
    assert folders == set(Ledger(frozen_project.ledger_path).runs()) == {first, second}
    assert {row["run_id"] for row in RunIndex(frozen_project.index_path).rows()} == folders
    assert cli(frozen_project, "verify").returncode == 0


def test_all_frozen_plans_on_a_real_dask_cluster_match_a_sequential_run(frozen_project):
    import distributed  # a dev dependency: the test needs a real cluster, never a skip
    sequential = run(frozen_project).record.run_id
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        done = cli(frozen_project, "run", "--all", "--executor", "dask", "--scheduler", cluster.scheduler_address,
                   "--json", timeout=900)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["plan"] for r in results] == [PLAN]  # the scaffolded rollout plan is not frozen: skipped
    assert "skipped plans/rollout.yaml" not in done.stderr  # never frozen, so not a candidate at all
    assert results[0]["status"] == "COMPLETED"
    assert _scraps(frozen_project, results[0]["run_id"]) == _scraps(frozen_project, sequential)


def test_executor_mistakes_are_clear(frozen_project):
    no_scheduler = cli(frozen_project, "run", PLAN, "--executor", "dask")
    assert no_scheduler.returncode == 1 and "--scheduler" in no_scheduler.stderr
    unknown = cli(frozen_project, "run", PLAN, "--executor", "spark")
    assert unknown.returncode == 1 and "unknown executor 'spark' (choose from local, dask)" in unknown.stderr
    both = cli(frozen_project, "run", PLAN, PLAN, "--dry-run")
    assert both.returncode == 2 and "one plan at a time" in both.stderr
    assert both.stderr.startswith("Usage: impactbook run [OPTIONS]")
    nothing = cli(frozen_project, "run")
    assert nothing.returncode == 2 and "give a plan file" in nothing.stderr
    unreachable = cli(frozen_project, "run", PLAN, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert unreachable.returncode == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in unreachable.stderr
    assert not list(published_runs(frozen_project))
