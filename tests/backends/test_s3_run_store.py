"""backends/s3_store.py: runs published to a real S3-compatible server (moto's, on localhost) stay write-once,
are verified by re-hashing from the store, survive an interrupted publication, and can be read back."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys

import boto3
import pytest

from impactbook.audit import verify
from impactbook.backends.run_store import STORAGE_ENV, RunStores, default_run_stores, open_run_store, storage_url
from impactbook.backends.local_store import LocalRunStore
from impactbook.backends.s3_store import S3RunStore
from impactbook.errors import ProjectError, StorageError
from impactbook.faults import FAULT_ENV
from impactbook.hashing import S3_TIMEOUT_ENV
from impactbook.index import load_record, open_index, rebuild, run_folder
from impactbook.ledger import Ledger
from impactbook.publication import reconcile
from impactbook.record import GATE_EXIT
from impactbook.store import published_runs
from conftest import PLAN, cli, run
import s3_server

s3_endpoint, bucket = s3_server.s3_endpoint, s3_server.bucket  # the shared fixtures: a server, a fresh bucket


@pytest.fixture
def s3_project(frozen_project, bucket, monkeypatch):
    monkeypatch.setenv(STORAGE_ENV, f"s3://{bucket}/runs")
    return frozen_project


def _objects(bucket: str, prefix: str) -> dict[str, bytes]:
    client = boto3.client("s3")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {key[len(prefix):]: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def _remove_local(folder) -> None:
    folder.chmod(stat.S_IRWXU)
    shutil.rmtree(folder)


def test_local_folder_is_the_default_store(frozen_project, monkeypatch):
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    store = open_run_store(frozen_project)
    assert isinstance(store, LocalRunStore) and not store.remote
    assert storage_url(frozen_project) == frozen_project.runs_dir.resolve().as_uri()
    outcome = run(frozen_project)
    assert store.published() == [outcome.record.run_id] and store.problems(outcome.record.run_id) == []
    with pytest.raises(ProjectError, match="no run-store backend for 'gs'"):
        default_run_stores().open("gs://bucket/runs", frozen_project)
    with pytest.raises(ProjectError, match="no run-store backend"):
        RunStores().open("s3://bucket/runs", frozen_project)  # a registry knows only what it was given


def test_run_published_to_s3_is_verified_from_the_store_and_read_back(s3_project, bucket):
    outcome = run(s3_project)
    run_id = outcome.record.run_id
    stored = _objects(bucket, f"runs/{run_id}/")
    local = {p.name: p.read_bytes() for p in outcome.folder.iterdir()}
    assert stored == local and "SHA256SUMS" in stored and "run.json" in stored
    entry = Ledger(s3_project.ledger_path).runs()[run_id]
    assert entry["sha256sums"] == hashlib.sha256(stored["SHA256SUMS"]).hexdigest()
    store = open_run_store(s3_project)
    assert store.remote and store.published() == [run_id] and store.unfinished() == []
    assert verify(s3_project).problems == []

    _remove_local(outcome.folder)  # another machine: only the ledger and the store
    assert rebuild(s3_project) == 1
    assert open_index(s3_project).find("latest")["run_id"] == run_id
    folder = run_folder(s3_project, run_id)
    assert folder.parent.name == ".cache" and folder.name.startswith(run_id)
    assert load_record(folder) == outcome.record
    assert not folder.stat().st_mode & 0o222  # a read-only copy
    assert verify(s3_project).problems == []
    shown = cli(s3_project, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert run_id in shown.stdout
    rendered = cli(s3_project, "report", run_id)
    assert rendered.returncode == 0, rendered.stderr
    assert (s3_project.rendered_dir / f"{run_id}.html").is_file()
    gate = cli(s3_project, "gate", run_id, "--json")
    assert json.loads(gate.stdout)["verified"] is True and json.loads(gate.stdout)["problems"] == []
    assert gate.returncode == GATE_EXIT[outcome.record.decision.action], gate.stderr
    from impactbook.compare import compare_runs

    compared = compare_runs(s3_project, [run_id, "latest"])  # compare reads the fetched copy too
    assert compared.metrics and all(r["run_id"] == run_id for m in compared.metrics for r in m.rows)
    from impactbook.site.build import build_site

    site = build_site(s3_project, s3_project.root / "site")  # so does the site, verifying what it fetched
    page = (site.out / "runs" / f"{run_id}.html").read_text()
    assert site.runs == site.rendered == 1 and "All artifacts match" in page and "Decision:" in page
    assert f'href="runs/{run_id}.html"' in (site.out / "index.html").read_text()
    assert build_site(s3_project, site.out).rendered == 0
    unreachable = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_server.free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    cli(s3_project, "runs", "list", env=unreachable)  # a store out of reach is no reason to forget its runs
    assert [row["run_id"] for row in open_index(s3_project).rows()] == [run_id]


def test_a_fetched_copy_edited_in_the_cache_is_fetched_again_from_the_store(s3_project, bucket):
    """runs/.cache is a local copy: edited there (made writable, changed, made read-only), runs show and
    report showed the edit; the store is the truth."""
    outcome = run(s3_project)
    run_id = outcome.record.run_id
    _remove_local(outcome.folder)
    folder = run_folder(s3_project, run_id)
    record = folder / "run.json"
    folder.chmod(0o755)
    record.chmod(0o644)
    record.write_text(record.read_text().replace('"ship"', '"rollback"'))
    record.chmod(0o444)
    folder.chmod(0o555)
    shown = cli(s3_project, "runs", "show", run_id)
    assert shown.returncode == 0 and "decision ship" in shown.stdout, (shown.stdout, shown.stderr)
    assert run_folder(s3_project, run_id) == folder and load_record(folder) == outcome.record


def test_a_run_kept_only_in_the_store_is_reproduced_from_its_fetched_copy(s3_project, bucket):
    outcome = run(s3_project)
    _remove_local(outcome.folder)  # another machine: only the ledger and the store
    reproduced = cli(s3_project, "reproduce", outcome.record.run_id, "--json")
    assert reproduced.returncode == 0, reproduced.stderr
    result = json.loads(reproduced.stdout)
    assert result["reproduces"] == outcome.record.run_id and result["identical"] is True


def test_an_object_cut_from_the_stored_manifest_is_not_called_added(s3_project, bucket):
    run_id = run(s3_project).record.run_id
    client, key = boto3.client("s3"), f"runs/{run_id}/SHA256SUMS"
    sums = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    cut = "".join(line + "\n" for line in sums.splitlines() if "report.html" not in line)
    client.put_object(Bucket=bucket, Key=key, Body=cut.encode())  # a plain put, as someone with the keys could
    entry = Ledger(s3_project.ledger_path).runs()[run_id]
    expected = [f"s3://{bucket}/{key}: does not match the hash in ledger entry {entry['seq']}",
                f"s3://{bucket}/runs/{run_id}/report.html: not listed in SHA256SUMS, which was itself changed after "
                "publication: added, or its line removed"]
    assert [p for p in verify(s3_project, [run_id]).problems if p.startswith("s3://")] == expected


def test_tampered_and_deleted_objects_fail_verify_naming_the_key(s3_project, bucket):
    run_id = run(s3_project).record.run_id
    client, prefix = boto3.client("s3"), f"runs/{run_id}"
    client.put_object(Bucket=bucket, Key=f"{prefix}/scraps.json", Body=b'{"results": "REFUTED"}')  # plain put
    client.delete_object(Bucket=bucket, Key=f"{prefix}/report.html")
    expected = [f"s3://{bucket}/{prefix}/report.html: missing",
                f"s3://{bucket}/{prefix}/scraps.json: content does not match SHA256SUMS"]
    assert sorted(verify(s3_project).problems) == expected
    assert sorted(verify(s3_project, [run_id]).problems) == expected
    done = cli(s3_project, "verify")
    assert done.returncode == 3
    assert all(line in done.stdout for line in expected), done.stdout
    gate = cli(s3_project, "gate", run_id, "--json")  # what CI acts on is checked against the store too
    assert gate.returncode == 3 and sorted(json.loads(gate.stdout)["problems"]) == expected

    _remove_local(s3_project.runs_dir / run_id)  # another machine: the run can only be fetched, and is not whole
    gate = cli(s3_project, "gate", run_id, "--json")
    assert gate.returncode == 3, gate.stderr
    summary = json.loads(gate.stdout)
    assert summary["verified"] is False and summary["decision"] is None and sorted(summary["problems"]) == expected
    said = cli(s3_project, "gate", run_id)
    assert said.returncode == 3 and f"{run_id}: does not verify" in said.stderr
    assert all(line in said.stderr for line in expected), said.stderr
    refused = cli(s3_project, "reproduce", run_id)
    assert refused.returncode == 3 and "does not verify" in refused.stderr, refused.stderr


def test_interrupted_publication_is_not_published_is_reported_and_then_finished(s3_project, bucket):
    killed = cli(s3_project, "run", PLAN, env={FAULT_ENV: "kill@store.manifest"})
    assert killed.returncode != 0
    store = open_run_store(s3_project)
    [run_id] = store.unfinished()
    assert store.published() == [] and "SHA256SUMS" not in _objects(bucket, f"runs/{run_id}/")
    problems = verify(s3_project).problems
    assert f"s3://{bucket}/runs/{run_id}/: objects without SHA256SUMS: its publication to the store was " \
           "interrupted, so it is not published; the next impactbook command where it ran finishes it" in problems

    done = reconcile(s3_project)  # the next command, on the machine that still has the sealed local run
    assert done.stored == [run_id]
    assert store.published() == [run_id] and store.unfinished() == []
    assert verify(s3_project).problems == []


@pytest.mark.parametrize("point", ["publish.renamed", "publish.sealed"])
def test_a_run_killed_after_its_local_rename_is_finished_by_one_command(s3_project, bucket, point):
    """Killed before sealing: the next command sealed the folder but stored it only in the command after,
    so verify failed in between (index row missing, not in the ledger)."""
    killed = cli(s3_project, "run", PLAN, env={FAULT_ENV: f"kill@{point}"})
    assert killed.returncode == -9, killed.stderr
    done = reconcile(s3_project)
    [folder] = published_runs(s3_project)
    assert done.stored == [folder.name] and done.finished == [folder.name], done
    assert open_run_store(s3_project).published() == [folder.name]
    assert verify(s3_project).problems == []


def test_second_publish_of_a_run_id_is_refused(s3_project, bucket):
    outcome = run(s3_project)
    store = open_run_store(s3_project)
    before = _objects(bucket, "runs/")
    with pytest.raises(StorageError, match=f"run {outcome.record.run_id} is already published"):
        store.publish(outcome.record.run_id, outcome.folder)
    assert _objects(bucket, "runs/") == before


def test_an_object_with_other_content_is_never_overwritten(s3_project, bucket):
    outcome = run(s3_project)
    run_id = outcome.record.run_id
    client = boto3.client("s3")
    client.delete_object(Bucket=bucket, Key=f"runs/{run_id}/SHA256SUMS")  # as if never finished...
    client.put_object(Bucket=bucket, Key=f"runs/{run_id}/run.json", Body=b"{}")  # ...by another writer
    with pytest.raises(StorageError, match="run.json already exists in the store with other content") as caught:
        open_run_store(s3_project).publish(run_id, outcome.folder)
    assert caught.value.where == f"s3://{bucket}/runs/{run_id}/run.json"
    assert "SHA256SUMS" not in _objects(bucket, f"runs/{run_id}/")


class _DropsConditions:
    """A real boto3 client that leaves out If-None-Match: a server that does not honour conditional writes."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def put_object(self, **arguments):
        arguments.pop("IfNoneMatch", None)
        return self._client.put_object(**arguments)


def test_a_store_that_ignores_conditional_writes_is_refused(frozen_project, bucket):
    outcome = run(frozen_project)
    store = S3RunStore(bucket, "runs", client=_DropsConditions(boto3.client("s3")))
    with pytest.raises(StorageError, match="ignored If-None-Match"):
        store.publish(outcome.record.run_id, outcome.folder)
    assert store.published() == [] and store.unfinished() == []


def test_the_s3_backend_is_not_imported_by_a_local_project(frozen_project):
    probe = ("import sys; from impactbook.project import Project; from impactbook.backends.run_store import "
             "open_run_store; open_run_store(Project.find()).published(); "
             "print(sorted(m for m in ('boto3', 'botocore', 's3fs') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != STORAGE_ENV}
    shown = subprocess.run([sys.executable, "-c", probe], cwd=frozen_project.root, env=env, capture_output=True,
                           text=True, timeout=120)
    assert shown.stdout.strip() == "[]", shown.stderr


def test_a_store_out_of_reach_fails_the_run_and_the_next_command_stores_it(s3_project, bucket):
    unreachable = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_server.free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    refused = cli(s3_project, "run", PLAN, env=unreachable)
    assert refused.returncode != 0
    assert f"but not yet in s3://{bucket}/runs" in refused.stderr and "Traceback" not in refused.stderr
    [folder] = published_runs(s3_project)  # sealed here, not yet stored, not yet in the ledger
    assert open_run_store(s3_project).published() == [] and folder.name not in Ledger(s3_project.ledger_path).runs()
    still = cli(s3_project, "runs", "list", env=unreachable)  # the next command, the store still out of reach
    assert f"run {folder.name} is not in s3://{bucket}/runs yet: its ledger entry waits" in still.stderr
    assert folder.name not in Ledger(s3_project.ledger_path).runs()  # a ledgered run is a stored run
    told: list[str] = []
    done = reconcile(s3_project, progress=told.append)
    assert done.stored == [folder.name] and done.finished == [folder.name]
    assert f"stored run {folder.name} in s3://{bucket}/runs: it was published in runs/ but not yet there" in told[0]
    assert verify(s3_project).problems == []


def test_a_missing_bucket_still_names_the_run_that_waits_for_it(s3_project, bucket, monkeypatch):
    """NoSuchBucket is our StorageError, which was re-raised bare: the run was sealed in runs/ but neither
    its id nor the next step was said, and --json had no run_id."""
    monkeypatch.setenv(STORAGE_ENV, f"s3://{bucket}-gone/runs")
    refused = cli(s3_project, "run", PLAN, "--json")
    answer = json.loads(refused.stdout)
    [folder] = published_runs(s3_project)
    assert refused.returncode == 1 and answer["run_id"] == folder.name, answer
    assert f"run {folder.name} is published in runs/{folder.name} but not yet in s3://{bucket}-gone/runs" \
        in answer["error"] and "NoSuchBucket" in answer["error"], answer
    assert answer["hint"] == "the next impactbook command that reaches the store finishes it"


def test_a_store_that_never_answers_fails_within_the_s3_timeout_naming_it(s3_project, bucket):
    with s3_server.silent_server() as endpoint:  # (botocore's defaults waited 5 attempts x 60 s: 5 minutes)
        hung = {"AWS_ENDPOINT_URL": endpoint, S3_TIMEOUT_ENV: "0.5"}
        refused = cli(s3_project, "run", PLAN, env=hung, timeout=120)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert f"but not yet in s3://{bucket}/runs" in refused.stderr and "timeout" in refused.stderr, refused.stderr
        listed = cli(s3_project, "runs", "list", env=hung, timeout=60)  # local answers, the store named
        assert listed.returncode == 0 and f"s3://{bucket}/runs" in listed.stderr and "timeout" in listed.stderr
        probe = "from impactbook.hashing import sha256_url; sha256_url('s3://anything/data.csv')"
        read = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **hung}, capture_output=True,
                              text=True, timeout=60)  # an input in the store goes through s3fs: bounded too
        assert read.returncode == 1 and "Read timeout" in read.stderr, read.stderr
        bad = cli(s3_project, "runs", "list", env={**hung, S3_TIMEOUT_ENV: "soon"})
        assert bad.returncode == 1 and f"{S3_TIMEOUT_ENV}='soon' is not a number of seconds" in bad.stderr
        for huge in ("1e309", "99999999999"):  # inf, and a timeout the socket cannot hold
            bad = cli(s3_project, "runs", "list", env={**hung, S3_TIMEOUT_ENV: huge})
            assert bad.returncode == 1 and f"{S3_TIMEOUT_ENV}='{huge}' must be more than 0 and at most 86,400" \
                in bad.stderr, bad.stderr
    assert reconcile(s3_project).stored  # the store back: the run that waited is stored and ledgered


def test_one_damaged_stored_run_is_left_out_of_a_rebuild_and_the_others_are_indexed(s3_project, bucket):
    damaged, sound = run(s3_project), run(s3_project)
    for outcome in (damaged, sound):
        _remove_local(outcome.folder)  # another machine: only the ledger and the store
    key = f"runs/{damaged.record.run_id}/notebook.ipynb"
    client = boto3.client("s3")
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[100] ^= 1
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    told: list[str] = []
    assert rebuild(s3_project, skipped=told.append) == 1
    assert [row["run_id"] for row in open_index(s3_project).rows()] == [sound.record.run_id]
    assert len(told) == 1 and damaged.record.run_id in told[0] and "does not match SHA256SUMS" in told[0]
    cache = s3_project.runs_dir / ".cache"
    assert not [p.name for p in cache.iterdir() if p.name.endswith(".partial")]  # nothing half-fetched is kept
    done = cli(s3_project, "index", "rebuild")
    assert done.returncode == 0 and "indexed 1 runs" in done.stdout and damaged.record.run_id in done.stderr
    assert any("notebook.ipynb" in p for p in verify(s3_project).problems)  # and verify names it


def test_a_local_run_that_contradicts_its_ledger_entry_is_never_put_into_the_write_once_store(s3_project, bucket):
    from impactbook.store import seal, sha256sums

    outcome = run(s3_project)
    run_id, folder = outcome.record.run_id, outcome.folder
    genuine = {p.name: p.read_bytes() for p in folder.iterdir()}
    boto3.client("s3").delete_object(Bucket=bucket, Key=f"runs/{run_id}/SHA256SUMS")  # an unfinished upload
    _remove_local(folder)
    folder.mkdir()
    for name, data in genuine.items():
        (folder / name).write_bytes(data)
    (folder / "extra.txt").write_text("not part of the run\n")
    (folder / "SHA256SUMS").unlink()
    (folder / "SHA256SUMS").write_text(sha256sums(folder))  # self-consistent, but not what the ledger records
    seal(folder)
    told: list[str] = []
    done = reconcile(s3_project, progress=told.append)
    assert done.stored == [] and "SHA256SUMS" not in _objects(bucket, f"runs/{run_id}/")
    assert any(f"not storing run {run_id}" in line and "its ledger entry records" in line for line in told), told
    _remove_local(folder)  # the genuine copy back: now it is stored
    folder.mkdir()
    for name, data in genuine.items():
        (folder / name).write_bytes(data)
    seal(folder)
    assert reconcile(s3_project).stored == [run_id] and verify(s3_project).problems == []


def test_a_run_put_into_the_store_without_a_ledger_entry_is_listed_as_such(s3_project, bucket):
    outcome = run(s3_project)
    forged = outcome.record.run_id.replace("-example-", "-example-f0")
    client = boto3.client("s3")
    objects = _objects(bucket, f"runs/{outcome.record.run_id}/")
    copied = {**objects, "run.json": objects["run.json"].replace(outcome.record.run_id.encode(), forged.encode())}
    copied["SHA256SUMS"] = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in
                                   sorted(copied.items()) if name != "SHA256SUMS").encode()
    for name, data in copied.items():  # self-consistent, never ledgered
        client.put_object(Bucket=bucket, Key=f"runs/{forged}/{name}", Body=data)
    _remove_local(outcome.folder)
    assert rebuild(s3_project) == 2
    listed = cli(s3_project, "runs", "list")
    lines = {line.split("\t")[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "[NOT IN LEDGER]" in lines[forged] and "[NOT IN LEDGER]" not in lines[outcome.record.run_id]
    assert any(forged in p and "ledger" in p for p in verify(s3_project).problems)
    for name, data in objects.items():  # a copy that still names the run it was copied from: not indexed at all
        client.put_object(Bucket=bucket, Key=f"runs/{forged}x/{name}", Body=data)
    told: list[str] = []
    assert rebuild(s3_project, skipped=told.append) == 2
    assert f"its run.json names run {outcome.record.run_id}" in told[0]


@pytest.mark.parametrize("name", ["../../../victim.txt", "/tmp/impactbook-absolute-victim.txt", "sub/notebook.ipynb"])
def test_a_stored_manifest_naming_a_path_outside_its_run_fetches_nothing(s3_project, bucket, tmp_path, name):
    """Names in a stored SHA256SUMS come from the bucket, not from us: a fetch writes none outside its folder."""
    body = b"written by whoever can write the bucket\n"
    run_id, client = "20991231T000000000001Z-evil-bbbbbb", boto3.client("s3")
    client.put_object(Bucket=bucket, Key=f"runs/{run_id}/{name}", Body=body)
    client.put_object(Bucket=bucket, Key=f"runs/{run_id}/run.json", Body=b"{}")
    sums = f"{hashlib.sha256(body).hexdigest()}  {name}\n{hashlib.sha256(b'{}').hexdigest()}  run.json\n"
    client.put_object(Bucket=bucket, Key=f"runs/{run_id}/SHA256SUMS", Body=sums.encode())
    cache = s3_project.runs_dir / ".cache"
    with pytest.raises(ProjectError, match="not a file of a run folder"):
        open_run_store(s3_project).fetch(run_id, cache)
    written = [p for p in (s3_project.root.parent.rglob("victim.txt"))] + \
        [p for p in [tmp_path.parent / "impactbook-absolute-victim.txt"] if p.exists()]
    assert not written and not os.path.exists("/tmp/impactbook-absolute-victim.txt")
    assert not cache.exists() or not list(cache.iterdir())  # not even a partial folder
    told: list[str] = []
    assert rebuild(s3_project, skipped=told.append) == 0  # the rebuild goes on without it, naming it
    assert len(told) == 1 and run_id in told[0]


def test_a_stored_run_whose_manifest_lists_no_record_is_left_out_of_a_rebuild(s3_project, bucket):
    sound = run(s3_project)
    _remove_local(sound.folder)
    run_id, client, body = "20991231T000000000002Z-evil-cccccc", boto3.client("s3"), b"x"
    client.put_object(Bucket=bucket, Key=f"runs/{run_id}/notes.txt", Body=body)
    client.put_object(Bucket=bucket, Key=f"runs/{run_id}/SHA256SUMS",
                      Body=f"{hashlib.sha256(body).hexdigest()}  notes.txt\n".encode())
    told: list[str] = []
    assert rebuild(s3_project, skipped=told.append) == 1
    assert len(told) == 1 and run_id in told[0] and "does not list run.json" in told[0]


def test_a_stored_manifest_that_is_not_utf8_and_a_key_without_a_run_id_are_findings(s3_project, bucket):
    """Objects anyone with bucket access can write: a SHA256SUMS of bytes that are not UTF-8 crashed verify and
    the rebuild for every user of the store; `runs//SHA256SUMS` (an empty run id) stopped verify at a NoSuchKey."""
    sound = run(s3_project)
    client = boto3.client("s3")
    client.put_object(Bucket=bucket, Key="runs/20991231T000000000003Z-evil-dddddd/SHA256SUMS", Body=b"\xff\xfe\n")
    client.put_object(Bucket=bucket, Key="runs//SHA256SUMS", Body=b"abc  run.json\n")
    client.put_object(Bucket=bucket, Key="runs//run.json", Body=b"{}")
    problems = verify(s3_project).problems
    assert f"s3://{bucket}/runs//SHA256SUMS: an object outside every run's folder (its key has no run id); " \
           "impactbook never writes one there" in problems, problems
    assert any("20991231T000000000003Z-evil-dddddd" in p for p in problems), problems
    assert not any(sound.record.run_id in p for p in problems), problems
    told: list[str] = []
    _remove_local(sound.folder)
    assert rebuild(s3_project, skipped=told.append) == 1
    assert len(told) == 1 and "20991231T000000000003Z-evil-dddddd" in told[0], told
    assert cli(s3_project, "runs", "list").returncode == 0


def test_a_fetch_killed_mid_way_leaves_no_partial_copy_behind_for_long(s3_project, bucket):
    """A SIGKILL during a fetch skips its clean-up: `.<run>.<pid>.partial` folders piled up in runs/.cache.
    The next fetch removes those whose process is gone, and leaves a live one's alone."""
    import subprocess
    import sys

    outcome = run(s3_project)
    _remove_local(outcome.folder)
    cache = s3_project.runs_dir / ".cache"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = cache / f".{outcome.record.run_id}-0123456789abcdef.{int(gone.stdout)}.partial"
    live = cache / f".{outcome.record.run_id}-0123456789abcdef.1.partial"  # pid 1 lives as long as the machine
    for folder in (abandoned, live):
        folder.mkdir(parents=True)
        (folder / "run.json").write_text("{}")
    folder = open_run_store(s3_project).fetch(outcome.record.run_id, cache)
    assert load_record(folder) == outcome.record
    assert not abandoned.exists() and live.exists()


def test_a_prefix_holding_another_projects_runs_is_refused_naming_it(s3_project, bucket, tmp_path_factory):
    """Two projects pointed at one prefix each saw the other's runs as stored without a ledger entry (and a
    rebuild read them). The first to use a prefix claims it (its ledger's first entry); the other is refused."""
    from conftest import freeze_plan, make_project

    first = run(s3_project)
    assert first.record.status.value == "COMPLETED"
    other = make_project(tmp_path_factory.mktemp("other") / "project")
    freeze_plan(other, PLAN)  # a ledger of its own: another first entry
    assert Ledger(other.ledger_path).identity() != Ledger(s3_project.ledger_path).identity()
    with pytest.raises(StorageError, match=rf"s3://{bucket}/runs holds the runs of another project"):
        open_run_store(other).published()
    refused = cli(other, "run", PLAN)
    assert refused.returncode != 0 and f"s3://{bucket}/runs holds the runs of another project" in refused.stderr
    assert open_run_store(s3_project).published() == [first.record.run_id]  # the owner's runs, and only them
    assert verify(s3_project).problems == []
