"""backends/: SQLite and PostgreSQL index stores answer alike, rebuild alike, and take concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from impactbook.backends.index_store import (SCHEMA_VERSION, IndexFromNewerRelease, IndexOfAnotherProject, IndexStores,
                                             IndexUnusable, default_index_stores)
from impactbook.backends.sqlite_index import SqliteIndexStore
from impactbook.errors import ProjectError, RunNotFoundError
from impactbook.index import INDEX_ENV, index_url, load_record, open_index, rebuild
from conftest import PLAN, cli, run
from postgres_server import fresh_database, postgres_server, silent_server


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_database(postgres_url) -> str:
    return fresh_database(postgres_url, f"t_{secrets.token_hex(6)}")


def _queries(store) -> dict:
    rows = store.rows()
    return {"list": rows, "filter": store.rows(rows[0]["plan_id"]), "no plan": store.rows("nope"),
            "latest": store.find("latest"), "prefix": store.find(rows[0]["run_id"][:18]),
            "exact": store.find(rows[0]["run_id"])}


def test_postgres_and_sqlite_answer_list_filter_latest_and_rebuild_alike(frozen_project, postgres_database,
                                                                         monkeypatch):
    data = frozen_project.root / "data/demo_experiment.csv"
    run(frozen_project)
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:-1]))
    run(frozen_project)  # an INADMISSIBLE run too
    sqlite = open_index(frozen_project)
    assert isinstance(sqlite, SqliteIndexStore) and sqlite.path == frozen_project.index_path
    expected = _queries(sqlite)
    assert [r["status"] for r in expected["list"]] == ["COMPLETED", "INADMISSIBLE"]

    monkeypatch.setenv(INDEX_ENV, postgres_database)
    assert rebuild(frozen_project) == 2
    postgres = open_index(frozen_project)
    assert not isinstance(postgres, SqliteIndexStore)
    assert _queries(postgres) == expected
    assert rebuild(frozen_project) == 2  # a second rebuild replaces, never duplicates
    assert _queries(postgres) == expected
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        postgres.find("nope")


def _write_many(url: str, folder: str, worker: int, count: int) -> None:
    from pathlib import Path

    store = default_index_stores().open(url)
    record = load_record(Path(folder))
    for i in range(count):
        store.add(record.model_copy(update={"run_id": f"{record.run_id}-w{worker}-{i:03d}"}), "0" * 64, i)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_writers_from_several_processes_lose_nothing(backend, frozen_project, request):
    folder = run(frozen_project).folder
    url = (request.getfixturevalue("postgres_database") if backend == "postgresql"
           else "sqlite://" + str(frozen_project.root / "concurrent.sqlite"))
    workers, count = 4, 25
    context = multiprocessing.get_context("spawn")  # fresh interpreters: nothing shared but the database
    processes = [context.Process(target=_write_many, args=(url, str(folder), w, count)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * workers
    store = default_index_stores().open(url)
    rows = store.rows()
    assert len(rows) == workers * count
    assert len({r["run_id"] for r in rows}) == workers * count
    # pages are cut by the database, alike on both backends
    assert store.rows(limit=10, offset=20) == rows[20:30] and store.rows(offset=95) == rows[95:]
    assert store.rows(limit=3, newest_first=True) == rows[::-1][:3] and store.rows(limit=5, offset=200) == []
    assert store.count() == workers * count and store.count(rows[0]["plan_id"]) == workers * count
    assert store.count("nope") == 0


def _open_fresh_files_together(folder: str, trials: int, barrier) -> None:
    from pathlib import Path

    for trial in range(trials):
        barrier.wait(60)
        SqliteIndexStore(Path(folder) / f"fresh-{trial}.sqlite").rows()


def test_processes_opening_one_new_sqlite_index_at_once_all_find_its_schema(tmp_path):
    """Two first runs at once both create the index: neither may see tables without their version."""
    workers, trials = 6, 12
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [context.Process(target=_open_fresh_files_together, args=(str(tmp_path), trials, barrier))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * workers
    for trial in range(trials):
        assert SqliteIndexStore(tmp_path / f"fresh-{trial}.sqlite").rows() == []


class _RowThatNeverComes:
    """A row whose first value blocks once asked for (after saying so): its rebuild is mid-write, its file open."""

    def __init__(self, signal_file: str) -> None:
        self.signal_file = signal_file

    def __len__(self) -> int:
        from impactbook.backends.index_store import COLUMNS

        return len(COLUMNS)

    def __getitem__(self, position: int):
        import time

        Path(self.signal_file).touch()
        time.sleep(600)


def _rebuild_stuck_mid_write(path: str, signal_file: str) -> None:
    row = ("run-a", "plan", 1, "a" * 64, "COMPLETED", "ship", "{}", "model-a", "model-b", "ab_test",
           "2026-11-23T00:00:00Z", "2026-11-23T00:01:00Z", "b" * 64, 1, "", "")
    SqliteIndexStore(Path(path)).replace_all([row, _RowThatNeverComes(signal_file)])


def test_the_next_rebuild_removes_the_file_of_a_rebuild_killed_mid_write(tmp_path):
    """A rebuild writes a new file beside the index and swaps it in; killed before the swap, that file (as big as
    the index) stayed for good. The next rebuild, holding the rebuilds' lock, removes it and no other file."""
    import signal
    import time

    path, ready = tmp_path / "index.sqlite", tmp_path / "stuck"
    SqliteIndexStore(path).rows()
    other = tmp_path / ".index.sqlite.b.1.0123abcd.rebuild"  # (another index's, "index.sqlite.b")
    other.write_text("")
    child = multiprocessing.get_context("spawn").Process(target=_rebuild_stuck_mid_write, args=(str(path), str(ready)))
    child.start()
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline and child.is_alive():
        time.sleep(0.01)
    assert ready.exists(), "the rebuild never reached its second row"
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    left = sorted(p.name for p in tmp_path.glob(".index.sqlite.*.rebuild*") if p != other)
    assert left and all(name.endswith((".rebuild", ".rebuild-journal")) for name in left)
    SqliteIndexStore(path).replace_all([])
    assert sorted(p.name for p in tmp_path.glob(".index.sqlite.*")) == [other.name]
    assert SqliteIndexStore(path).rows() == []


def test_a_sqlite_file_with_tables_but_no_schema_version_is_unusable(tmp_path):
    path = tmp_path / "foreign.sqlite"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(IndexUnusable, match="schema version 0"):
        SqliteIndexStore(path).rows()


def test_default_url_is_the_sqlite_file_at_todays_path(project, monkeypatch):
    monkeypatch.delenv(INDEX_ENV, raising=False)
    assert index_url(project) == "sqlite://" + str(project.index_path.resolve())


def test_registry_is_passed_in_and_unknown_schemes_name_the_known_ones(project, monkeypatch, tmp_path):
    stores = IndexStores()
    stores.register("mine", lambda url: SqliteIndexStore(tmp_path / "mine.sqlite"))
    monkeypatch.setenv(INDEX_ENV, "mine://anything")
    assert open_index(project, stores).path == tmp_path / "mine.sqlite"
    monkeypatch.setenv(INDEX_ENV, "mongodb://user:secret@host/db")
    with pytest.raises(ProjectError, match=r"no index backend for 'mongodb'.*known: postgres, postgresql, sqlite") as error:
        open_index(project)
    assert "secret" not in str(error.value)


def _set_schema_version(url_or_path, version: int) -> None:
    if isinstance(url_or_path, str):
        with psycopg.connect(url_or_path, autocommit=True) as connection:
            connection.execute("UPDATE index_schema SET version = %s", (version,))
    else:
        with closing(sqlite3.connect(url_or_path)) as connection:
            connection.execute(f"PRAGMA user_version = {version}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_index_a_newer_release_wrote_is_named_and_left_alone_and_an_older_one_is_rebuilt(
        backend, frozen_project, request, monkeypatch):
    if backend == "postgresql":
        monkeypatch.setenv(INDEX_ENV, request.getfixturevalue("postgres_database"))
    run_id = run(frozen_project).record.run_id
    index = open_index(frozen_project)
    shown = index.where if backend == "postgresql" else "runs/index.sqlite"  # (was always runs/index.sqlite)
    target = index.url if backend == "postgresql" else frozen_project.index_path

    _set_schema_version(target, 99)
    verified = cli(frozen_project, "verify")
    assert verified.returncode == 3, verified.stderr
    assert f"{shown}: the run index has schema version 99, written by a newer impactbook" in verified.stdout
    for command in (("runs", "list"), ("index", "rebuild"), ("run", PLAN)):
        refused = cli(frozen_project, *command)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, (command, refused.stderr)
        assert "schema version 99, written by a newer impactbook" in refused.stderr and "upgrade" in refused.stderr
    with pytest.raises(IndexFromNewerRelease):
        rebuild(frozen_project)
    with pytest.raises(IndexFromNewerRelease):  # still the newer release's: never rebuilt or downgraded
        default_index_stores().open(index_url(frozen_project)).rows()

    _set_schema_version(target, 2)
    verified = cli(frozen_project, "verify")
    assert verified.returncode == 3
    unusable = f"{shown}: unusable (schema version 2, this release reads {SCHEMA_VERSION}); "
    if backend == "sqlite":  # the project's own file
        assert f"{unusable}the next impactbook command rebuilds it" in verified.stdout, verified.stdout
        listed = cli(frozen_project, "runs", "list")
        assert listed.returncode == 0 and run_id in listed.stdout and "rebuilt it" in listed.stderr, listed.stderr
    else:  # outside runs/, it may have listed another copy's runs: rebuilt from this copy's only when asked
        assert f"{unusable}`impactbook index rebuild` in the copy whose runs it lists rebuilds it" in verified.stdout
        listed = cli(frozen_project, "runs", "list")
        assert listed.returncode == 1 and listed.stderr.count("\n") == 1, listed.stderr
        assert "is not rebuilt from this copy's runs unasked (run `impactbook index rebuild`" in listed.stderr
        assert cli(frozen_project, "index", "rebuild").returncode == 0
        assert run_id in cli(frozen_project, "runs", "list").stdout
    assert cli(frozen_project, "verify").returncode == 0


def test_a_postgres_table_runs_that_impactbook_did_not_create_is_refused_not_dropped(postgres_database):
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute("CREATE TABLE runs (anything TEXT)")
        connection.execute("INSERT INTO runs VALUES ('kept')")
    store = default_index_stores().open(postgres_database)
    for attempt in (store.rows, lambda: store.replace_all([])):
        with pytest.raises(ProjectError, match="a table `runs` that impactbook did not create"):
            attempt()
    with psycopg.connect(postgres_database) as connection:
        assert connection.execute("SELECT anything FROM runs").fetchall() == [("kept",)]


def test_an_index_server_that_never_answers_is_given_up_on_naming_the_index(frozen_project, monkeypatch):
    """libpq waited on such a server as long as the operating system let it: `runs list` hung with no word."""
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    with silent_server() as port:
        url = f"postgresql://impactbook@127.0.0.1:{port}/runs"
        listed = cli(frozen_project, "runs", "list", env={INDEX_ENV: url}, timeout=120)  # (the default: 10 s)
        assert listed.returncode == 1 and listed.stderr.count("\n") == 1, listed.stderr
        assert "PostgreSQL could not be used" in listed.stderr and "timeout expired" in listed.stderr
        assert f"the run index is postgresql://127.0.0.1:{port}/runs" in listed.stderr, listed.stderr
        monkeypatch.setenv(INDEX_ENV, url + "?connect_timeout=1")  # the URL's own wait is kept
        with pytest.raises(psycopg.OperationalError, match="timeout expired"):
            open_index(frozen_project).rows()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_second_project_pointed_at_an_index_is_refused_and_removes_none_of_its_rows(
        backend, frozen_project, tmp_path, request, monkeypatch):
    """Two projects sharing one index database removed each other's rows (runs without folders) on every command,
    and a rebuild in either replaced the other's."""
    from conftest import make_project
    from impactbook.freezing import freeze_plan

    url = request.getfixturevalue("postgres_database") if backend == "postgresql" else \
        "sqlite://" + str(tmp_path / "shared.sqlite")
    monkeypatch.setenv(INDEX_ENV, url)
    ours = run(frozen_project).record.run_id
    other = make_project(tmp_path / "other")
    for _ in range(2):  # before and after it has a ledger
        for command in (("runs", "list"), ("index", "rebuild")):
            refused = cli(other, *command)
            assert refused.returncode == 1 and refused.stderr.count("\n") == 1, (command, refused.stderr)
            assert "the run index holds the runs of another project" in refused.stderr, refused.stderr
            assert "index_owner" in refused.stderr or "delete shared.sqlite" in refused.stderr, refused.stderr
        verified = cli(other, "verify")
        assert verified.returncode == 3 and "the run index holds the runs of another project" in verified.stdout
        freeze_plan(other, PLAN)
    with pytest.raises(IndexOfAnotherProject, match="with no ledger entry yet|whose ledger begins with"):
        rebuild(other)
    started = cli(other, "run", PLAN)
    assert started.returncode == 1 and "another project" in started.stderr, started.stderr
    listed = cli(frozen_project, "runs", "list")
    assert listed.returncode == 0 and ours in listed.stdout, listed.stderr
    assert [r["run_id"] for r in open_index(frozen_project).rows()] == [ours]
    assert cli(frozen_project, "verify").returncode == 0
    assert rebuild(frozen_project) == 1 and cli(other, "runs", "list").returncode == 1  # still ours after a rebuild


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_clones_of_a_project_with_their_own_run_folders_do_not_share_an_index(
        backend, frozen_project, tmp_path, request, monkeypatch):
    """Two git clones of one project (one ledger, two runs/ folders) pointed at one index removed each other's rows
    as runs without folders on every command: the rows flip-flopped between the clones."""
    import shutil
    import subprocess

    url = request.getfixturevalue("postgres_database") if backend == "postgresql" else \
        "sqlite://" + str(tmp_path / "shared.sqlite")
    monkeypatch.setenv(INDEX_ENV, url)
    git = ["git", "-c", "user.email=a@example.org", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q"], cwd=frozen_project.root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=frozen_project.root, check=True)
    subprocess.run([*git, "commit", "-qm", "frozen"], cwd=frozen_project.root, check=True)
    ours = run(frozen_project).record.run_id
    assert subprocess.run(["git", "status", "--porcelain", "--ignored=no", "runs"], cwd=frozen_project.root,
                          capture_output=True, text=True).stdout.splitlines() == [" M runs/ledger.jsonl"]
    subprocess.run(["git", "clone", "-q", str(frozen_project.root), str(tmp_path / "clone")], check=True)
    shutil.copytree(frozen_project.root / "data", tmp_path / "clone/data")
    clone = tmp_path / "clone"
    for command in (("runs", "list"), ("run", PLAN)):
        refused = cli(clone, *command)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, (command, refused.stderr)
        assert "the run index lists the runs of another run store of this project (" \
               f"{socket.gethostname()}:{frozen_project.runs_dir}" in refused.stderr, refused.stderr
        assert f"not of this copy's ({socket.gethostname()}:{(clone / 'runs').resolve()} (" in refused.stderr
    verified = cli(clone, "verify")
    assert verified.returncode == 3 and "another run store of this project" in verified.stdout, verified.stdout
    assert [r["run_id"] for r in open_index(frozen_project).rows()] == [ours]  # nothing of ours removed
    assert cli(frozen_project, "verify").returncode == 0
    rebuilt = cli(clone, "index", "rebuild")  # hands the index to the clone, on purpose
    assert rebuilt.returncode == 0, rebuilt.stderr
    theirs = cli(clone, "run", PLAN)
    assert theirs.returncode in (0, 3), theirs.stderr
    listed = cli(clone, "runs", "list", "--json")
    assert ours not in listed.stdout and len(json.loads(listed.stdout)) == 1, listed.stdout
    refused = cli(frozen_project, "runs", "list")
    assert refused.returncode == 1 and "another run store of this project" in refused.stderr, refused.stderr


@pytest.mark.parametrize(("backend", "damage"), [("sqlite", "older schema"), ("sqlite", "corrupt"),
                                                 ("postgresql", "older schema")])
def test_an_unusable_shared_index_is_not_taken_over_by_another_copy(backend, damage, frozen_project, tmp_path,
                                                                    request, monkeypatch):
    """A clone whose next command found the shared index unusable rebuilt it from its own runs and so took it over
    (SQLite), or emptied the other copy's rows before being refused (PostgreSQL)."""
    from impactbook.project import Project

    url = request.getfixturevalue("postgres_database") if backend == "postgresql" else \
        "sqlite://" + str(tmp_path / "shared.sqlite")
    monkeypatch.setenv(INDEX_ENV, url)
    ours = run(frozen_project).record.run_id
    if damage == "older schema":
        _set_schema_version(url if backend == "postgresql" else tmp_path / "shared.sqlite", 3)
    else:
        raw = (tmp_path / "shared.sqlite").read_bytes()
        (tmp_path / "shared.sqlite").write_bytes(raw[:100] + bytes(len(raw) - 100))
    clone = Project(_clone_with_its_own_runs(frozen_project, tmp_path / "clone"))
    for command in (("runs", "list"), ("run", PLAN)):
        refused = cli(clone, *command)
        assert refused.returncode == 1 and "is not rebuilt from this copy's runs unasked" in refused.stderr, \
            (command, refused.stderr)
    assert cli(frozen_project, "index", "rebuild").returncode == 0  # the owner, asked: its runs are back
    assert [r["run_id"] for r in open_index(frozen_project).rows()] == [ours]
    assert cli(clone, "runs", "list").returncode == 1


def _clone_with_its_own_runs(project, folder):
    """A copy of the project as git would clone it: no run folders, no runs/.store, no index of its own."""
    import shutil

    shutil.copytree(project.root, folder, ignore=lambda where, names: [
        n for n in names if Path(where).name == "runs" and (n.startswith((".", "index.sqlite")) or
                                                            (Path(where) / n).is_dir())])
    return folder


@pytest.mark.parametrize("broken", ["empty", "folder", "binary", "dangling link", "several lines"])
def test_a_run_store_mark_that_cannot_be_read_is_refused_naming_it(broken, frozen_project, tmp_path, monkeypatch):
    """A broken mark had turned the check off without a word: the copy then removed the other's runs again."""
    monkeypatch.setenv(INDEX_ENV, "sqlite://" + str(tmp_path / "shared.sqlite"))
    run(frozen_project)
    clone = _clone_with_its_own_runs(frozen_project, tmp_path / "clone")
    mark = clone / "runs/.store/identity"
    mark.parent.mkdir(parents=True)
    {"empty": lambda: mark.write_text(""), "folder": mark.mkdir, "binary": lambda: mark.write_bytes(b"\xff\xfe\x00"),
     "dangling link": lambda: mark.symlink_to(tmp_path / "nowhere"),
     "several lines": lambda: mark.write_text("host:/a/runs (1)\n\x1b[31mspoof\nhost:/b/runs (2)\n")}[broken]()
    listed = cli(clone, "runs", "list")
    assert listed.returncode == 1 and listed.stderr.count("\n") == 1, listed.stderr
    assert listed.stderr.startswith("error: runs/.store/identity: "), listed.stderr
    assert "delete it: the next command makes a new one" in listed.stderr
    assert len(open_index(frozen_project).rows()) == 1  # nothing of the first copy's removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; .ci/run runs the suite as a normal user")
def test_a_copy_that_cannot_make_its_mark_is_refused_and_removes_nothing(frozen_project, tmp_path, monkeypatch):
    monkeypatch.setenv(INDEX_ENV, "sqlite://" + str(tmp_path / "shared.sqlite"))
    run(frozen_project)
    clone = _clone_with_its_own_runs(frozen_project, tmp_path / "clone")
    (clone / "runs").chmod(0o555)
    try:
        listed, verified = cli(clone, "runs", "list"), cli(clone, "verify")
    finally:
        (clone / "runs").chmod(0o755)
    assert listed.returncode == 1 and "runs/.store/identity: cannot be made (Permission denied)" in listed.stderr, \
        listed.stderr
    assert verified.returncode == 3 and "runs/.store/identity: cannot be made" in verified.stdout, verified.stdout
    assert len(open_index(frozen_project).rows()) == 1


def test_the_run_store_mark_stays_out_of_git_whatever_the_project_ignores(frozen_project, tmp_path, monkeypatch):
    """A committed mark would be every clone's: the clones could no longer be told apart."""
    import subprocess

    (frozen_project.root / ".gitignore").unlink()
    subprocess.run(["git", "init", "-q"], cwd=frozen_project.root, check=True)
    monkeypatch.setenv(INDEX_ENV, "sqlite://" + str(tmp_path / "shared.sqlite"))
    assert cli(frozen_project, "runs", "list").returncode == 0
    assert (frozen_project.runs_dir / ".store/identity").is_file()
    untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "runs"],
                               cwd=frozen_project.root, capture_output=True, text=True, check=True).stdout
    assert ".store" not in untracked and "runs/ledger.jsonl" in untracked, untracked


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_index_made_before_stores_were_recorded_is_kept_and_then_guarded(backend, frozen_project, tmp_path,
                                                                            request, monkeypatch):
    """The store's table was added within schema version 4: an index an earlier release made is neither rebuilt
    nor refused (a bump had rebuilt every index and locked out every machine not yet upgraded)."""
    from impactbook.backends.index_store import IndexOfAnotherStore
    from impactbook.project import Project

    url = request.getfixturevalue("postgres_database") if backend == "postgresql" else \
        "sqlite://" + str(tmp_path / "shared.sqlite")
    monkeypatch.setenv(INDEX_ENV, url)
    ours = run(frozen_project).record.run_id
    drop = "DROP TABLE index_store"
    if backend == "postgresql":
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(drop)
    else:
        with closing(sqlite3.connect(tmp_path / "shared.sqlite")) as connection:
            connection.execute(drop)
    listed = cli(frozen_project, "runs", "list")
    assert listed.returncode == 0 and ours in listed.stdout and "rebuilt" not in listed.stderr, listed.stderr
    clone = Project(_clone_with_its_own_runs(frozen_project, tmp_path / "clone"))
    with pytest.raises(IndexOfAnotherStore):
        open_index(clone).rows()
    with pytest.raises(IndexOfAnotherStore):  # only `impactbook index rebuild` takes the index over
        rebuild(clone)
    assert [r["run_id"] for r in open_index(frozen_project).rows()] == [ours]
    assert rebuild(clone, take_over=True) == 0 and open_index(clone).rows() == []
    with pytest.raises(IndexOfAnotherStore):
        open_index(frozen_project).rows()
