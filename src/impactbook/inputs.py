"""Stage 2 of a run: resolve pinned inputs from the catalog and check their hashes (the data checks,
contracts included, are datacheck.py's)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import Catalog, DatasetEntry
from .errors import InputError
from .hashing import remote_url, sha256_file, sha256_url, warehouse_url
from .project import Project
from .scratch import ScratchFolder

if TYPE_CHECKING:  # pandas is imported where data is read, not when a run starts (see gates.py)
    import pandas as pd

    from .backends.warehouse import Snapshot


@dataclass(frozen=True)
class ResolvedInput:
    parameter: str
    name: str
    entry: DatasetEntry
    path: Path

    @property
    def uri(self) -> str:
        return self.entry.uri

    def pin(self) -> dict[str, object]:
        """What the kernel is told to read for this dataset (the pin the gate checked)."""
        uri = warehouse_url(self.entry.uri) or remote_url(self.path) or str(self.path)
        return {"uri": uri, "sha256": self.entry.sha256, "format": self.entry.format}

    def record(self, pin_seq: int | None = None) -> dict[str, object]:
        return {"parameter": self.parameter, "name": self.name, "uri": self.uri, "sha256": self.entry.sha256,
                "size": self.entry.size, "format": self.entry.format, "synthetic": self.entry.synthetic,
                "pin_seq": pin_seq}


def resolve_inputs(project: Project, catalog: Catalog, inputs: dict[str, str]) -> list[ResolvedInput]:
    """Map each template input parameter to its catalog entry (unknown names fail with suggestions)."""
    return [ResolvedInput(parameter, name, entry := catalog.dataset(name), input_path(project, entry.uri))
            for parameter, name in inputs.items()]


def input_path(project: Project, uri: str) -> Path:
    """A catalog uri as a path: relative to the project, or an s3:// URL kept as given (see hashing.remote_url).
    A warehouse table has no path: its stages read `entry.uri` (hashing.warehouse_url)."""
    return Path(uri) if remote_url(uri) or warehouse_url(uri) else project.resolve(uri)


def latest_pins(entries: list[dict]) -> dict[str, dict]:
    """Dataset name -> its latest pin entry in the ledger."""
    return {e["dataset"]: e for e in entries if e.get("kind") == "pin"}


def pin_problem(item: ResolvedInput, pins: dict[str, dict], history: list[dict] | None = None) -> str | None:
    """Pins change only on purpose: the catalog's pin must be the latest one the ledger records (with
    `history`, any pin the ledger ever recorded for the dataset: a reproduction uses its run's pin)."""
    if history is not None and any(e.get("kind") == "pin" and e.get("dataset") == item.name
                                   and e.get("sha256") == item.entry.sha256 for e in history):
        return None
    recorded = pins.get(item.name)
    fix = (f"review the change, then `impactbook dataset add {item.name} {item.uri} --replace --reason ...` "
           "records it")
    if recorded is None:
        return f"datasets.{item.name}.sha256: this pin was never recorded in the ledger ({fix})"
    if recorded.get("sha256") != item.entry.sha256:
        return (f"datasets.{item.name}.sha256: catalog.yaml pins {item.entry.sha256[:12]}…, but the ledger's latest "
                f"pin (entry {recorded['seq']}) is {str(recorded.get('sha256'))[:12]}… — the pin was edited by hand ({fix})")
    return None


@dataclass(frozen=True)
class HashCheck:
    """A pin's check: the problem, if any, and the file's identity when it held still while hashed. For an
    object in a store, `copy` is a local file holding exactly the bytes that were hashed, and `steady` is its
    identity: every later read uses it, never the store again."""

    problem: str | None
    steady: dict[str, int] | None = None
    copy: Path | None = None


STEADY_S = 2.0  # a file changed this recently may change again within the same timestamp tick, unseen


def file_identity(path: Path) -> dict[str, int]:
    """What the file system says of a file's bytes without reading them. A write changes the change time
    (ctime), which no caller can set back (utime sets it to now), and a replacement changes the inode."""
    found = os.stat(path)
    return {"device": found.st_dev, "inode": found.st_ino, "size": found.st_size, "mtime_ns": found.st_mtime_ns,
            "ctime_ns": found.st_ctime_ns}


def sha256_steady(path: Path) -> tuple[str, dict[str, int] | None]:
    """The file's sha256 and, when the file held still while it was hashed and had not changed for
    STEADY_S before, its identity: a later equal identity proves the same bytes without re-reading them
    (git's index uses the same proof, and the same guard against changes within one timestamp tick)."""
    began, before = time.time(), file_identity(path)
    digest = sha256_file(path)
    after = file_identity(path)
    settled = max(after["ctime_ns"], after["mtime_ns"]) / 1e9 < began - STEADY_S
    return digest, after if before == after and settled else None


def hash_problem(item: ResolvedInput) -> str | None:
    return hash_check(item).problem


COPIES_PREFIX = "impactbook-inputs-"  # scratch folders of copies of objects in a store
_own_copies: list[ScratchFolder] = []


def _process_copies() -> Path:
    """Where this process copies the objects it hashes for itself (a template run by hand, a reproduction's
    check): one scratch folder, removed when the process exits, or by a later one if this one is killed."""
    if not _own_copies:
        import atexit

        folder = ScratchFolder(COPIES_PREFIX)
        atexit.register(folder.remove)
        _own_copies.append(folder)
    return _own_copies[0].path


def hash_check(item: ResolvedInput, copies: Path | None = None) -> HashCheck:
    """The pin's check. An object in a store is copied, as it is hashed, into a new file in `copies` (default:
    this process's own scratch folder), which the caller reads and removes."""
    where = f"datasets.{item.name}"
    if warehouse_url(item.entry.uri):
        return HashCheck(table_problem(item))
    url = remote_url(item.path)
    if url is not None:
        return _remote_check(item, url, copies)
    if not item.path.is_file():
        return HashCheck(f"{where}.uri: input file {item.uri} does not exist")
    actual, steady = sha256_steady(item.path)
    if actual == item.entry.sha256:
        return HashCheck(None, steady)
    return HashCheck(_mismatch(item, where, actual))


def _remote_check(item: ResolvedInput, url: str, copies: Path | None) -> HashCheck:
    import tempfile

    handle, name = tempfile.mkstemp(prefix=f"{item.name}-", suffix=f".{item.entry.format}",
                                    dir=copies if copies is not None else _process_copies())
    os.close(handle)
    copy = Path(name)
    try:
        actual = sha256_url(url, copy)
    except FileNotFoundError:
        copy.unlink(missing_ok=True)
        return HashCheck(f"datasets.{item.name}.uri: input object {url} does not exist")
    except BaseException:
        copy.unlink(missing_ok=True)
        raise
    if actual != item.entry.sha256:
        copy.unlink(missing_ok=True)
        return HashCheck(_mismatch(item, f"datasets.{item.name}", actual))
    copy.chmod(0o400)
    return HashCheck(None, file_identity(copy), copy)


def _mismatch(item: ResolvedInput, where: str, actual: str) -> str:
    return (f"{where}.sha256: input {item.uri} does not match its pin "
            f"(pinned {item.entry.sha256[:12]}…, file is {actual[:12]}…; restore the pinned file, or if the new "
            f"bytes are intended: `impactbook dataset add {item.name} {item.uri} --replace --reason ...`)")


def table_problem(item: ResolvedInput) -> str | None:
    """A warehouse table's snapshot hash, recomputed in the database, against its pin."""
    from .backends.warehouse import table_snapshot

    try:
        return table_mismatch(item, table_snapshot(item.entry.uri))
    except InputError as exc:
        return f"datasets.{item.name}.uri: {exc}"


def table_mismatch(item: ResolvedInput, found: Snapshot) -> str | None:
    """A warehouse table's snapshot, computed in the database, against its pin, as a file's hash is."""
    if found.sha256 == item.entry.sha256:
        return None
    return (f"datasets.{item.name}.sha256: warehouse table {item.uri} does not match its pin (pinned "
            f"{item.entry.sha256[:12]}…, its rows now hash to {found.sha256[:12]}… over {found.rows:,} rows: rows or "
            f"column types changed; restore the pinned rows, or if the change is intended: "
            f"`impactbook dataset add {item.name} {item.uri} --replace --reason ...`)")


def read_dataset(path: Path, entry: DatasetEntry) -> pd.DataFrame:
    """Read a pinned dataset, parsing the date columns its contract declares."""
    import pandas as pd

    if entry.format == "postgresql":
        raise InputError("a warehouse table is not read into pandas: its analysis runs in the database "
                         "(impactbook.notebook.analyse_input)", where=entry.uri.partition("#")[0])
    contract = entry.contract
    path = remote_url(path) or path  # pandas reads s3:// through fsspec (s3fs)
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
        raise InputError(f"cannot read {Path(path).name}: {exc}", where=str(path)) from exc


def _csv_header(path: Path) -> list[str]:
    import pandas as pd

    return list(pd.read_csv(path, nrows=0).columns)


PINS_ENV = "IMPACTBOOK_PINS"
VERIFIED_ENV = "IMPACTBOOK_VERIFIED"  # a file: dataset -> the identity of the file the run's gate hashed


def pinned_input(name: str, project: Project | None = None) -> ResolvedInput:
    """A dataset as a template sees it, its sha256 checked (or, under `impactbook run`, proved unchanged
    since the run's gate hashed it: see verified_unchanged)."""
    item, shown = run_pin(name, project)
    if remote_url(item.path):  # read from a local copy of the bytes that were hashed (see HashCheck)
        return replace(item, path=verified_copy(item) or _checked_copy(item, shown))
    if verified_unchanged(item):
        return item
    if problem := hash_problem(item):
        raise InputError(problem, where=shown)
    return item


def _checked_copy(item: ResolvedInput, shown: str) -> Path:
    """An object hashed into a copy by this process (a template run by hand); removed when it exits."""
    hashed = hash_check(item)
    if hashed.problem or hashed.copy is None:
        raise InputError(hashed.problem or f"datasets.{item.name}: no copy", where=shown)
    return hashed.copy


def verified_copy(item: ResolvedInput) -> Path | None:
    """The run's gate's copy of this object, when it copied this pin and the copy is unchanged since."""
    import json

    where = os.environ.get(VERIFIED_ENV)
    if not where:
        return None
    try:
        verified = json.loads(Path(where).read_text(encoding="utf-8")).get(item.name)
        if not (isinstance(verified, dict) and verified.get("sha256") == item.entry.sha256
                and verified.get("path") == remote_url(item.path) and verified.get("copy")):
            return None
        copy = Path(verified["copy"])
        return copy if verified.get("identity") == file_identity(copy) else None
    except (OSError, ValueError):
        return None


def verified_unchanged(item: ResolvedInput) -> bool:
    """Whether the run's gate hashed exactly this file against this pin, and the file's identity is still
    the one it held while hashed (sha256_steady): the same bytes, so the kernel need not read them twice
    (1-2 s on a 100M-row table). Anything else — no gate, another file, any write since — re-hashes."""
    import json

    where = os.environ.get(VERIFIED_ENV)
    if not where or remote_url(item.path) or warehouse_url(item.entry.uri):
        return False
    try:
        verified = json.loads(Path(where).read_text(encoding="utf-8")).get(item.name)
        return (isinstance(verified, dict) and verified.get("sha256") == item.entry.sha256
                and verified.get("path") == str(item.path) and verified.get("identity") == file_identity(item.path))
    except (OSError, ValueError):
        return False


def run_pin(name: str, project: Project | None = None) -> tuple[ResolvedInput, str]:
    """A dataset's pin, not yet checked, and where it came from. Under `impactbook run` the kernel is told
    the exact pins the gate checked (IMPACTBOOK_PINS), so a catalog edited meanwhile changes nothing; by
    hand, the catalog's pin."""
    import json
    import os

    overrides = json.loads(os.environ.get(PINS_ENV) or "{}")
    if name in overrides:
        pin = overrides[name]
        entry = DatasetEntry(uri=pin["uri"], sha256=pin["sha256"], format=pin.get("format", "csv"))
        item, shown = ResolvedInput(name, name, entry, Path(pin["uri"])), f"the run's pin of {name}"
    else:
        project = project or Project.find()
        catalog = Catalog.load(project)
        entry = catalog.dataset(name)
        item, shown = ResolvedInput(name, name, entry, input_path(project, entry.uri)), catalog.shown
    return item, shown


def load_input(name: str, project: Project | None = None) -> pd.DataFrame:
    """What templates call for a DataFrame: a dataset by catalog name, its pin checked, never a path."""
    item = pinned_input(name, project)
    return read_dataset(item.path, item.entry)
