"""Many runs at once (batch.py, backends/executors.py): a local process pool and a real Dask
`LocalCluster`; each run is an ordinary run, one failing run never stops the others."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from impactbook.backends.executors import failure
from impactbook.faults import FAULT_ENV
from impactbook.freezing import freeze_plan
from impactbook.index import RunIndex
from impactbook.ledger import Ledger
from impactbook.store import published_runs
from conftest import PLAN, cli, edit_yaml, read_json, run


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


def test_all_lists_the_plans_it_skipped_in_its_json(frozen_project):
    gone = frozen_project.root / "plans" / "gone.yaml"
    shutil.copy(frozen_project.root / PLAN, gone)
    edit_yaml(gone, (("id",), "gone"))
    freeze_plan(frozen_project, "plans/gone.yaml")
    gone.unlink()
    done = cli(frozen_project, "run", "--all", "--json", timeout=900)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["plan"] for r in results] == [PLAN, "plans/gone.yaml"]
    assert results[0]["status"] == "COMPLETED" and "exit_code" not in results[1]
    assert results[1]["skipped"] == "plan gone: its file 'plans/gone.yaml' is not in the project"
    assert "skipped plans/gone.yaml: plan gone" in done.stderr
    (frozen_project.root / PLAN).unlink()  # now every frozen plan is skipped: the JSON still lists them
    none = cli(frozen_project, "run", "--all", "--json")
    assert none.returncode == 1 and "all 2 were skipped" in none.stderr, none.stderr
    assert [r["plan"] for r in json.loads(none.stdout)] == [PLAN, "plans/gone.yaml"]


def test_executor_mistakes_are_clear(frozen_project):
    no_scheduler = cli(frozen_project, "run", PLAN, "--executor", "dask")
    assert no_scheduler.returncode == 1 and "--scheduler" in no_scheduler.stderr
    assert no_scheduler.stderr.count("--executor dask") == 1, no_scheduler.stderr
    unknown = cli(frozen_project, "run", PLAN, "--executor", "spark")
    assert unknown.returncode == 1 and "unknown executor 'spark' (choose from local, dask)" in unknown.stderr
    both = cli(frozen_project, "run", PLAN, PLAN, "--dry-run")
    assert both.returncode == 2 and "one plan at a time" in both.stderr
    assert both.stderr.startswith("Usage: impactbook run [OPTIONS]")
    nothing = cli(frozen_project, "run")
    assert nothing.returncode == 2 and "give a plan file" in nothing.stderr
    unreachable = cli(frozen_project, "run", PLAN, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert unreachable.returncode == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in unreachable.stderr
    for options, said in ((["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9", "--workers", "2"],
                           "--workers is for --executor local"),
                          (["--scheduler", "tcp://127.0.0.1:9"], "--scheduler is for --executor dask"),
                          (["--executor", "local", "--scheduler", "tcp://127.0.0.1:9"], "--scheduler is for")):
        ignored = cli(frozen_project, "run", PLAN, *options)
        assert ignored.returncode == 1 and said in ignored.stderr, (options, ignored.stderr)
    malformed = cli(frozen_project, "run", PLAN, "--executor", "dask", "--scheduler", "notanaddress")
    assert malformed.returncode == 1 and "cannot reach the Dask scheduler at notanaddress: " in malformed.stderr
    for address in ("foo://127.0.0.1:8786", "tls://127.0.0.1:8786", "ucx://127.0.0.1:1", "inproc://x"):
        other = cli(frozen_project, "run", PLAN, "--executor", "dask", "--scheduler", address)
        assert other.returncode == 1 and f"--scheduler {address}: impactbook connects to Dask schedulers over " \
            "tcp://" in other.stderr, other.stderr
        assert "internal error" not in other.stderr
    assert not list(published_runs(frozen_project))


def test_a_run_killed_by_a_signal_is_reported_as_such_and_the_batch_reports_every_run(frozen_project):
    done = cli(frozen_project, "run", PLAN, PLAN, "--json", env={FAULT_ENV: "kill@notebook.saved#2"}, timeout=900)
    assert done.returncode == 1, done.stderr
    results = json.loads(done.stdout)  # every run reported, none with a summary: each was killed mid-run
    assert [(r["plan"], r["exit_code"]) for r in results] == [(PLAN, -9), (PLAN, -9)]
    assert all("killed by SIGKILL before it reported" in r["error"] for r in results)
    assert "internal error" not in done.stderr and done.stderr.count("no result (exit -9)") == 2
    assert cli(frozen_project, "runs", "list").returncode == 0  # the next command recovers both as FAILED
    assert cli(frozen_project, "verify").returncode == 0
    assert [read_json(f / "run.json")["status"] for f in published_runs(frozen_project)] == ["FAILED", "FAILED"]
    assert failure(-9, "") == failure(-9, "Traceback ...\nnot an error line")  # what it said is not a cause
    assert failure(1, "· progress\nerror: a cause\n") == "a cause"


def _wait_until_sleeping(project, runs: int, batch: subprocess.Popen) -> None:
    """Until `runs` runs sleep in their `notebook.saved#3` fault: papermill's third save is the one after the
    template's first cell (markdown) completed, so its file is the first to say "completed". Fails at once,
    with the batch's output, if the batch ended instead."""
    deadline = time.time() + 240
    while time.time() < deadline and batch.poll() is None:
        sleeping = [p for p in project.staging_dir.glob("*/notebook.ipynb") if '"status": "completed"' in _text(p)]
        if len(sleeping) >= runs:
            return
        time.sleep(0.3)
    batch.kill()
    out, err = batch.communicate()
    raise AssertionError(f"{runs} run(s) never reached their fault (batch exit {batch.returncode}):\n{out}\n{err}")


def _text(path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _run_children(parent: int) -> list[int]:
    found = subprocess.run(["pgrep", "-f", "-P", str(parent), "impactbook run"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _all_end(pids, within=60):
    """Whether every process in pids has ended within the given seconds."""
    deadline = time.time() + within
    while time.time() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.3)
    return not any(_alive(pid) for pid in pids)


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_batch_stops_its_runs_and_each_is_stored_failed(frozen_project, sent):
    batch = subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN, PLAN, PLAN, "--workers", "2",
                              "--json"], cwd=frozen_project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, FAULT_ENV: "sleep=600@notebook.saved#3"})
    _wait_until_sleeping(frozen_project, 2, batch)
    children = _run_children(batch.pid)
    assert len(children) == 2, "the batch never had its two runs in their kernels"
    batch.send_signal(sent)
    out, err = batch.communicate(timeout=120)
    assert _all_end(children), "a run outlived its stopped batch"
    if sent == signal.SIGTERM:
        assert batch.returncode == 130 and err.endswith("error: interrupted\n"), err
        reported = json.loads(out)  # every run reported (the JSON was only {"error": "interrupted"})
        assert [r["plan"] for r in reported] == [PLAN] * 3, reported
        assert reported[2]["error"] == "its batch stopped before it began; not started", reported
    assert cli(frozen_project, "runs", "list").returncode == 0  # (recovers what a killed run left)
    assert cli(frozen_project, "verify").returncode == 0
    records = [read_json(f / "run.json") for f in published_runs(frozen_project)]
    assert [r["status"] for r in records] == ["FAILED", "FAILED"]  # the third never started
    assert all("interrupted" in r["errors"][0] for r in records), [r["errors"] for r in records]


def test_a_dask_worker_that_dies_mid_run_does_not_get_its_plan_run_twice(frozen_project, monkeypatch):
    import distributed

    monkeypatch.setenv(FAULT_ENV, "sleep=600@notebook.saved#3")  # inherited by the workers and their runs
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        batch = subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN, "--executor", "dask",
                                  "--scheduler", cluster.scheduler_address, "--json"], cwd=frozen_project.root,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_until_sleeping(frozen_project, 1, batch)
        workers = [w.process.pid for w in cluster.workers.values() if w.process and w.process.pid]
        running = [(pid, child) for pid in workers for child in _worker_grandchildren(pid)]
        assert running, "no worker ran the plan"
        worker, child = running[0]
        os.kill(worker, signal.SIGKILL)
        out, err = batch.communicate(timeout=300)
    assert batch.returncode == 1, err
    result, = json.loads(out)
    assert "the Dask worker running it died" in result["error"] and result["exit_code"] is None
    assert _all_end([child]), "the run outlived its worker"  # (stored FAILED on the SIGTERM its worker's death sent)
    assert cli(frozen_project, "runs", "list").returncode == 0
    assert cli(frozen_project, "verify").returncode == 0
    records = [read_json(f / "run.json") for f in published_runs(frozen_project)]
    assert [r["status"] for r in records] == ["FAILED"], records  # one run for one job: not run again elsewhere
    assert "interrupted" in records[0]["errors"][0]


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_dask_batch_stops_its_runs_on_the_workers_and_starts_no_more(frozen_project, monkeypatch, sent):
    import distributed

    monkeypatch.setenv(FAULT_ENV, "sleep=600@notebook.saved#3")  # inherited by the workers and their runs
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        batch = subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN, PLAN, PLAN, "--executor", "dask",
                                  "--scheduler", cluster.scheduler_address], cwd=frozen_project.root,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_until_sleeping(frozen_project, 2, batch)
        workers = [w.process.pid for w in cluster.workers.values() if w.process and w.process.pid]
        children = [child for pid in workers for child in _worker_grandchildren(pid)]
        assert len(children) == 2, "the two workers never had a run each"
        batch.send_signal(sent)
        _, err = batch.communicate(timeout=120)
        assert _all_end(children), "a run on a worker outlived its stopped batch"
        time.sleep(5)  # (time for the third, queued run to start on the freed workers, were it still wanted)
        assert not [child for pid in workers for child in _worker_grandchildren(pid)], "a run began after its batch"
    if sent == signal.SIGTERM:
        assert batch.returncode == 130 and err.endswith("error: interrupted\n"), err
    assert cli(frozen_project, "runs", "list").returncode == 0
    assert cli(frozen_project, "verify").returncode == 0
    records = [read_json(f / "run.json") for f in published_runs(frozen_project)]
    assert [r["status"] for r in records] == ["FAILED", "FAILED"], records  # the third never started
    assert all("interrupted" in r["errors"][0] for r in records), [r["errors"] for r in records]


def _worker_grandchildren(nanny_child: int) -> list[int]:
    """The `impactbook run` process under a Dask worker process (the nanny's child)."""
    return _run_children(nanny_child)


def test_plan_paths_are_read_from_the_folder_they_are_typed_in(frozen_project):
    plans = frozen_project.root / "plans"
    for typed in ("example.yaml", "./example.yaml", "../plans/example.yaml"):
        done = subprocess.run([sys.executable, "-m", "impactbook", "run", typed, "--dry-run"], cwd=plans,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (typed, done.stderr)
    missing = cli(frozen_project, "run", "plans/missing.yaml", "--dry-run")
    assert missing.returncode == 1 and "plans/missing.yaml" in missing.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; .ci/run runs the suite as a normal user")
def test_an_unreadable_plan_is_reported_in_the_batch_and_the_others_run(frozen_project):
    (frozen_project.root / "plans/locked.yaml").write_text("id: locked\n")
    (frozen_project.root / "plans/locked.yaml").chmod(0)
    done = cli(frozen_project, "run", PLAN, "plans/locked.yaml", "--json", timeout=900)
    assert done.returncode == 1, done.stderr
    first, locked = json.loads(done.stdout)
    assert first["status"] == "COMPLETED" and "plans/locked.yaml" in locked["error"]
    assert "ermission denied" in locked["error"], locked["error"]
