"""catalog.yaml: the registry of pinned datasets (uri, sha256, contract) and templates.

Edited by people and by commands alike, so it is read and written round-trip: comments and
order survive `impactbook dataset add`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml.comments import CommentedMap

from .errors import CatalogError
from .hashing import sha256_file
from .project import Project
from .yamlio import dump_yaml, explain_validation, load_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    format: Literal["csv", "parquet"] = "csv"
    contract: Contract | None = None


class TemplateEntry(_Strict):
    path: str
    version: int | str = 1
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class ModelEntry(_Strict):
    description: str | None = None


class CatalogModel(_Strict):
    datasets: dict[str, DatasetEntry] = Field(default_factory=dict)
    templates: dict[str, TemplateEntry] = Field(default_factory=dict)
    models: dict[str, ModelEntry | None] = Field(default_factory=dict)


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
            raise CatalogError(explain_validation(exc, document, shown)) from None
        return cls(project, document, model)

    @property
    def shown(self) -> str:
        return self.project.relative(self.project.catalog_path)

    def dataset(self, name: str) -> DatasetEntry:
        return _pick("dataset", name, self.model.datasets, self.shown)

    def template(self, name: str) -> TemplateEntry:
        return _pick("template", name, self.model.templates, self.shown)

    def pin_dataset(self, name: str, path: Path, contract: Contract | None = None) -> DatasetEntry:
        """Write (or re-write) a dataset pin: uri, sha256, size and contract, keeping comments elsewhere.
        Re-pinning without a contract keeps the one already there."""
        path, entry = self._entry("datasets", name, path, "uri")
        entry["uri"] = self.project.relative(path)
        entry["sha256"] = sha256_file(path)
        entry["size"] = path.stat().st_size
        entry["format"] = "parquet" if path.suffix == ".parquet" else "csv"
        if contract is not None:
            entry["contract"] = contract.model_dump(mode="json", exclude_defaults=True)
        self._save()
        return self.dataset(name)

    def pin_template(self, name: str, path: Path, version: int | str | None = None) -> TemplateEntry:
        path, entry = self._entry("templates", name, path, "path")
        entry["path"] = self.project.relative(path)
        entry["version"] = version if version is not None else entry.get("version", 1)
        entry["sha256"] = sha256_file(path)
        self._save()
        return self.template(name)

    def _entry(self, section_key: str, name: str, path: Path, field: str) -> tuple[Path, CommentedMap]:
        """The file to pin (it must exist) and its entry in the round-trip document, created if new."""
        path = self.project.resolve(path)
        if not path.is_file():
            raise CatalogError(f"no such file: {path}", where=self.shown, field=f"{section_key}.{name}.{field}")
        if not isinstance(self.document.get(section_key), dict):
            self.document[section_key] = CommentedMap()
        section = self.document[section_key]
        if section.get(name) is None:
            section[name] = CommentedMap()
        return path, section[name]

    def _save(self) -> None:
        """Validate before writing, then replace the file atomically."""
        try:
            self.model = CatalogModel.model_validate({k: (v or {}) for k, v in self.document.items()})
        except ValidationError as exc:
            raise CatalogError(explain_validation(exc, self.document, self.shown)) from None
        temporary = self.project.catalog_path.with_suffix(".yaml.tmp")
        dump_yaml(self.document, temporary)
        temporary.replace(self.project.catalog_path)


def load_contract(path: Path) -> Contract:
    shown = str(path)
    data = load_yaml(path, CatalogError, shown)
    try:
        return Contract.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(explain_validation(exc, data, shown)) from None
