"""catalog.yaml: the registry of pinned datasets (uri, sha256, contract) and templates.

Edited by people and by commands alike, so it is read and written round-trip: comments and
order survive `impactbook dataset add`.
"""

from __future__ import annotations

import difflib
import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml.comments import CommentedMap

from .durable import editable_mode, rewrite_text
from .errors import CatalogError
from .hashing import fresh_options, remote_url, sha256_file, sha256_json, sha256_url, warehouse_url
from .ledger import Ledger, current_user
from .project import Project
from .template import has_outputs, read_template, source_record, strip_outputs
from .yamlio import load_yaml, round_trip, validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ColumnRule(_Strict):
    type: Literal["int", "float", "str", "bool", "date", "datetime"]
    nullable: bool = False
    allowed: list[Any] | None = None
    min: float | None = None
    max: float | None = None


class Contract(_Strict):
    """What a dataset must satisfy before any kernel sees it."""

    columns: dict[str, ColumnRule] = Field(min_length=1)
    unique: list[str] = Field(default_factory=list, description="columns that must be unique, e.g. the unit id")
    strict: bool = Field(False, description="refuse columns the contract does not declare")


class DatasetEntry(_Strict):
    uri: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = None
    format: Literal["csv", "parquet", "postgresql"] = "csv"  # postgresql: a warehouse table (hashing.warehouse_url)
    synthetic: bool = Field(False, description="generated data (a demo, a simulation): runs are labelled SIMULATED "
                                               "and their clock is the end of the data")
    contract: Contract | None = None


class TemplateEntry(_Strict):
    path: str
    version: int | str = 1
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class TemplatePin:
    entry: TemplateEntry
    stripped_outputs: bool
    changed: bool


class ModelEntry(_Strict):
    description: str | None = None


class Settings(_Strict):
    """Where the project's run index and run store live, for everyone who runs or checks it (the variables
    IMPACTBOOK_INDEX and IMPACTBOOK_STORAGE override them on one machine). No secrets: passwords come from
    libpq's PGPASSWORD / ~/.pgpass and the AWS credential chain."""

    index: str | None = Field(None, pattern=r"^(sqlite|postgresql|postgres)://",
                              description="sqlite:///ABSOLUTE/PATH or postgresql://user@host/db (default: runs/index.sqlite)")
    storage: str | None = Field(None, pattern=r"^(file|s3)://",
                                description="s3://bucket/prefix (default: the project's runs/ folder)")

    @field_validator("index", "storage")
    @classmethod
    def _no_secret(cls, value: str | None) -> str | None:
        secret = {"password", "passfile", "sslpassword"} & {key.lower() for key in parse_qs(urlsplit(value or "").query)}
        if value and (urlsplit(value).password or secret):
            raise ValueError("a password does not belong in catalog.yaml: use PGPASSWORD or ~/.pgpass (PostgreSQL) "
                             "or the AWS credential chain (S3)")
        return value


class CatalogModel(_Strict):
    datasets: dict[str, DatasetEntry] = Field(default_factory=dict)
    templates: dict[str, TemplateEntry] = Field(default_factory=dict)
    models: dict[str, ModelEntry | None] = Field(default_factory=dict)
    settings: Settings = Settings()


def project_setting(project: Project, name: str) -> str | None:
    """One of catalog.yaml's `settings` (None when unset or when there is no catalog yet); read once per
    version of the file."""
    try:
        state = project.catalog_path.stat()
    except FileNotFoundError:
        return None
    return getattr(_settings(project.root, state.st_mtime_ns, state.st_size), name)


def setting_source(project: Project, name: str, variable: str) -> str:
    """Which of the two places that can choose a backend chose it, for messages: the environment variable
    (which wins), catalog.yaml's `settings.<name>`, or neither (the default)."""
    if os.environ.get(variable):
        return f"${variable}"
    if project_setting(project, name):
        return f"{project.relative(project.catalog_path)} settings.{name}"
    return f"the default (neither ${variable} nor settings.{name} is set)"


@functools.lru_cache(maxsize=8)
def _settings(root: Path, mtime_ns: int, size: int) -> Settings:
    return Catalog.load(Project(root)).model.settings


def _pick(kind: str, name: str, known: dict[str, Any], where: str) -> Any:
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"known {kind}s: {', '.join(sorted(known)) or 'none'}"
    raise CatalogError(f"no {kind} named {name!r}", where=where, field=f"{kind}s", hint=hint)


@dataclass
class Catalog:
    project: Project
    document: CommentedMap
    model: CatalogModel

    @classmethod
    def load(cls, project: Project) -> "Catalog":
        shown = project.relative(project.catalog_path)
        document = load_yaml(project.catalog_path, CatalogError, shown)
        if document is None:
            document = CommentedMap()
        if not isinstance(document, dict):
            raise CatalogError("the catalog must be a YAML mapping", where=shown)
        try:
            model = CatalogModel.model_validate({k: (v or {}) for k, v in document.items()})
        except ValidationError as exc:
            raise validation_error(CatalogError, exc, document, shown, CatalogModel) from None
        return cls(project, document, model)

    @property
    def shown(self) -> str:
        return self.project.relative(self.project.catalog_path)

    def dataset(self, name: str) -> DatasetEntry:
        return _pick("dataset", name, self.model.datasets, self.shown)

    def template(self, name: str) -> TemplateEntry:
        return _pick("template", name, self.model.templates, self.shown)

    def pin_dataset(self, name: str, path: Path, contract: Contract | None = None, *, replace: bool = False,
                    reason: str | None = None, by: str | None = None, allow_outside: bool = False,
                    synthetic: bool | None = None, snapshot: Any = None,
                    note: Callable[[str], None] = lambda message: None) -> DatasetEntry:
        """Pin a dataset: uri, sha256, size and contract, keeping comments elsewhere. Every pin is a ledger
        event; replacing an existing one needs `replace` and a reason (pins change only on purpose).
        Re-pinning without a contract keeps the one already there (and likewise the synthetic flag).
        A warehouse table (`path` a warehouse URI) comes with its `snapshot` (backends.warehouse.Snapshot,
        computed in the database by the caller): its hash is the pin, its query is recorded in the ledger."""
        table = warehouse_url(path)
        if table:
            if snapshot is None:
                raise CatalogError(f"{name}: a warehouse table needs its snapshot hash", field=f"datasets.{name}.uri",
                                   hint=f"`impactbook dataset add {name} URI` computes it in the database")
            uri, digest, size = table, snapshot.sha256, None
        elif url := remote_url(path):  # an object store: hashed by streaming from it
            uri, (digest, size) = url, _remote_pin(url, name)
        else:
            path = self.project.resolve(path)
            if not path.is_file():
                raise CatalogError(f"no such file: {path}", where=self.shown, field=f"datasets.{name}.uri")
            uri = self.project.relative(path)
            real, root = Path(os.path.realpath(path)), Path(os.path.realpath(self.project.root))
            if (Path(uri).is_absolute() or not real.is_relative_to(root)) and not allow_outside:
                where = uri if Path(uri).is_absolute() else f"{uri} (a link to {real})"
                raise CatalogError(f"{where} is outside the project {self.project.root}", field=f"datasets.{name}.uri",
                                   hint="copy it into the project (e.g. data/), or pass --allow-outside to pin a "
                                        "path that other machines will not have")
            digest, size = sha256_file(path), path.stat().st_size
            empty = _without_rows(path, name, uri)
            if empty:
                note(empty)
        old = self.model.datasets.get(name)
        if old is not None and old.sha256 != digest:
            if not replace:
                raise CatalogError(f"dataset {name!r} is already pinned to sha256 {old.sha256[:12]}… and this file "
                                   f"is {digest[:12]}…", where=self.shown, field=f"datasets.{name}",
                                   hint=f"replacing a pin is recorded: `impactbook dataset add {name} {uri} "
                                        "--replace --reason TEXT`")
            if not (reason or "").strip():
                raise CatalogError("replacing a pin needs a reason", field="--reason")
        editable_mode(self.project.catalog_path)  # a pin recorded must be a pin written
        Ledger(self.project.ledger_path).append("pin", {
            "dataset": name, "uri": uri, "sha256": digest, "size": size,
            **({"snapshot": snapshot.record()} if table else {}),
            "replaces": old.sha256 if old is not None else None,
            "reason": (reason or "").strip() or ("first pin" if old is None else "re-pinned (same bytes)"),
            "by": (by or "").strip() or current_user(),
            **({"synthetic": synthetic} if synthetic is not None else {})})
        _, entry = self._entry("datasets", name)
        entry["uri"] = uri
        entry["sha256"] = digest
        entry["size"] = size
        entry["format"] = "postgresql" if table else "parquet" if Path(uri).suffix == ".parquet" else "csv"
        if synthetic is not None:
            if synthetic:
                entry["synthetic"] = True
            else:
                entry.pop("synthetic", None)
        if contract is not None:
            entry["contract"] = contract.model_dump(mode="json", exclude_defaults=True)
        self._save()
        return self.dataset(name)

    def pin_template(self, name: str, path: Path, version: int | str | None = None) -> TemplatePin:
        """Pin a template by its source hash. Stored outputs are stripped from the file first (a template
        keeps none); a changed source gets the next version unless one is given."""
        path = self.project.resolve(path)
        shown = self.project.relative(path)
        notebook = read_template(path, shown)
        stripped = has_outputs(notebook)
        if stripped:
            import nbformat

            rewrite_text(path, nbformat.writes(strip_outputs(notebook)) + "\n")
        digest = sha256_json(source_record(notebook))
        old = self.model.templates.get(name)
        if version is None:
            version = old.version if old is not None and old.sha256 == digest else (
                old.version + 1 if old is not None and isinstance(old.version, int) else 1)
        _, entry = self._entry("templates", name)
        entry["path"] = shown
        entry["version"] = version
        entry["sha256"] = digest
        self._save()
        return TemplatePin(self.template(name), stripped, old is None or old.sha256 != digest)

    def _entry(self, section_key: str, name: str) -> tuple[None, CommentedMap]:
        """The entry in the round-trip document, created if new."""
        if not isinstance(self.document.get(section_key), dict):
            self.document[section_key] = CommentedMap()
        section = self.document[section_key]
        if section.get(name) is None:
            section[name] = CommentedMap()
        return None, section[name]

    def _save(self) -> None:
        """Validate before writing, then replace the file atomically."""
        try:
            self.model = CatalogModel.model_validate({k: (v or {}) for k, v in self.document.items()})
        except ValidationError as exc:
            raise validation_error(CatalogError, exc, self.document, self.shown, CatalogModel) from None
        buffer = io.StringIO()
        round_trip().dump(self.document, buffer)
        rewrite_text(self.project.catalog_path, buffer.getvalue())


def _without_rows(path: Path, name: str, uri: str) -> str | None:
    """A file that is no table is refused before it is pinned (an empty or truncated file would pin for
    good and fail every run); one without rows is pinned with a warning (an empty table is a table)."""
    import duckdb

    from .sqlengine import locked_connection, source_sql

    field, kind = f"datasets.{name}.uri", "parquet" if path.suffix == ".parquet" else "csv"
    if path.stat().st_size == 0:
        raise CatalogError(f"{uri} is empty (0 bytes): there is nothing to pin", field=field)
    connection = locked_connection([path])
    try:
        rows = connection.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {source_sql(path, kind)} LIMIT 1)").fetchone()
    except duckdb.Error as exc:
        raise CatalogError(f"{uri} cannot be read as {kind} ({str(exc).splitlines()[0][:300]})", field=field,
                           hint="is the file complete? pin it once it is written") from None
    finally:
        connection.close()
    if rows and rows[0]:
        return None
    return f"warning: {uri} has no rows; runs on this pin are INADMISSIBLE (pin the data once it has rows)"


def _remote_pin(url: str, name: str) -> tuple[str, int]:
    """sha256 and size of an object, streamed from its store."""
    import fsspec

    try:
        return sha256_url(url), fsspec.core.url_to_fs(url, **fresh_options())[0].size(url)
    except FileNotFoundError as exc:
        raise CatalogError(f"no such object: {url}", field=f"datasets.{name}.uri") from exc


def load_contract(path: Path) -> Contract:
    shown = str(path)
    data = load_yaml(path, CatalogError, shown)
    try:
        return Contract.model_validate(data)
    except ValidationError as exc:
        raise validation_error(CatalogError, exc, data, shown) from None
