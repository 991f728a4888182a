"""Stage 2 of a run: resolve pinned inputs from the catalog, check their hashes and data contracts."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import Catalog, Contract, DatasetEntry
from .errors import InputError
from .hashing import sha256_file
from .project import Project

if TYPE_CHECKING:  # pandas is imported where data is read, not when a run starts (see gates.py)
    import pandas as pd


@dataclass(frozen=True)
class ResolvedInput:
    parameter: str
    name: str
    entry: DatasetEntry
    path: Path

    @property
    def uri(self) -> str:
        return self.entry.uri

    def record(self) -> dict[str, object]:
        return {"parameter": self.parameter, "name": self.name, "uri": self.uri,
                "sha256": self.entry.sha256, "size": self.entry.size}


def resolve_inputs(project: Project, catalog: Catalog, inputs: dict[str, str]) -> list[ResolvedInput]:
    """Map each template input parameter to its catalog entry (unknown names fail with suggestions)."""
    return [ResolvedInput(parameter, name, entry := catalog.dataset(name), project.resolve(entry.uri))
            for parameter, name in inputs.items()]


def hash_problem(item: ResolvedInput) -> str | None:
    where = f"datasets.{item.name}"
    if not item.path.is_file():
        return f"{where}.uri: input file {item.uri} does not exist"
    actual = sha256_file(item.path)
    if actual != item.entry.sha256:
        return (f"{where}.sha256: input {item.uri} does not match its pin "
                f"(pinned {item.entry.sha256[:12]}…, file is {actual[:12]}…)")
    return None


_DTYPES = {"int": "int64", "float": "float64", "bool": "bool"}


def read_dataset(path: Path, entry: DatasetEntry) -> pd.DataFrame:
    """Read a pinned dataset, parsing the date columns its contract declares."""
    import pandas as pd

    contract = entry.contract
    dates = [c for c, rule in (contract.columns.items() if contract else []) if rule.type in ("date", "datetime")]
    try:
        if entry.format == "parquet":
            frame = pd.read_parquet(path)
            for column in dates:
                if column in frame:
                    frame[column] = pd.to_datetime(frame[column])
            return frame
        return pd.read_csv(path, parse_dates=[c for c in dates if c in _csv_header(path)])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}", where=str(path)) from exc


def _csv_header(path: Path) -> list[str]:
    import pandas as pd

    return list(pd.read_csv(path, nrows=0).columns)


def contract_problems(frame: pd.DataFrame, contract: Contract, name: str) -> list[str]:
    """Validate with pandera (lazily, so every violated rule is reported, each with a few examples)."""
    import pandera.pandas as pa

    columns = {}
    for column, rule in contract.columns.items():
        checks = []
        if rule.allowed is not None:
            checks.append(pa.Check.isin(rule.allowed))
        if rule.min is not None:
            checks.append(pa.Check.ge(rule.min))
        if rule.max is not None:
            checks.append(pa.Check.le(rule.max))
        dtype = pa.DateTime if rule.type in ("date", "datetime") else (str if rule.type == "str" else _DTYPES[rule.type])
        columns[column] = pa.Column(dtype, checks=checks, nullable=rule.nullable, unique=column in contract.unique,
                                    coerce=rule.type == "float")
    schema = pa.DataFrameSchema(columns, strict=contract.strict, unique=None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return _summarise(exc.failure_cases, name)
    return []


def _summarise(failures: pd.DataFrame, name: str) -> list[str]:
    problems = []
    for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=False):
        examples = ", ".join(repr(v) for v in group["failure_case"].drop_duplicates().head(3).tolist())
        rows = group["index"].notna().sum()
        field = f"datasets.{name}.contract.columns.{column}" if isinstance(column, str) else f"datasets.{name}.contract"
        count = f"{rows} rows" if rows else "column"
        problems.append(f"{field}: fails {check} ({count}; e.g. {examples})")
    return problems


def check_input(item: ResolvedInput, time_column: str) -> tuple[list[str], dict[str, str | None]]:
    """Pin, then contract: the problems found, and the span of `time_column` in the data."""
    if problem := hash_problem(item):
        return [problem], {}
    frame = read_dataset(item.path, item.entry)
    if item.entry.contract is None:
        problems = [f"datasets.{item.name}.contract: input has no data contract"]
    else:
        problems = contract_problems(frame, item.entry.contract, item.name)
    window: dict[str, str | None] = {}
    if time_column in frame:
        window = {"start": _iso(frame[time_column].min()), "end": _iso(frame[time_column].max())}
    return problems, window


def _iso(value) -> str | None:
    try:
        return value.isoformat()
    except AttributeError:
        return None if value is None else str(value)


def load_input(name: str, project: Project | None = None, verify: bool = True) -> pd.DataFrame:
    """What templates call: a catalog dataset by name, its pin checked, never a hard-coded path."""
    project = project or Project.find()
    catalog = Catalog.load(project)
    entry = catalog.dataset(name)
    item = ResolvedInput(name, name, entry, project.resolve(entry.uri))
    if verify and (problem := hash_problem(item)):
        raise InputError(problem, where=catalog.shown)
    return read_dataset(item.path, entry)
