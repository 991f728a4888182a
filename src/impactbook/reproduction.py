"""`impactbook reproduce RUN`: re-execute a stored run from what it recorded — its frozen plan version, the
template copy kept in its folder (whose source hash must be the one recorded), the pinned inputs (re-hashed
first), the seed — in a fresh kernel, as a new run marked "reproduction of RUN", and compare every scrap
and the environment. The comparison is stored in the new run folder and the ledger."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .audit import gate_check
from .catalog import Catalog, DatasetEntry, TemplateEntry
from .errors import ImpactbookError, InputError, VerifyError
from .freezing import FrozenPlan
from .hashing import remote_url, warehouse_url
from .index import run_folder
from .ledger import Ledger
from .project import Project
from .publication import Progress, reconcile
from .record import RunRecord
from .runner import RunOutcome, RunSpec, execute_run
from .template import CONTRACT_KEY, read_template, source_hash

RELATIVE_TOLERANCE = 1e-12
DIFFERENCES_SHOWN = 50


@dataclass(frozen=True)
class Reproduction:
    original: str
    outcome: RunOutcome
    differences: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not self.differences

    def record(self) -> dict[str, Any]:
        return {"reproduces": self.original, "run_id": self.outcome.record.run_id, "identical": self.identical,
                "differences": self.differences[:DIFFERENCES_SHOWN], "difference_count": len(self.differences),
                "environment": self.environment, "status": self.outcome.record.status.value}


def tolerances(template_path) -> tuple[float, dict[str, float]]:
    """The relative tolerance for floats: 1e-12 unless the template's metadata declares
    `impactbook.tolerance` (one number, or a number per scrap)."""
    declared = read_template(template_path).metadata.get(CONTRACT_KEY, {}).get("tolerance")
    if isinstance(declared, (int, float)):
        return float(declared), {}
    if isinstance(declared, dict):
        return RELATIVE_TOLERANCE, {k: float(v) for k, v in declared.items() if isinstance(v, (int, float))}
    return RELATIVE_TOLERANCE, {}


def compare_values(original: Any, reproduced: Any, path: str, tolerance: float, found: list[dict[str, Any]]) -> None:
    """Exact for integers, strings, booleans and nulls; floats within a relative tolerance."""
    if isinstance(original, dict) and isinstance(reproduced, dict):
        for key in sorted(set(original) | set(reproduced), key=str):
            if key not in original or key not in reproduced:
                found.append({"scrap": f"{path}.{key}", "original": original.get(key, "<absent>"),
                              "reproduced": reproduced.get(key, "<absent>")})
            else:
                compare_values(original[key], reproduced[key], f"{path}.{key}", tolerance, found)
    elif isinstance(original, list) and isinstance(reproduced, list):
        if len(original) != len(reproduced):
            found.append({"scrap": path, "original": f"{len(original)} items", "reproduced": f"{len(reproduced)} items"})
        for index, (a, b) in enumerate(zip(original, reproduced)):
            compare_values(a, b, f"{path}[{index}]", tolerance, found)
    elif isinstance(original, float) or isinstance(reproduced, float):
        same = (isinstance(original, (int, float)) and isinstance(reproduced, (int, float))
                and not isinstance(original, bool) and not isinstance(reproduced, bool)
                and math.isclose(original, reproduced, rel_tol=tolerance, abs_tol=0.0))
        if not same:
            found.append({"scrap": path, "original": original, "reproduced": reproduced})
    elif type(original) is not type(reproduced) or original != reproduced:
        found.append({"scrap": path, "original": original, "reproduced": reproduced})


def compare_scraps(original: dict[str, Any], reproduced: dict[str, Any], default: float,
                   per_scrap: dict[str, float]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in sorted(set(original) | set(reproduced)):
        if name not in original or name not in reproduced:
            found.append({"scrap": name, "original": original.get(name, "<absent>"),
                          "reproduced": reproduced.get(name, "<absent>")})
        else:
            compare_values(original[name], reproduced[name], name, per_scrap.get(name, default), found)
    return found


def environment_changes(original: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Python and package versions that differ between the two runs (informative: numbers are compared)."""
    before, after = original.get("distributions", {}), now.get("distributions", {})
    packages = {name: {"original": before.get(name), "reproduced": after.get(name)}
                for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)}
    changes: dict[str, Any] = {"packages": packages}
    if original.get("python") != now.get("python"):
        changes["python"] = {"original": original.get("python"), "reproduced": now.get("python")}
    return changes


def reproduce(project: Project, run: str, *, timeout_s: int | None = None,
              progress: Progress = lambda message: None) -> Reproduction:
    reconcile(project, progress)
    check = gate_check(project, run)
    if check.problems or check.record is None:
        raise VerifyError(f"run {check.run_id} does not verify, so there is nothing trustworthy to reproduce: "
                          + "; ".join(check.problems[:3]))
    original = check.record
    folder = run_folder(project, original.run_id)  # runs/<id>, or the copy fetched from a remote run store
    frozen = _frozen_version(project, original)
    template_path = folder / "template.ipynb"
    if not template_path.is_file():
        raise ImpactbookError(f"run {original.run_id} keeps no copy of its template (it predates template copies)",
                              where=project.relative(folder))
    source = source_hash(template_path)
    if source != original.template.sha256:
        raise VerifyError(f"the template copy in {project.relative(folder)} has source {source[:12]}, the run "
                          f"recorded {str(original.template.sha256)[:12]}")
    spec = RunSpec(frozen, TemplateEntry(path=project.relative(template_path), version=original.template.version,
                                         sha256=source),
                   template_path, source, _recorded_inputs(project, original), reproduces=original.run_id)
    original_scraps = json.loads((folder / "scraps.json").read_text(encoding="utf-8"))
    default, per_scrap = tolerances(template_path)
    holder: dict[str, Any] = {}

    def comparison(record: RunRecord, scraps: dict[str, Any]) -> dict[str, Any]:
        holder["differences"] = compare_scraps(original_scraps, scraps, default, per_scrap)
        holder["environment"] = environment_changes(original.environment, record.environment)
        return {"reproduction.json": {"reproduces": original.run_id, "identical": not holder["differences"],
                                      "relative_tolerance": default, "per_scrap_tolerance": per_scrap,
                                      "differences": holder["differences"], "environment": holder["environment"]}}

    progress(f"reproducing run {original.run_id} from its frozen plan version {frozen.version}, template copy and "
             f"pinned inputs")
    outcome = execute_run(project, spec, timeout_s=timeout_s, progress=progress, extra=comparison)
    result = Reproduction(original.run_id, outcome, holder.get("differences", []), holder.get("environment", {}))
    Ledger(project.ledger_path).append("reproduction", {
        "run_id": outcome.record.run_id, "reproduces": original.run_id, "identical": result.identical,
        "differences": len(result.differences), "status": outcome.record.status.value})
    return result


def _frozen_version(project: Project, record: RunRecord) -> FrozenPlan:
    for entry in Ledger(project.ledger_path).entries():
        if entry.get("kind") in ("freeze", "amend") and entry.get("plan_id") == record.plan.id \
                and entry.get("version") == record.plan.version:
            if entry.get("plan_hash") != record.plan.sha256:
                raise VerifyError(f"ledger entry {entry['seq']} holds another plan {record.plan.id} version "
                                  f"{record.plan.version} than run {record.run_id} recorded")
            return FrozenPlan.from_entry(entry)
    raise ImpactbookError(f"plan {record.plan.id!r} version {record.plan.version} is not in the ledger")


def _recorded_inputs(project: Project, record: RunRecord):
    """The inputs as the run pinned them, each re-hashed (a file here, an object in its store, a warehouse
    table in its database); the contract is the catalog's current one."""
    from .inputs import ResolvedInput, hash_check, input_path

    catalog = Catalog.load(project)
    inputs = []
    for item in record.inputs:
        name, uri = item["name"], item["uri"]
        current = catalog.model.datasets.get(name)
        entry = DatasetEntry(uri=uri, sha256=item["sha256"], size=item.get("size"),
                             format=item.get("format") or (current.format if current else "csv"),
                             synthetic=bool(item.get("synthetic")), contract=current.contract if current else None)
        resolved = ResolvedInput(item["parameter"], name, entry, input_path(project, uri))
        if not (remote_url(uri) or warehouse_url(uri) or resolved.path.is_file()):
            raise InputError(f"input {name} ({uri}) is no longer available, so run {record.run_id} cannot be "
                             "re-executed", where=uri)
        checked = hash_check(resolved)
        if checked.copy is not None:
            checked.copy.unlink(missing_ok=True)  # (the run's own gate hashes and copies it again)
        if checked.problem is not None:
            raise InputError(f"input {name} ({uri}) no longer has the bytes or rows run {record.run_id} used: "
                             f"{checked.problem}", where=uri, hint="restore the pinned input to reproduce the run")
        inputs.append(resolved)
    return inputs
