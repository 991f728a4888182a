"""catalog.py: pins written round-trip (comments and order kept), clear errors with suggestions."""

from __future__ import annotations

import pytest

from impactbook.catalog import Catalog
from impactbook.errors import CatalogError
from impactbook.hashing import sha256_file


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
