"""publication.py: a run killed, starved of disk or overlapped at any step of publishing is finished by
the next command — nothing half-published, nothing lost, no result altered, index = folders = ledger."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from impactbook.audit import verify
from impactbook.faults import FAULT_ENV, POINTS
from impactbook.freezing import freeze_plan
from impactbook.index import RunIndex
from impactbook.ledger import Ledger
from impactbook.store import published_runs, publishing_mark
from conftest import DATA_PATH, PLAN, cli, make_project, read_json, run

EXPECTED = {"conversion": "CONFIRMED", "revenue_per_user": "CONFIRMED", "revenue_per_session": "CONFIRMED"}
COMPLETE_FROM = POINTS.index("publish.record")  # from here on the result is complete and must survive as is


def consistent(project) -> dict[str, dict]:
    """index = folders = ledger, every folder sealed and verified; returns run id -> run.json."""
    report = verify(project)
    assert report.intact, report.problems
    folders = {f.name for f in published_runs(project)}
    ledger = Ledger(project.ledger_path).runs()
    index = {row["run_id"] for row in RunIndex(project.index_path).rows()}
    assert folders == set(ledger) == index
    if project.staging_dir.exists():
        assert not list(project.staging_dir.iterdir()), "no staging folder is left behind"
    for folder in published_runs(project):
        assert not folder.stat().st_mode & 0o222 and all(not p.stat().st_mode & 0o222 for p in folder.iterdir())
    return {name: read_json(project.runs_dir / name / "run.json") for name in folders}


@pytest.mark.parametrize("point", [*POINTS, "notebook.saved#3"])
def test_a_kill_at_any_step_is_finished_by_the_next_command(frozen_project, point):
    killed = cli(frozen_project, "run", PLAN, env={FAULT_ENV: f"kill@{point}"})
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
    for folder in published_runs(frozen_project):  # whatever is published is whole
        assert (folder / "SHA256SUMS").is_file() and (folder / "run.json").is_file()
    after = cli(frozen_project, "runs", "list", "--json")
    assert after.returncode == 0, after.stderr
    records = consistent(frozen_project)
    if point == "staging.created":  # killed before the run had a record: nothing to publish
        assert records == {} and "discarded" in after.stderr
        return
    [record] = records.values()
    if POINTS.index(point.split("#")[0]) >= COMPLETE_FROM:
        assert record["status"] == "COMPLETED" and record["decision"]["action"] == "ship"
        assert {v["metric"]: v["verdict"] for v in record["verdicts"]} == EXPECTED
        assert not any("interrupted" in e for e in record["errors"])
    else:
        assert record["status"] == "FAILED" and record["errors"][0].startswith("interrupted: the process running "
                                                                               "it was killed"), record["errors"]
        assert {v["verdict"] for v in record["verdicts"]} == {"INADMISSIBLE"}
        assert record["decision"]["action"] == "hold"
    if point in ("publish.renamed", "publish.sealed", "publish.ledgered"):
        assert "recorded run" in after.stderr or "index:" in after.stderr


def test_a_run_killed_after_its_gate_refused_it_is_recovered_inadmissible_without_its_kernels_output(frozen_project):
    data = frozen_project.resolve(DATA_PATH)
    data.write_bytes(data.read_bytes() + data.read_bytes().splitlines(keepends=True)[-1])  # not the pinned bytes
    killed = cli(frozen_project, "run", PLAN, env={FAULT_ENV: "kill@gates.checked"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = cli(frozen_project, "runs", "list", "--json")
    assert after.returncode == 0, after.stderr
    [record] = consistent(frozen_project).values()
    assert record["status"] == "INADMISSIBLE", record["errors"]
    assert record["errors"][0].startswith("interrupted: the process was killed after its gate refused the run")
    assert any("does not match its pin" in reason for reason in record["gate"]["inadmissible"])
    assert "SIMULATED" in record["labels"] and record["decision"]["action"] == "hold"
    assert {v["verdict"] for v in record["verdicts"]} == {"INADMISSIBLE"}
    folder = frozen_project.runs_dir / record["run_id"]
    assert not (folder / "notebook.ipynb").exists() and not (folder / "kernel.log").exists()
    assert "as INADMISSIBLE" in after.stderr
    assert cli(frozen_project, "verify").returncode == 0


def test_a_completed_result_that_missed_only_its_rename_keeps_its_scraps(frozen_project):
    reference = json.loads(cli(frozen_project, "run", PLAN, "--json").stdout)
    cli(frozen_project, "run", PLAN, env={FAULT_ENV: "kill@publish.sums"})
    assert cli(frozen_project, "verify").returncode == 3, "verify names the interrupted run until it is finished"
    cli(frozen_project, "runs", "list")
    records = consistent(frozen_project)
    recovered = next(name for name in records if name != reference["run_id"])
    assert (frozen_project.runs_dir / recovered / "scraps.json").read_bytes() == \
        (frozen_project.runs_dir / reference["run_id"] / "scraps.json").read_bytes()


def test_a_truncated_notebook_is_kept_as_an_opaque_file_and_never_parsed(frozen_project):
    cli(frozen_project, "run", PLAN, env={FAULT_ENV: "kill@notebook.saved#4"})
    [staging] = [p for p in frozen_project.staging_dir.iterdir() if not p.name.startswith(".")]
    notebook = staging / "notebook.ipynb"
    notebook.write_bytes(notebook.read_bytes()[:5000])  # what a kill in the middle of a plain write leaves
    after = cli(frozen_project, "runs", "list")
    assert after.returncode == 0, after.stderr
    [record] = consistent(frozen_project).values()
    folder = frozen_project.runs_dir / record["run_id"]
    assert record["status"] == "FAILED" and "unreadable and kept as is" in record["errors"][0]
    assert (folder / "notebook.ipynb.partial").read_bytes() == notebook.read_bytes() if notebook.exists() else True
    assert not (folder / "notebook.ipynb").exists()
    assert cli(frozen_project, "run", PLAN).returncode == 0, "the project is not bricked"


@pytest.mark.parametrize("write", ["draft.json", "template.ipynb", "notebook.ipynb", "scraps.json", "report.html",
                                   "run.json", "SHA256SUMS"])
def test_a_full_disk_at_any_write_says_so_in_one_line_and_the_next_command_recovers(frozen_project, write):
    full = cli(frozen_project, "run", PLAN, env={FAULT_ENV: f"enospc@write:{write}"})
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert lines[-1].startswith("error: runs/.staging/") and ": no space left on device (" in lines[-1], lines
    assert "free)" in lines[-1] and "Traceback" not in full.stderr
    for folder in published_runs(frozen_project):
        assert (folder / "SHA256SUMS").is_file()
    assert cli(frozen_project, "runs", "list").returncode == 0
    records = consistent(frozen_project)
    if write in ("draft.json", "template.ipynb"):  # written before the run had a record: nothing started
        assert records == {} and not list(frozen_project.staging_dir.iterdir())
        return
    [record] = records.values()
    if write == "SHA256SUMS":  # after the final run.json: the result was complete and is kept as it was
        assert record["status"] == "COMPLETED" and {v["metric"]: v["verdict"] for v in record["verdicts"]} == EXPECTED
        return
    assert record["status"] == "FAILED" and "No space left on device" in record["errors"][0], record["errors"]


def test_a_full_disk_at_the_ledger_leaves_the_ledger_whole_and_the_run_is_recorded_next(frozen_project):
    before = frozen_project.ledger_path.read_bytes()
    full = cli(frozen_project, "run", PLAN, env={FAULT_ENV: "enospc@ledger.append"})
    assert full.returncode == 1 and "error: runs/: no space left on device" in full.stderr, full.stderr
    assert frozen_project.ledger_path.read_bytes() == before, "a failed append leaves no partial line"
    assert cli(frozen_project, "verify").returncode == 3
    assert cli(frozen_project, "runs", "list").returncode == 0
    [record] = consistent(frozen_project).values()
    assert record["status"] == "COMPLETED"
    assert Ledger(frozen_project.ledger_path).runs()[record["run_id"]]["recovered"] is True


def test_a_full_disk_at_the_index_does_not_fail_the_run(frozen_project):
    done = cli(frozen_project, "run", PLAN, env={FAULT_ENV: "enospc@index.add"})
    assert done.returncode == 0 and "the index could not be updated" in done.stderr, done.stderr
    assert cli(frozen_project, "verify").returncode == 3, "verify reports the missing row until it is added"
    listed = cli(frozen_project, "runs", "list", "--json")
    assert len(json.loads(listed.stdout)) == 1 and "index: added the row" in listed.stderr
    consistent(frozen_project)


def test_a_torn_ledger_line_is_not_an_entry_and_the_next_append_removes_it(frozen_project):
    ledger = Ledger(frozen_project.ledger_path)
    entries = ledger.entries()
    with open(frozen_project.ledger_path, "ab") as handle:
        handle.write(b'{"seq": 99, "kind": "run", "tor')
    assert ledger.entries() == entries and ledger.problems() == []
    assert cli(frozen_project, "run", PLAN).returncode == 0
    consistent(frozen_project)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("point", ["inputs.checking", "notebook.saved#2"])
def test_children_die_with_a_killed_run(frozen_project, point):
    process = subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN], cwd=frozen_project.root,
                               env={**os.environ, FAULT_ENV: f"sleep=60@{point}"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, children = time.time() + 120, []
    while time.time() < deadline and not children:
        time.sleep(0.5)
        children = [c for c in _children(process.pid) if _alive(c)]
        if point.startswith("notebook") and not list(frozen_project.staging_dir.glob("*/notebook.ipynb")):
            children = []
    assert children, "the run never started its child process"
    process.kill()
    process.wait(timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.2)
    assert not any(_alive(c) for c in children), "an orphan outlived the killed run"


def test_overlapping_runs_are_never_mistaken_for_dead_ones(frozen_project):
    processes = []
    for number in range(8):
        processes.append(subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN, "--json"],
                                          cwd=frozen_project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
        time.sleep(1.5)
        if number == 2:  # one run lingers between its rename and its ledger entry while the others start
            processes.append(subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN, "--json"],
                                              cwd=frozen_project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True, env={**os.environ, FAULT_ENV: "sleep=15@publish.renamed"}))
    results = [p.communicate(timeout=600) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in results if "error" in err]
    ids = [json.loads(out)["run_id"] for out, _ in results]
    assert len(set(ids)) == 9
    assert not any("recover" in err or "recorded run" in err for _, err in results), "a live run was recovered"
    records = consistent(frozen_project)
    assert set(records) == set(ids)
    assert all(r["status"] == "COMPLETED" and not r["errors"] for r in records.values())


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; .ci/run runs the suite as a normal user")
@pytest.mark.parametrize("locked", ["runs", "staging", "ledger"])
def test_a_read_only_runs_folder_or_ledger_is_named_before_the_kernel_starts(frozen_project, locked):
    """Refused up front: found at the final rename, the run did all its work only to wait. (Permissions taken
    away during a run are met by recovery: test_an_injected_permission_error_is_one_line_naming_the_path.)"""
    import getpass

    frozen_project.staging_dir.mkdir(exist_ok=True)
    path, shown = {"runs": (frozen_project.runs_dir, "runs"), "staging": (frozen_project.staging_dir, "runs/.staging"),
                   "ledger": (frozen_project.ledger_path, "runs/ledger.jsonl")}[locked]
    mode = path.stat().st_mode & 0o777
    path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        refused = cli(frozen_project, "run", PLAN)
    finally:
        path.chmod(mode)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"error: {shown}: permission denied for user {getpass.getuser()}"), refused.stderr
    assert "kernel" not in refused.stderr and "internal error" not in refused.stderr
    assert consistent(frozen_project) == {} and cli(frozen_project, "run", PLAN).returncode == 0


def test_an_injected_permission_error_is_one_line_naming_the_path(frozen_project):
    refused = cli(frozen_project, "run", PLAN, env={FAULT_ENV: "eacces@ledger.append"})
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("error: runs/ledger.jsonl: permission denied for user ")
    assert cli(frozen_project, "runs", "list").returncode == 0
    consistent(frozen_project)


def _user_namespaces_work() -> bool:
    import shutil
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp 2>/dev/null"],
                           capture_output=True)
    return probe.returncode == 0


SCENARIO = """
set -u
cd "$PROJECT"
scratch=$(mktemp -d)
cp -a runs/. "$scratch/"
mount -t tmpfs -o size=$SIZE tmpfs runs
cp -a "$scratch/." runs/
if [ -n "${FILL:-}" ]; then  # the disk fills up completely once the run has begun: even a small note cannot be added
  IMPACTBOOK_FAULT="sleep=3@staging.visible" "$PYTHON" -m impactbook run plans/example.yaml > "$scratch/out" \
    2> "$scratch/err" &
  for _ in $(seq 200); do ls runs/.staging/2* > /dev/null 2>&1 && break; sleep 0.05; done  # it has its run id
  dd if=/dev/zero of=runs/filler bs=4k 2> /dev/null; wait $!; echo "run=$?"
  rm -f runs/filler
else
  "$PYTHON" -m impactbook run plans/example.yaml > "$scratch/out" 2> "$scratch/err"; echo "run=$?"
fi
tail -n 1 "$scratch/err"
after=$(mktemp -d); cp -a runs/. "$after/"; umount runs  # space again (a normal user's namespace cannot
mount -t tmpfs -o size=64m tmpfs runs; cp -a "$after/." runs/   # remount a tmpfs larger, so: move to a bigger one)
"$PYTHON" -m impactbook runs list > /dev/null 2>&1; echo "list=$?"
cat runs/*/run.json 2>/dev/null | grep -o '"[^"]*the process [^"]*"' | sed 's/^/cause=/'
"$PYTHON" -m impactbook verify > "$scratch/verify" 2>&1; echo "verify=$?"
cat "$scratch/verify"
"""


@pytest.mark.skipif(not _user_namespaces_work(), reason="this machine allows no user namespace to mount a small tmpfs "
                                                       "in (the injected ENOSPC tests above still run)")
@pytest.mark.parametrize("size", ["48k", "150k", "400k", "700k", "4m filled during the run"])
def test_a_real_full_disk_is_one_clear_line_and_the_next_command_recovers(frozen_project, size):
    size, _, fill = size.partition(" ")
    done = subprocess.run(["unshare", "-Urm", "bash", "-c", SCENARIO], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PROJECT": str(frozen_project.root), "SIZE": size, "FILL": fill,
                               "PYTHON": sys.executable})
    lines = done.stdout.splitlines()
    outcome = dict(line.split("=", 1) for line in lines if line.split("=", 1)[0] in ("run", "list", "verify"))
    assert outcome["run"] in ("0", "1"), done.stdout + done.stderr
    if outcome["run"] == "1":
        last = lines[lines.index("run=1") + 1]
        assert last.startswith("error: runs") and "no space left on device (" in last, last
    causes = [line for line in lines if line.startswith("cause=")]  # of a run recovered after the disk filled
    assert all("No space left on device" in cause and "was killed" not in cause for cause in causes), causes
    assert causes or not fill, done.stdout  # filled during the run: the run stopped, and says why
    assert outcome["list"] == "0" and outcome["verify"] == "0", done.stdout


def test_a_sealed_run_folder_put_in_by_hand_is_never_ledgered_as_recovered(frozen_project, tmp_path):
    other = make_project(tmp_path / "other")
    freeze_plan(other, PLAN)
    foreign = run(other).folder
    shutil.copytree(foreign, frozen_project.runs_dir / foreign.name)  # the copy is writable: copytree keeps modes
    listed = cli(frozen_project, "runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"run {foreign.name}: runs/{foreign.name} has no ledger entry and was not published by this project" \
        in listed.stderr
    assert "[NOT IN LEDGER]" in listed.stdout and foreign.name in listed.stdout
    assert foreign.name not in Ledger(frozen_project.ledger_path).runs()  # nothing vouches for it
    again = cli(frozen_project, "runs", "list")
    assert again.returncode == 0 and again.stderr == "" and "[NOT IN LEDGER]" in again.stdout  # said once
    verified = cli(frozen_project, "verify")
    assert verified.returncode == 3 and f"runs/{foreign.name}: not recorded in the ledger" in verified.stdout
    assert cli(frozen_project, "gate", foreign.name).returncode == 3
    mine = run(frozen_project)  # the project's own runs are published and ledgered as ever
    assert mine.record.run_id in Ledger(frozen_project.ledger_path).runs()


def test_a_run_of_another_project_copied_into_staging_is_moved_aside_not_published(frozen_project, tmp_path):
    other = make_project(tmp_path / "other")
    (other.root / PLAN).write_text((other.root / PLAN).read_text().replace("alpha: 0.05", "alpha: 0.04"))
    freeze_plan(other, PLAN)  # a plan version this project's ledger never froze
    foreign = run(other).folder
    copy = frozen_project.staging_dir / foreign.name
    shutil.copytree(foreign, copy)
    for path in (copy, *copy.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (copy / "SHA256SUMS").unlink()  # as a staging folder looks before publication
    listed = cli(frozen_project, "runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"moved runs/.staging/{foreign.name} aside to runs/.staging/.damaged/{foreign.name}: its run records " \
           "plan example version 1" in listed.stderr and "ledger never froze" in listed.stderr, listed.stderr
    assert not (frozen_project.runs_dir / foreign.name).exists()
    assert foreign.name not in Ledger(frozen_project.ledger_path).runs()
    verified = cli(frozen_project, "verify")
    assert verified.returncode == 3 and f"runs/.staging/.damaged/{foreign.name}: a staging folder" in verified.stdout


def test_a_tampered_run_is_never_recorded_or_indexed_from_its_own_edited_record(frozen_project):
    """Edit a published run's decision and cut its ledger entry: the next command must not write the edited
    values into the ledger or the index (which would hide the cut); verify and gate keep saying no."""
    done = cli(frozen_project, "run", PLAN, "--json")
    run_id = json.loads(done.stdout)["run_id"]
    folder = frozen_project.runs_dir / run_id
    folder.chmod(0o755)
    (folder / "run.json").chmod(0o644)
    record = read_json(folder / "run.json")
    record["decision"]["action"] = "rollback"
    (folder / "run.json").write_text(json.dumps(record), encoding="utf-8")
    lines = frozen_project.ledger_path.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[-1])["run_id"] == run_id
    frozen_project.ledger_path.write_bytes(b"".join(lines[:-1]))
    listed = cli(frozen_project, "runs", "list", "--json")
    assert f"run {run_id} does not match its SHA256SUMS" in listed.stderr, listed.stderr
    assert run_id not in Ledger(frozen_project.ledger_path).runs()
    rows = {row["run_id"]: row for row in RunIndex(frozen_project.index_path).rows()}
    assert rows[run_id]["decision"] == "ship"  # the row written at publication, never "corrected" from the edit
    problems = verify(frozen_project).problems
    assert any("content does not match SHA256SUMS" in p for p in problems)
    assert any(run_id in p and "ledger" in p for p in problems), problems
    assert cli(frozen_project, "gate", run_id).returncode == 3


def test_the_reconciliation_hands_on_the_index_rows_only_when_it_changed_none(frozen_project):
    """A command that lists every run (the site) reuses the rows the reconciliation just checked, never stale ones."""
    from conftest import run
    from impactbook.publication import reconcile

    run_id = run(frozen_project).record.run_id
    index = RunIndex(frozen_project.index_path)
    assert reconcile(frozen_project).rows == index.rows() != []
    row = index.rows()[0]
    index.remove([run_id])
    index_row_gone = reconcile(frozen_project)
    assert index_row_gone.index_rows == [run_id] and index_row_gone.rows is None
    assert index.rows() == [row]


def test_the_reconciliation_hands_on_the_ledger_only_with_the_rows_and_when_it_appended_nothing(frozen_project):
    """The site parses the ledger the reconciliation just read (after the rows it hands on, so every row has
    its entry), never a copy older than an entry it appended."""
    from conftest import run
    from impactbook.publication import reconcile

    run_id = run(frozen_project).record.run_id
    ledger = Ledger(frozen_project.ledger_path)
    handed = reconcile(frozen_project).ledger
    assert handed.data == frozen_project.ledger_path.read_bytes() and handed.entries == ledger.entries()
    lines = frozen_project.ledger_path.read_bytes().splitlines(keepends=True)
    frozen_project.ledger_path.write_bytes(b"".join(lines[:-1]))  # the run's entry was never appended
    publishing_mark(frozen_project.staging_dir, run_id).write_text("")  # (as its killed process left it)
    finishing = reconcile(frozen_project)
    assert finishing.finished == [run_id] and finishing.ledger is None
    assert reconcile(frozen_project).ledger.runs().keys() == ledger.runs().keys() == {run_id}
    RunIndex(frozen_project.index_path).remove([run_id])
    correcting = reconcile(frozen_project)  # the rows are read again by the site, so is the ledger
    assert correcting.index_rows == [run_id] and correcting.rows is None and correcting.ledger is None
