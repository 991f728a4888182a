"""catalog.py: pins written round-trip (comments and order kept), clear errors with suggestions."""

from __future__ import annotations

import pytest

from impactbook.catalog import Catalog
from impactbook.errors import CatalogError
from impactbook.hashing import sha256_file
from impactbook.index import INDEX_ENV, open_index


def test_pin_keeps_comments_and_order(project):
    path = project.catalog_path
    path.write_text(path.read_text().replace("datasets:", "# reviewed by data-eng\ndatasets:  # pinned inputs"))
    before = path.read_text()
    data = project.root / "data" / "extra.csv"
    data.write_text("user_id,x\n1,2\n")
    entry = Catalog.load(project).pin_dataset("extra", data)
    after = path.read_text()
    assert "# reviewed by data-eng" in after and "datasets:  # pinned inputs" in after
    assert after.index("demo_experiment:") < after.index("extra:") < after.index("templates:")
    assert entry.sha256 == sha256_file(data) and entry.size == data.stat().st_size and entry.uri == "data/extra.csv"
    assert before.splitlines()[0] == after.splitlines()[0]


def test_unknown_dataset_suggests_close_names(project):
    with pytest.raises(CatalogError, match="did you mean 'demo_experiment'"):
        Catalog.load(project).dataset("demo_experimnt")


def test_malformed_entry_names_file_line_and_field(project):
    path = project.catalog_path
    path.write_text(path.read_text().replace("format: csv", "format: xlsx"))
    with pytest.raises(CatalogError) as caught:
        Catalog.load(project)
    assert "catalog.yaml:" in str(caught.value) and "datasets.demo_experiment.format" in str(caught.value)


def test_settings_choose_the_index_and_run_store_and_the_environment_overrides_them(project, monkeypatch):
    from impactbook.backends.run_store import STORAGE_ENV, storage_url
    from impactbook.index import INDEX_ENV, index_url

    monkeypatch.delenv(INDEX_ENV, raising=False)
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert storage_url(project) == project.runs_dir.resolve().as_uri() and index_url(project).startswith("sqlite://")
    elsewhere = project.runs_dir / "shared.sqlite"
    catalog = project.catalog_path
    catalog.write_text(catalog.read_text() + f"settings:\n  index: sqlite://{elsewhere}\n  storage: s3://bucket/runs\n")
    assert index_url(project) == f"sqlite://{elsewhere}" and storage_url(project) == "s3://bucket/runs"
    from impactbook.index import open_index

    open_index(project).rows()
    assert elsewhere.is_file()  # the index the setting names is the one opened
    monkeypatch.setenv(INDEX_ENV, "postgresql://ci@db/impactbook")
    monkeypatch.setenv(STORAGE_ENV, "s3://other/prefix")
    assert index_url(project) == "postgresql://ci@db/impactbook" and storage_url(project) == "s3://other/prefix"


def test_a_sqlite_index_setting_outside_runs_is_refused_and_the_file_is_untouched(project, monkeypatch, tmp_path):
    """catalog.yaml arrives with the project: its index setting must not make a rebuild replace a user's file."""
    from impactbook.errors import ProjectError
    from impactbook.index import INDEX_ENV, open_index

    monkeypatch.delenv(INDEX_ENV, raising=False)
    precious = tmp_path / "precious.txt"
    precious.write_text("precious\n")
    project.catalog_path.write_text(project.catalog_path.read_text() + f"settings:\n  index: sqlite://{precious}\n")
    refused = r"catalog.yaml: settings.index .* is not a file directly in the project's runs/ folder"
    with pytest.raises(ProjectError, match=refused):
        open_index(project).rows()
    assert precious.read_text() == "precious\n" and not precious.with_name("precious.txt.lock").exists()
    monkeypatch.setenv(INDEX_ENV, f"sqlite://{tmp_path / 'mine.sqlite'}")  # this machine's own choice: allowed
    assert open_index(project).rows() == []


@pytest.mark.parametrize("where", ["ledger", "sub-folder", "environment"])
def test_an_index_url_naming_a_file_that_is_not_sqlite_neither_uses_nor_replaces_it(project, monkeypatch, tmp_path,
                                                                                  where):
    """A rebuild replaces the index's file whole: `settings.index: sqlite://…/runs/ledger.jsonl` made every
    command turn the ledger into a database (and $IMPACTBOOK_INDEX any file of the user's)."""
    from impactbook.errors import ProjectError
    from conftest import cli

    monkeypatch.delenv(INDEX_ENV, raising=False)
    target = {"ledger": project.ledger_path, "sub-folder": project.runs_dir / "idx" / "index.sqlite",
              "environment": tmp_path / "notes.txt"}[where]
    if where == "environment":
        target.write_text("my notes\n")
        monkeypatch.setenv(INDEX_ENV, f"sqlite://{target}")
    else:
        project.catalog_path.write_text(project.catalog_path.read_text() + f"settings:\n  index: sqlite://{target}\n")
    before = target.read_bytes() if target.exists() else None
    done = cli(project, "runs", "list", "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    expected = ("is not a file directly in the project's runs/ folder" if where == "sub-folder"
                else f"error: {target}: is not a SQLite database, so impactbook neither uses it as the run index")
    assert expected in done.stderr, done.stderr
    assert (target.read_bytes() if target.exists() else None) == before
    assert not (project.runs_dir / "idx").exists() and not target.with_name(target.name + ".lock").exists()
    with pytest.raises(ProjectError):
        open_index(project).replace_all([])
    assert (target.read_bytes() if target.exists() else None) == before


def test_an_index_file_that_cannot_be_opened_is_named_in_one_line(project, monkeypatch):
    from conftest import cli

    monkeypatch.setenv(INDEX_ENV, "sqlite:///proc/self/index.sqlite")  # (procfs makes no file, even for root)
    done = cli(project, "runs", "list")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: /proc/self/index.sqlite: cannot be opened as the run index (unable to open "
                                  "database file)"), done.stderr


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///tmp/"])
def test_a_sqlite_index_url_without_a_file_name_is_refused(project, monkeypatch, url):
    from conftest import cli

    monkeypatch.setenv(INDEX_ENV, url)
    done = cli(project, "runs", "list")
    assert done.returncode == 1 and f"the SQLite index URL {url!r} names no file" in done.stderr, done.stderr


@pytest.mark.parametrize("setting, expected", [
    ("index: postgresql://ci@db/impactbook?password=hunter2", r"settings.index: .*a password does not belong"),
    ("index: postgresql://ci@db/impactbook?passfile=/tmp/x", r"settings.index: .*a password does not belong"),
    ("index: postgresql://ci:hunter2@db/impactbook", r"settings.index: .*a password does not belong in catalog.yaml"),
    ("index: mysql://db/x", r"settings.index: String should match pattern"),
    ("storage: gs://bucket", r"settings.storage: String should match pattern"),
    ("indx: sqlite:///x", r"settings.indx: unknown field"),
])
def test_bad_settings_name_the_field(project, setting, expected):
    project.catalog_path.write_text(project.catalog_path.read_text() + f"settings:\n  {setting}\n")
    with pytest.raises(CatalogError, match=expected):
        Catalog.load(project)


def test_a_refused_url_is_echoed_without_its_password(project):
    from impactbook.backends.s3_store import S3RunStore
    from impactbook.errors import ProjectError

    project.catalog_path.write_text(project.catalog_path.read_text()
                                    + "settings:\n  index: postgresql://ci:hunter2@db/impactbook\n")
    with pytest.raises(CatalogError) as refused:
        Catalog.load(project)
    assert "hunter2" not in str(refused.value) and "postgresql://ci:***@db/impactbook" in str(refused.value)
    project.catalog_path.write_text(project.catalog_path.read_text().replace(
        "postgresql://ci:hunter2@db/impactbook", "postgresql://ci@db/impactbook?sslmode=disable&password=hunter2"))
    with pytest.raises(CatalogError) as in_query:
        Catalog.load(project)
    assert "hunter2" not in str(in_query.value) and "sslmode=disable&password=***" in str(in_query.value)
    with pytest.raises(ProjectError, match="carries credentials") as credentials:
        S3RunStore.from_url("s3://AKIAKEY:s3cret@bucket/prefix")
    assert "s3cret" not in str(credentials.value) and "AKIAKEY" not in str(credentials.value)
    for url in ("s3://bucket/prefix?versionId=s3cret", "s3://bucket/prefix#part", "s3://bucket/prefix?"):
        with pytest.raises(ProjectError, match=r"storage URL s3://bucket/prefix has a query \(\?…\) or a fragment "
                                               r"\(#…\), which an S3 location does not") as dropped:
            S3RunStore.from_url(url)  # (the query was dropped: runs went to s3://bucket/prefix unsaid)
        assert "s3cret" not in str(dropped.value)


def test_a_read_only_catalog_is_not_replaced_and_nothing_is_recorded(project):
    from conftest import cli

    catalog = project.root / "catalog.yaml"
    (project.root / "data/extra.csv").write_text("a\n1\n")
    catalog.chmod(0o444)
    before, ledger = catalog.read_bytes(), project.ledger_path.read_bytes()
    refused = cli(project, "dataset", "add", "extra", "data/extra.csv")
    assert refused.returncode == 1 and "catalog.yaml" in refused.stderr and "read-only" in refused.stderr, refused.stderr
    assert catalog.read_bytes() == before and project.ledger_path.read_bytes() == ledger
    assert catalog.stat().st_mode & 0o777 == 0o444


def test_an_edited_catalog_keeps_its_permissions(project):
    catalog = project.root / "catalog.yaml"
    catalog.chmod(0o640)
    (project.root / "data/extra.csv").write_text("a\n1\n")
    Catalog.load(project).pin_dataset("extra", project.root / "data/extra.csv")
    assert "extra:" in catalog.read_text() and catalog.stat().st_mode & 0o777 == 0o640


def test_an_empty_or_truncated_file_is_refused_and_one_without_rows_is_pinned_with_a_warning(project):
    import json

    import duckdb
    from conftest import cli

    data = project.root / "data"
    (data / "empty.csv").write_bytes(b"")
    source = (data / "demo_experiment.csv").read_text()
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{data / 'demo_experiment.csv'}')) TO '{data / 'whole.parquet'}'")
    (data / "cut.parquet").write_bytes((data / "whole.parquet").read_bytes()[:-100])  # a copy that stopped short
    (data / "header.csv").write_text(source.splitlines()[0] + "\n")
    ledger = project.ledger_path.read_bytes()
    empty = cli(project, "dataset", "add", "empty", "data/empty.csv")
    assert empty.returncode == 1 and "data/empty.csv is empty (0 bytes)" in empty.stderr, empty.stderr
    cut = cli(project, "dataset", "add", "cut", "data/cut.parquet")
    assert cut.returncode == 1 and "data/cut.parquet cannot be read as parquet (" in cut.stderr, cut.stderr
    assert project.ledger_path.read_bytes() == ledger and "cut:" not in project.catalog_path.read_text()
    header = cli(project, "dataset", "add", "header", "data/header.csv", "--json")
    assert header.returncode == 0 and "warning: data/header.csv has no rows" in header.stderr
    assert json.loads(header.stdout)["warnings"] == [header.stderr.strip()]
    assert cli(project, "dataset", "add", "whole", "data/whole.parquet").stderr == ""
