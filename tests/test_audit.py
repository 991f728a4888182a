"""audit.py: verify recomputes artifact hashes and the ledger chain, naming what does not match."""

from __future__ import annotations

import json
import os

from impactbook.audit import verify
from impactbook.ledger import Ledger
from conftest import cli, run


def _force_write(path, text):
    os.chmod(path, 0o644)
    path.write_text(text)


def test_tampered_artifact_is_named(frozen_project):
    outcome = run(frozen_project)
    scraps = outcome.folder / "scraps.json"
    _force_write(scraps, scraps.read_text().replace("CONFIRMED", "REFUTED", 1))
    report = verify(frozen_project)
    assert report.problems == [f"runs/{outcome.record.run_id}/scraps.json: content does not match SHA256SUMS"]
    done = cli(frozen_project, "verify")
    assert done.returncode == 3
    assert f"runs/{outcome.record.run_id}/scraps.json: content does not match SHA256SUMS" in done.stdout


def test_rewritten_sha256sums_is_caught_by_the_ledger(frozen_project):
    outcome = run(frozen_project)
    os.chmod(outcome.folder, 0o755)
    run_json = outcome.folder / "run.json"
    _force_write(run_json, run_json.read_text().replace('"ship"', '"rollback"'))
    from impactbook.store import sha256sums
    _force_write(outcome.folder / "SHA256SUMS", sha256sums(outcome.folder))
    os.chmod(outcome.folder, 0o555)
    problems = verify(frozen_project).problems
    seq = Ledger(frozen_project.ledger_path).runs()[outcome.record.run_id]["seq"]
    assert problems == [f"runs/{outcome.record.run_id}/SHA256SUMS: does not match the hash in ledger entry {seq}"]


def test_added_and_deleted_files_are_named(frozen_project):
    outcome = run(frozen_project)
    os.chmod(outcome.folder, 0o755)
    (outcome.folder / "extra.txt").write_text("slipped in")
    (outcome.folder / "report.html").unlink()
    problems = verify(frozen_project, [outcome.record.run_id[:20]]).problems
    assert f"runs/{outcome.record.run_id}/report.html: missing" in problems
    assert f"runs/{outcome.record.run_id}/extra.txt: not listed in SHA256SUMS (added after publication)" in problems


def test_folders_links_and_pipes_added_to_a_run_folder_are_named(frozen_project, tmp_path):
    outcome = run(frozen_project)
    folder, run_id = outcome.folder, outcome.record.run_id
    os.chmod(folder, 0o755)
    (folder / "subdir").mkdir()
    (folder / "subdir" / "evil.html").write_text("payload")
    (folder / "dangling").symlink_to(tmp_path / "nowhere")
    (folder / "etc").symlink_to("/etc")
    os.mkfifo(folder / "fifo")
    (folder / "report.html").unlink()
    os.mkfifo(folder / "report.html")  # a pipe where a recorded file was: named, never read (it would block)
    os.chmod(folder, 0o555)
    problems = verify(frozen_project, [run_id]).problems
    for name in ("subdir", "dangling", "etc", "fifo"):
        assert f"runs/{run_id}/{name}: not listed in SHA256SUMS (added after publication)" in problems, problems
    assert f"runs/{run_id}/report.html: content does not match SHA256SUMS" in problems
    assert cli(frozen_project, "verify").returncode == 3


def test_a_file_cut_from_the_manifest_is_not_called_added(frozen_project):
    outcome = run(frozen_project)
    folder, run_id = outcome.folder, outcome.record.run_id
    os.chmod(folder, 0o755)
    sums = folder / "SHA256SUMS"
    os.chmod(sums, 0o644)
    sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines() if "report.html" not in line))
    os.chmod(folder, 0o555)
    problems = verify(frozen_project, [run_id]).problems
    assert problems[0].startswith(f"runs/{run_id}/SHA256SUMS: does not match the hash in ledger entry ")
    assert f"runs/{run_id}/report.html: not listed in SHA256SUMS, which was itself changed after publication: " \
           "added, or its line removed" in problems
    assert not any("added after publication" in p for p in problems), problems


def test_tampered_ledger_entry_is_named(frozen_project):
    run(frozen_project)
    lines = frozen_project.ledger_path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["decision"] = "rollback"
    lines[1] = json.dumps(entry)
    frozen_project.ledger_path.write_text("\n".join(lines) + "\n")
    done = cli(frozen_project, "verify", "--json")
    assert done.returncode == 3
    result = json.loads(done.stdout)
    assert result["intact"] is False
    assert "ledger.jsonl entry 2: content does not match its hash (the entry was edited)" in result["problems"]


def test_missing_run_folder_is_named(frozen_project):
    import shutil
    outcome = run(frozen_project)
    os.chmod(outcome.folder, 0o755)
    shutil.rmtree(outcome.folder)
    assert verify(frozen_project).problems == [
        f"runs/{outcome.record.run_id}: ledger records this run but its folder is missing",
        f"runs/index.sqlite: run {outcome.record.run_id} has a row but no folder"]
    for named in (outcome.record.run_id, outcome.record.run_id[:12]):  # gate: does not verify (was "no run", 1)
        gate = cli(frozen_project, "gate", named)
        assert gate.returncode == 3, gate.stderr
        assert f"runs/{outcome.record.run_id}: ledger records this run but its folder is missing" in gate.stderr
    assert cli(frozen_project, "gate", "29991231").returncode == 1  # no such run at all


def test_a_run_of_a_plan_this_ledger_never_froze_is_named_even_when_ledgered(frozen_project, tmp_path):
    from conftest import PLAN, make_project
    from impactbook.freezing import freeze_plan
    from impactbook.publication import run_ledger_body
    from impactbook.hashing import sha256_file
    import shutil

    other = make_project(tmp_path / "other")
    (other.root / PLAN).write_text((other.root / PLAN).read_text().replace("alpha: 0.05", "alpha: 0.04"))
    freeze_plan(other, PLAN)  # another project's plan: not a version this ledger froze
    foreign = run(other)
    shutil.copytree(foreign.folder, frozen_project.runs_dir / foreign.record.run_id)
    (frozen_project.runs_dir / foreign.record.run_id).chmod(0o555)
    body = run_ledger_body(foreign.record, sha256_file(foreign.folder / "SHA256SUMS"))
    seq = Ledger(frozen_project.ledger_path).append("run", body)["seq"]  # (as a release before this check did)
    problem = (f"runs/{foreign.record.run_id}: ran plan example version 1 ({foreign.record.plan.sha256[:12]}…), "
               f"which this ledger never froze (ledger entry {seq}): not a run of this project's preregistered plans")
    assert problem in verify(frozen_project).problems
    gate = cli(frozen_project, "gate", foreign.record.run_id)
    assert gate.returncode == 3 and "which this ledger never froze" in gate.stderr, gate.stderr


def test_a_run_publishing_right_now_is_in_progress_not_a_problem(frozen_project):
    """Between its rename into runs/ and its ledger entry a live run holds its folder's lock: verify, run
    beside it (CI checking while another job publishes), must not call it unrecorded or missing from the index."""
    import subprocess
    import sys
    import time
    from conftest import PLAN
    from impactbook.faults import FAULT_ENV

    publishing = subprocess.Popen([sys.executable, "-m", "impactbook", "run", PLAN], cwd=frozen_project.root,
                                  env={**os.environ, FAULT_ENV: "sleep=600@publish.renamed"},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list(frozen_project.runs_dir.glob("2*")):
            assert publishing.poll() is None, "the run ended before its rename"
            time.sleep(0.2)
        [folder] = list(frozen_project.runs_dir.glob("2*"))
        report = verify(frozen_project)
        assert report.intact and report.in_progress == [folder.name], report.problems
        done = cli(frozen_project, "verify", "--json")
        assert done.returncode == 0 and json.loads(done.stdout)["in_progress"] == [folder.name], done.stdout
    finally:
        publishing.terminate()
        publishing.wait(timeout=120)
    assert cli(frozen_project, "runs", "list").returncode == 0
    assert verify(frozen_project).intact and Ledger(frozen_project.ledger_path).runs().keys() == {folder.name}


def test_a_run_killed_after_publishing_is_said_to_be_finished_by_the_next_command(frozen_project):
    """Killed between its rename and its ledger entry (its publishing mark is there): verify names it once,
    saying the next command records it, and does not also list it as missing from the index."""
    from conftest import PLAN
    from impactbook.faults import FAULT_ENV

    killed = cli(frozen_project, "run", PLAN, env={FAULT_ENV: "kill@publish.renamed"})
    assert killed.returncode == -9, killed.stderr
    [folder] = list(frozen_project.runs_dir.glob("2*"))
    report = verify(frozen_project)
    assert report.problems == [f"runs/{folder.name}: not recorded in the ledger yet: its run was stopped after it "
                               "was published, before its ledger entry; the next impactbook command (e.g. "
                               "`impactbook runs list`) appends the entry and indexes it"], report.problems
    assert cli(frozen_project, "runs", "list").returncode == 0
    assert verify(frozen_project).intact and folder.name in Ledger(frozen_project.ledger_path).runs()


def test_a_manifest_that_is_not_utf8_is_a_finding_not_a_crash(frozen_project):
    """A SHA256SUMS rewritten with bytes that are not UTF-8 crashed verify, gate and the index rebuild with
    UnicodeDecodeError, and then every command (the rebuild left the run out, and each command rebuilt)."""
    outcome = run(frozen_project)
    sums = outcome.folder / "SHA256SUMS"
    os.chmod(outcome.folder, 0o755)
    os.chmod(sums, 0o644)
    sums.write_bytes(b"\xff\xfe x\n")
    os.chmod(sums, 0o444)
    os.chmod(outcome.folder, 0o555)
    done = cli(frozen_project, "verify")
    assert done.returncode == 3 and "SHA256SUMS: does not match the hash in ledger entry" in done.stdout, done
    assert "run.json: not listed in SHA256SUMS" in done.stdout and "Traceback" not in done.stderr
    assert cli(frozen_project, "gate", outcome.record.run_id).returncode == 3
    rebuilt = cli(frozen_project, "index", "rebuild")
    assert "its SHA256SUMS is not the one the ledger recorded" in rebuilt.stderr, rebuilt.stderr
    assert cli(frozen_project, "runs", "list").returncode == 0


def test_runs_show_and_report_say_that_a_tampered_run_does_not_verify(frozen_project):
    """run.json edited to ship (folder made writable and sealed again): runs show and report showed it as
    genuine with exit 0; only gate caught it."""
    outcome = run(frozen_project)
    run_id, record = outcome.record.run_id, outcome.folder / "run.json"
    os.chmod(outcome.folder, 0o755)
    _force_write(record, record.read_text().replace('"ship"', '"rollback"'))
    os.chmod(record, 0o444)
    os.chmod(outcome.folder, 0o555)
    said = f"runs/{run_id}/run.json: content does not match SHA256SUMS"
    shown = cli(frozen_project, "runs", "show", run_id)
    assert shown.returncode == 3 and "does not verify, so what follows cannot be trusted" in shown.stderr
    assert said in shown.stderr and "decision rollback" in shown.stdout
    as_json = cli(frozen_project, "runs", "show", run_id, "--json")
    summary = json.loads(as_json.stdout)
    assert as_json.returncode == 3 and summary["verified"] is False and said in summary["problems"]
    rendered = cli(frozen_project, "report", run_id)
    assert rendered.returncode == 3, rendered.stderr
    html = open(rendered.stdout.strip()).read()
    assert "This run does not verify" in html and said in html
    assert html.index("This run does not verify") < html.index("Decision: ROLLBACK")
