"""The command line: parse, call one function per command, print, set the exit code.

Exit codes: 0 ok; 1 error (bad input, nothing stored); 3 verify found problems; 4 the run was
stored INADMISSIBLE; 5 the run was stored FAILED; `gate`: 0 ship, 10 hold, 20 roll back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from .errors import ImpactbookError, InputError, RunNotFoundError
from .project import Project
from .record import Status

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Reproducible, auditable impact assessments of model changes.")
dataset_app = typer.Typer(no_args_is_help=True, help="Pin datasets in catalog.yaml and verify them.")
template_app = typer.Typer(no_args_is_help=True, help="Pin templates in catalog.yaml.")
plan_app = typer.Typer(no_args_is_help=True, help="Freeze, amend and check preregistered plans.")
runs_app = typer.Typer(no_args_is_help=True, help="List and show stored runs.")
index_app = typer.Typer(no_args_is_help=True, help="The derived run index.")
rollout_app = typer.Typer(no_args_is_help=True, help="Staged rollouts: the stage history of a plan.")
ledger_app = typer.Typer(no_args_is_help=True, help="The hash-chained ledger: anchor its head outside it.")
for sub, name in ((dataset_app, "dataset"), (template_app, "template"), (plan_app, "plan"), (runs_app, "runs"),
                  (index_app, "index"), (rollout_app, "rollout"), (ledger_app, "ledger")):
    app.add_typer(sub, name=name)

# control characters and bidi overrides (C0 but tab and newline, DEL, C1, U+200E/F, U+202A-E, U+2066-9) in text a
# plan, a dataset or a decision brings in: shown as escapes, never sent to the terminal (an escape sequence in a
# decision's reason recoloured or rewrote the screen; U+202E reversed what followed it)
_UNSEEN = {code: f"\\u{code:04x}" for code in [*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0), 0x200e,
                                               0x200f, *range(0x202a, 0x202f), *range(0x2066, 0x206a)]}


class _Terminal(Console):
    """A console that prints text's control characters as escapes (see _UNSEEN)."""

    def print(self, *objects: Any, **options: Any) -> None:
        super().print(*(item.translate(_UNSEEN) if isinstance(item, str) else item for item in objects), **options)


out = _Terminal(highlight=False, soft_wrap=True)
err = _Terminal(stderr=True, highlight=False, soft_wrap=True)
EXIT_FOR_STATUS = {Status.COMPLETED: 0, Status.INADMISSIBLE: 4, Status.FAILED: 5}
JSON = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
TIMEOUT = typer.Option(None, min=1, max=10**7, help="Per-cell timeout in seconds.")
COUNT_MAX = 2**62  # what SQLite and PostgreSQL take as a LIMIT or OFFSET
PROJECT = typer.Option(None, "--project", "-C", help="Project folder (default: nearest with catalog.yaml).")
_state: dict[str, Any] = {"debug": False, "project": None}


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from . import __version__

        try:
            installed = version("impactbook")
        except PackageNotFoundError:  # run from a source checkout that pip never installed
            installed = __version__
        print(f"impactbook {installed}")
        raise typer.Exit(0)


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
             version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")) -> None:
    _state["debug"] = debug


def _project(folder: Optional[Path], reconcile: bool = True) -> Project:
    """The project, after finishing whatever an interrupted command left (verify opens it as it is,
    to report the differences instead)."""
    project = Project.find(folder)
    _state["project"] = project
    if reconcile:
        from .publication import reconcile as finish_interrupted

        _state["reconciled"] = finish_interrupted(project, _progress)
    return project


def _usage_error(message: str, command: str = "run") -> None:
    """A usage mistake found inside `command`: its usage line and the problem, exit 2 (click's convention)."""
    group = typer.main.get_command(app)
    parent = click.Context(group, info_name="impactbook")
    raise click.UsageError(message, ctx=click.Context(group.get_command(parent, command), info_name=command,
                                                      parent=parent))


def _emit(value: Any) -> None:
    _state["emitted"] = True
    try:
        if sys.stdout.isatty():  # coloured, its non-ASCII escaped as in the piped form (no control reaches the screen)
            out.print_json(json.dumps(value, default=str), ensure_ascii=True)
        else:
            print(json.dumps(value, default=str, indent=2))
    except BrokenPipeError:  # the reader left (`| head -1`): nothing more can reach it
        _stdout_gone()


def _stdout_gone() -> None:
    """Point stdout at /dev/null so the flush at exit cannot raise BrokenPipeError a second time."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _progress(message: str) -> None:
    from rich.markup import escape

    err.print(f"[dim]· {escape(message)}[/dim]")  # brackets in a path or an error are text, not markup


@app.command()
def init(folder: Path = typer.Argument(Path("."), help="Folder to scaffold (created if missing).")) -> None:
    """Scaffold a project: catalog.yaml, templates/ (with ab_test), plans/ (with example), runs/."""
    from .scaffold import init_project

    project = init_project(folder)
    out.print(f"initialised impactbook project in {project.root}\nnext: impactbook demo   (or: impactbook plan freeze plans/example.yaml)")


def _print_known_effect_run(label: str, outcome, truth: float, as_json: bool, metric: str = "conversion") -> None:
    """A demo run on synthetic data with a known effect on `metric`: its decision, then each effect, the
    known one beside the truth (a conversion effect also in percentage points)."""
    record = outcome.record
    lines = [f"{label}: run {record.run_id}: {record.status.value}, {record.decision.action.value} "
             f"({record.decision.reason}); report {outcome.report}"]
    known = f"; the true effect is {truth:+.4g}" + (f" (+{truth * 100:.1f} pp)" if metric == "conversion" else "")
    lines += [f"  {effect.sentence}" + (known if effect.metric == metric else "") for effect in record.effects]
    for line in lines:
        _progress(line) if as_json else out.print(line, markup=False)


@app.command()
def demo(project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Generate the synthetic demo data, pin it, freeze the example plan and run it end to end."""
    from .demo import run_demo

    result = run_demo(_project(project_dir, reconcile=False), progress=_progress)  # each run reconciles
    if result.rollout is not None:
        record = result.rollout.record
        message = (f"rollout monitor: run {record.run_id}: {record.decision.action.value} "
                   f"({record.decision.reason}); report {result.rollout.report}")
        if as_json:
            _progress(message)
        else:
            out.print(message, markup=False)
    from .demo import ITS_TRUE_EFFECT, MARKETS_TRUE_EFFECT, OBSERVATIONAL_TRUE_EFFECT, STATES_TRUE_EFFECT

    for label, outcome, truth, metric in (
            ("event study (market-by-market adoption)", result.markets, MARKETS_TRUE_EFFECT, "conversion"),
            ("interrupted time series (every region at once)", result.its, ITS_TRUE_EFFECT, "conversion"),
            ("synthetic control (one state switched on)", result.states, STATES_TRUE_EFFECT, "conversion"),
            ("observational (accounts that opted in)", result.accounts, OBSERVATIONAL_TRUE_EFFECT, "spend")):
        if outcome is not None:
            _print_known_effect_run(label, outcome, truth, as_json, metric)
    if result.pipeline is not None:
        record = result.pipeline.record
        breached = [v.metric for v in record.verdicts if v.statistical_verdict is not None
                    and v.statistical_verdict.value == "REFUTED"]
        lines = [f"pipeline validation: run {record.run_id}: {record.status.value}, {record.decision.action.value} "
                 f"({record.decision.reason}); report {result.pipeline.report}",
                 *(f"  breached: {check}" for check in breached)]
        for line in lines:
            _progress(line) if as_json else out.print(line, markup=False)
    _report_run(result.outcome, as_json)


@app.command()
def run(plans: Optional[list[Path]] = typer.Argument(None, readable=False,  # each plan's own error, not the batch's
                                                    help="Plan YAML file(s), e.g. plans/example.yaml "
                                                         "(a plan listed twice runs twice)."),
        timeout: Optional[int] = TIMEOUT,
        dry_run: bool = typer.Option(False, "--dry-run", help="Run every check a run makes before its kernel "
                                                              "starts and say what it would do; store nothing."),
        all_plans: bool = typer.Option(False, "--all", help="Run every frozen plan whose inputs are pinned."),
        executor: Optional[str] = typer.Option(None, "--executor", help="Where several runs execute: local (a "
                                               "process pool, the default) or dask (with --scheduler)."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. "
                                                                         "tcp://127.0.0.1:8786."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, max=1024, help="Concurrent runs for --executor "
                                                                            "local (default: one per core)."),
        project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Run frozen plan(s): gates, Papermill execution, capture, immutable store, index, report. Several
    plans (or --all) run concurrently, each in its own process and kernel; exit code: 1 if any could not
    run, else the highest run exit code."""
    from .runner import run_plan

    plans = list(plans or [])
    if all_plans or len(plans) > 1 or executor is not None or workers is not None or scheduler is not None:
        _run_many(plans, all_plans, executor or "local", scheduler, workers, timeout, dry_run, project_dir, as_json)
    if not plans:
        _usage_error("give a plan file (or several, or --all)")
    if dry_run:
        _dry_run(plans[0], project_dir, as_json)
    project = _project(project_dir, reconcile=False)  # run_plan reconciles first
    _report_run(run_plan(project, _plan_path(project, plans[0]), timeout_s=timeout, progress=_progress), as_json)


def _run_many(plans: list[Path], all_plans: bool, executor: str, scheduler: Optional[str], workers: Optional[int],
              timeout: Optional[int], dry_run: bool, project_dir: Optional[Path], as_json: bool) -> None:
    from .backends.executors import BatchInterrupted, ExecutorError, executors
    from .batch import batch_exit_code, run_many, runnable_plans

    if dry_run:
        _usage_error("--dry-run checks one plan at a time")
    if all_plans and plans:
        _usage_error("give plan files or --all, not both")
    project = _project(project_dir)
    skipped = []
    if all_plans:
        selection = runnable_plans(project)
        for plan, why in selection.skipped:
            _progress(f"skipped {plan}: {why}")
        chosen, skipped = selection.plans, [{"plan": plan, "skipped": why} for plan, why in selection.skipped]
    else:
        chosen = [project.relative(_plan_path(project, plan)) for plan in plans]
    if not chosen:
        if as_json and skipped:
            _emit(skipped)
        raise InputError("no frozen plan with pinned inputs to run" + (f": all {len(skipped)} were skipped (see above)"
                                                                       if skipped else ""), where=str(project.root))
    try:
        results = run_many(project, chosen, executors().get(executor, workers=workers, scheduler=scheduler), timeout,
                           _progress)
    except ExecutorError as exc:
        raise InputError(str(exc)) from None  # (it names the option itself)
    except BatchInterrupted as stopped:  # every run reported, then the interrupt (exit 130)
        _report_batch(stopped.results, skipped, as_json)
        raise KeyboardInterrupt(str(stopped)) from None
    _report_batch(results, skipped, as_json)
    raise typer.Exit(batch_exit_code(results))


def _report_batch(results: list, skipped: list[dict[str, str]], as_json: bool) -> None:
    from .batch import describe

    if as_json:
        _emit([{"plan": r.job.plan, "exit_code": r.exit_code, "seconds": round(r.seconds, 3), "error": r.error,
                **(r.summary or {})} for r in results] + skipped)
    else:
        for result in results:
            out.print(describe(result), markup=False)


def _dry_run(plan: Path, project_dir: Optional[Path], as_json: bool) -> None:
    from .runner import dry_run

    project = Project.find(project_dir)
    result = dry_run(project, _plan_path(project, plan))
    gate, spec = result.gate, result.spec
    if as_json:
        _emit(result.record())
    else:
        out.print(f"plan {spec.frozen.plan.id} v{spec.frozen.version} (frozen {spec.frozen.frozen_at}); template "
                  f"{spec.template.path} source {spec.template_source[:12]}", markup=False)
        for item in spec.inputs:
            out.print(f"input {item.parameter} = {item.name}: {item.uri} sha256 {item.entry.sha256[:12]}", markup=False)
        for facts in gate.inputs:
            out.print(f"  {facts['name']}: {facts['rows']:,} rows" + (f", {facts['first_time']} to {facts['last_time']}"
                      if facts.get("first_time") else "") + "".join(f"; {n:,} excluded ({why})"
                      for why, n in (facts.get("excluded") or {}).items()), markup=False)
        for line in [*(f"inadmissible: {p}" for p in gate.inadmissible), *(f"deviation: {d}" for d in gate.deviations),
                     *(f"note: {n}" for n in gate.notes)]:
            out.print(line, markup=False)
        out.print(("would run: " if gate.admissible else "would store an INADMISSIBLE run; no kernel: ")
                  + f"{spec.template.path} in a fresh kernel with {', '.join(sorted(spec.frozen.plan.template_parameters()))}"
                  + (f" [{', '.join(gate.labels)}]" if gate.labels else "") + "; nothing was stored", markup=False)
    raise typer.Exit(0 if gate.admissible else 4)


def _plan_path(project: Project, plan: Path) -> Path:
    """A plan path as the user typed it: from the current folder when it names a file there (made absolute:
    the run reads it from the project root), else from the project root."""
    if plan.is_absolute() or not (Path.cwd() / plan).exists():
        return plan if plan.is_absolute() else project.resolve(plan)
    return Path(os.path.abspath(plan))


def _report_run(outcome, as_json: bool) -> None:
    record = outcome.record
    if as_json:
        _emit({**record.summary(), "folder": str(outcome.folder), "report": str(outcome.report),
               "errors": record.errors, "inadmissible": record.gate.get("inadmissible", []),
               "deviations": record.gate.get("deviations", [])})
    else:
        out.print(f"run id:   {record.run_id}")
        out.print(f"status:   {record.status.value}" + (f" [{', '.join(record.labels)}]" if record.labels else ""))
        for note in record.gate.get("notes", []):
            out.print(f"note:     {note}", markup=False)
        for verdict in record.verdicts:
            shown = verdict.verdict.value
            if verdict.statistical_verdict and verdict.statistical_verdict is not verdict.verdict:
                shown += f" (statistical result: {verdict.statistical_verdict.value})"
            out.print(f"verdict:  {verdict.metric} ({verdict.role}): {shown}", markup=False)
        for effect in record.effects:
            out.print(f"effect:   {effect.sentence}", markup=False)
        for reason in record.gate.get("inadmissible", []) + record.errors:
            out.print(f"reason:   {reason}", markup=False)
        for deviation in record.gate.get("deviations", []):
            out.print(f"deviation: {deviation}", markup=False)
        out.print(f"decision: {record.decision.action.value} ({record.decision.reason})", markup=False)
        out.print(f"report:   {outcome.report}")
    raise typer.Exit(EXIT_FOR_STATUS[record.status])


@dataset_app.command("add")
def dataset_add(name: str, path: str,
                contract: Optional[Path] = typer.Option(None, "--contract", help="YAML data contract to pin with it."),
                replace: bool = typer.Option(False, "--replace", help="Replace an existing pin (needs --reason)."),
                reason: Optional[str] = typer.Option(None, "--reason", help="Why the pin changes (in the ledger)."),
                by: Optional[str] = typer.Option(None, "--by", help="Who pins (default: git user.name or login)."),
                allow_outside: bool = typer.Option(False, "--allow-outside",
                                                   help="Allow a file outside the project (stored as an absolute path)."),
                synthetic: Optional[bool] = typer.Option(None, "--synthetic/--real",
                                                         help="Generated data: runs are labelled SIMULATED."),
                project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Pin a dataset: sha256, size, uri and contract written into catalog.yaml (comments kept) and a pin
    entry in the ledger. Replacing a pin needs --replace and --reason."""
    from .catalog import Catalog, load_contract
    from .hashing import remote_url, warehouse_url

    project = _project(project_dir)
    snapshot = None
    if warehouse_url(path):  # a warehouse table: its snapshot hash is computed in the database
        from .backends.warehouse import table_snapshot

        snapshot = table_snapshot(path)
    # s3://bucket/key and postgresql://...#table are pinned where they are
    where = path if remote_url(path) or snapshot else Path(path).absolute()
    warnings: list[str] = []
    entry = Catalog.load(project).pin_dataset(name, where, load_contract(contract) if contract else None,
                                              replace=replace, reason=reason, by=by, allow_outside=allow_outside,
                                              synthetic=synthetic, snapshot=snapshot, note=warnings.append)
    for warning in warnings:
        err.print(warning, markup=False)
    if as_json:
        _emit({"name": name, **entry.model_dump(mode="json"), "warnings": warnings})
    else:
        size = f"{snapshot.rows:,} rows, snapshot hashed in the database" if snapshot else f"{entry.size:,} bytes"
        out.print(f"pinned {name}: {entry.uri} sha256 {entry.sha256} ({size})"
                  + ("" if entry.contract else " — no contract yet: runs using it are INADMISSIBLE until one is added"))


@dataset_app.command("verify")
def dataset_verify(name: Optional[str] = typer.Argument(None), project_dir: Optional[Path] = PROJECT,
                   as_json: bool = JSON) -> None:
    """Check each pinned dataset's sha256 (and contract); exit 3 when any does not match."""
    import datetime as dt

    from .catalog import Catalog
    from .datacheck import check_input
    from .inputs import ResolvedInput, input_path

    project = _project(project_dir)
    catalog = Catalog.load(project)
    names = [name] if name else list(catalog.model.datasets)
    results = {}
    for item_name in names:
        entry = catalog.dataset(item_name)
        item = ResolvedInput(item_name, item_name, entry, input_path(project, entry.uri))
        results[item_name] = check_input(item, None, dt.datetime.now(dt.timezone.utc)).problems
    if as_json:
        _emit({"datasets": {n: {"ok": not p, "problems": p} for n, p in results.items()}})
    else:
        for item_name, problems in results.items():
            out.print(f"{item_name}: {'ok' if not problems else 'MISMATCH'}")
            for problem in problems:
                out.print(f"  {problem}", markup=False)
    if any(results.values()):
        raise typer.Exit(3)


@template_app.command("add")
def template_add(name: str, path: Path, version: Optional[str] = typer.Option(None),
                 project_dir: Optional[Path] = PROJECT) -> None:
    """Pin a template's path, version and source hash in catalog.yaml (after every reviewed edit).

    The source hash covers cell sources and types, the parameters tag and the output contract; stored
    outputs are stripped from the file; a changed source gets the next version."""
    from .catalog import Catalog

    pin = Catalog.load(_project(project_dir)).pin_template(name, Path(path).absolute(), version)
    entry = pin.entry
    out.print(f"pinned template {name}: {entry.path} version {entry.version}, source sha256 {entry.sha256}"
              + (" (stored outputs stripped from the file)" if pin.stripped_outputs else "")
              + ("" if pin.changed else " (unchanged)"))


@template_app.command("new")
def template_new(name: str = typer.Argument(..., help="Template name (templates/NAME.ipynb)."),
                 input_parameter: str = typer.Option("data", "--input", help="Its input parameter's name."),
                 project_dir: Optional[Path] = PROJECT) -> None:
    """Scaffold a minimal custom template that satisfies the result contract, and pin it."""
    from .scaffold import new_template

    pin = new_template(_project(project_dir), name, input_parameter)
    out.print(f"created {pin.entry.path} and pinned it (version {pin.entry.version}); point a plan's `template:` "
              f"at {name} and its `inputs:` at {input_parameter}", markup=False)


@plan_app.command("freeze")
def plan_freeze(plan: Path, project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Validate a plan and record its canonical hash, time and git commit in the ledger."""
    from .freezing import freeze_plan

    project = _project(project_dir)
    frozen = freeze_plan(project, _plan_path(project, plan))
    _print_frozen(frozen, as_json)


@plan_app.command("amend")
def plan_amend(plan: Path, reason: str = typer.Option(..., "--reason", help="Why the plan changes (shown in reports)."),
               project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Record a new version of a frozen plan, pointing to the version it replaces."""
    from .freezing import amend_plan

    project = _project(project_dir)
    _print_frozen(amend_plan(project, _plan_path(project, plan), reason), as_json)


def _print_frozen(frozen, as_json: bool) -> None:
    from .freezing import freeze_notes

    entry = frozen.entry
    notes = freeze_notes(frozen)
    for note in notes:
        err.print(note, markup=False)
    if as_json:
        _emit({**{k: v for k, v in entry.items() if k != "plan"}, "notes": notes})
    else:
        out.print(f"{frozen.path}: plan {frozen.plan.id} version {frozen.version} frozen at {frozen.frozen_at} "
                  f"(sha256 {frozen.sha256[:16]}…, ledger entry {entry['seq']}, git {str(entry.get('git_commit'))[:10]}"
                  f"{' dirty' if entry.get('git_dirty') else ''})")


@plan_app.command("check")
def plan_check(plan: Optional[Path] = typer.Argument(None, help="Plan file; default: every plans/*.yaml."),
               project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Say whether each plan on disk still matches its latest frozen version; exit 1 if a frozen one does not.

    A plan never frozen (a scaffold, a draft) has nothing to match yet: it is listed, not counted."""
    from .freezing import plan_status

    project = _project(project_dir)
    paths = [_plan_path(project, plan)] if plan else sorted((project.root / "plans").glob("*.y*ml"))
    statuses = [plan_status(project, p) for p in paths]
    if as_json:
        _emit([{"plan_id": s.plan_id, "path": s.path, "state": s.state, "on_disk_sha256": s.on_disk_hash,
                "frozen_version": s.frozen.version if s.frozen else None,
                "frozen_sha256": s.frozen.sha256 if s.frozen else None} for s in statuses])
    else:
        for s in statuses:
            version = f" (version {s.frozen.version}, frozen {s.frozen.frozen_at})" if s.frozen else ""
            out.print(f"{s.path}: {s.plan_id}: {s.state}{version}")
    if any(s.frozen is not None and not s.matches for s in statuses):
        raise typer.Exit(1)


@runs_app.command("list")
def runs_list(plan: Optional[str] = typer.Option(None, "--plan", help="Only runs of this plan id."),
              limit: Optional[int] = typer.Option(None, "--limit", min=1, max=COUNT_MAX,
                                                  help="At most this many runs (a page)."),
              offset: int = typer.Option(0, "--offset", min=0, max=COUNT_MAX,
                                         help="Skip this many runs first (the next page)."),
              newest: bool = typer.Option(False, "--newest", help="Newest first (with --limit: the latest runs)."),
              project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Runs in the index, oldest first; --limit/--offset page through them in the database."""
    from .index import open_index

    index = open_index(_project(project_dir))
    rows = index.rows(plan, limit, offset, newest)
    if limit is not None or offset:
        shown = f"{offset + 1}-{offset + len(rows)}" if rows else "none"
        print(f"runs {shown} of {index.count(plan)}", file=sys.stderr)
    if as_json:
        _emit(rows)
        return
    lines = [(row["run_id"], (row["started_at"] or "")[:19].replace("T", " "), row["plan_id"], str(row["plan_version"]),
              row["status"] + (f" [{row['labels']}]" if row.get("labels") else "")
              + (" [NOT IN LEDGER]" if row.get("ledger_seq") is None else ""), row["decision"],
              row.get("primary_effect") or "") for row in rows]
    if sys.stdout.isatty():
        table = Table("run id", "started (UTC)", "plan", "v", "status", "decision", "primary effect")
        for line in lines:
            table.add_row(*(cell.translate(_UNSEEN) for cell in line))
        out.print(table)
    else:  # piped: one tab-separated line per run, nothing cut
        print("\t".join(("run_id", "started_utc", "plan", "version", "status", "decision", "primary_effect")))
        for line in lines:
            print("\t".join(line))


def _record(project: Project, run: str):
    from .index import load_record, open_index, run_folder

    row = open_index(project).find(run)
    folder = run_folder(project, row["run_id"])
    if not folder.is_dir():
        raise RunNotFoundError(f"run folder {project.relative(folder)} is missing", hint="run `impactbook verify`")
    return load_record(folder), folder


@runs_app.command("show")
def runs_show(run: str = typer.Argument(..., help="Run id, unique prefix, or 'latest'."),
              project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Everything recorded about one run (run.json), checked first as `gate` checks it: exit 3 when it does not
    verify (its problems are listed before it, and in --json as `problems`)."""
    project = _project(project_dir)
    record, folder = _record(project, run)
    problems = _unverified(project, record.run_id)
    if as_json:
        _emit({**record.model_dump(mode="json"), "verified": not problems, "problems": problems})
        _exit_if_unverified(problems)
        return
    out.print(f"run {record.run_id} ({record.status.value}) in {folder}")
    out.print(f"plan {record.plan.id} v{record.plan.version} sha256 {record.plan.sha256[:16]}… frozen {record.plan.frozen_at}")
    out.print(f"template {record.template.path} sha256 {str(record.template.sha256)[:16]}…")
    for item in record.inputs:
        out.print(f"input {item['parameter']} = {item['name']}: {item['uri']} sha256 {item['sha256'][:16]}…")
    for verdict in record.verdicts:
        out.print(f"{verdict.metric} ({verdict.role}): {verdict.verdict.value} — {verdict.reason}", markup=False)
    for effect in record.effects:
        out.print(f"effect: {effect.sentence}", markup=False)
    for facts in record.gate.get("inputs", []):
        out.print(f"data {facts['name']}: {facts['rows']:,} rows" + "".join(
            f"; {n:,} excluded ({why})" for why, n in (facts.get("excluded") or {}).items()), markup=False)
    for problem in record.gate.get("inadmissible", []) + record.gate.get("deviations", []) + record.errors:
        out.print(f"note: {problem}", markup=False)
    out.print(f"decision {record.decision.action.value}: {record.decision.reason}", markup=False)
    environment, timings = record.environment, record.timings
    took = (f"{timings.duration_s}s total" if timings.duration_s is not None
            else f"started {timings.started_at}, never finished")
    if timings.execution_s is not None:
        took += f", {timings.execution_s}s in the kernel"
    out.print(f"python {environment.get('python', 'unrecorded')} on {environment.get('platform', 'unrecorded')}; "
              f"{took}", markup=False)
    _exit_if_unverified(problems)


def _unverified(project: Project, run_id: str) -> list[str]:
    """Why a run does not verify (gate's checks: its files, the ledger chain, its ledger entry); said on
    stderr at once, so a tampered run.json is never shown as genuine."""
    from .audit import gate_check

    problems = gate_check(project, run_id).problems
    if problems:
        err.print(f"{run_id}: does not verify, so what follows cannot be trusted:", markup=False)
        for problem in problems:
            err.print(f"  {problem}", markup=False)
    return problems


def _exit_if_unverified(problems: list[str]) -> None:
    if problems:
        raise typer.Exit(3)


@app.command()
def report(run: str = typer.Argument(..., help="Run id, unique prefix, or 'latest'."),
           output: Optional[Path] = typer.Option(None, "--out", help="Where to write (default runs/.reports/<run>.html)."),
           project_dir: Optional[Path] = PROJECT) -> None:
    """Re-render a run's HTML report from its stored notebook and record; print its path.

    The report stored inside the run folder is part of the immutable artifact and never rewritten. A run that
    does not verify is rendered under a banner saying so, and the command exits 3."""
    from .plan import plan_from_canonical
    from .report import render_report

    project = _project(project_dir)
    record, folder = _record(project, run)
    plan = plan_from_canonical(json.loads((folder / "plan.json").read_text(encoding="utf-8")))
    target = _report_target(project, output) if output else project.rendered_dir / f"{record.run_id}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    from .decisionlog import decisions_for

    notebook = folder / "notebook.ipynb"
    scraps = json.loads((folder / "scraps.json").read_text(encoding="utf-8")) if (folder / "scraps.json").exists() else {}
    problems = _unverified(project, record.run_id)
    print(render_report(record, plan, notebook if notebook.exists() else None, target,
                        decisions_for(project, record.run_id),
                        scraps.get("results") if isinstance(scraps.get("results"), list) else None, problems))
    _exit_if_unverified(problems)


def _report_target(project: Project, output: Path) -> Path:
    """`report --out` overwrites its file with HTML: only an .html file may be, and none of the project's own
    folders (`--out runs/ledger.jsonl` replaced the ledger, `--out catalog.yaml` the catalog)."""
    shown, hint = str(output), "give a file name ending in .html, e.g. --out report.html"
    target = output if output.is_absolute() else Path.cwd() / output
    if target.is_dir():
        raise ImpactbookError("is a folder; --out takes the report's file name", where=shown, hint=hint)
    resolved = target.resolve()
    if {target.suffix.lower(), resolved.suffix.lower()} - {".html", ".htm"}:  # (a link's target too)
        raise ImpactbookError("does not end in .html; the report would overwrite it with HTML", where=shown,
                              hint=hint)
    folder = project.own_folder_holding(resolved)
    if folder is not None and project.rendered_dir.resolve() not in resolved.parents:
        raise ImpactbookError(f"inside the project's {folder.name}/ folder, which a report must not write into",
                              where=shown, hint=hint)
    return target


@app.command()
def gate(run: str = typer.Argument(..., help="Run id, unique prefix, or 'latest'."),
         project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Exit with the run's decision: 0 ship, 10 hold, 20 roll back; 3 when the run does not verify.

    The run's files are re-hashed and checked against its ledger entry first; a human decision recorded
    with `impactbook decide` overrides the automatic one, and says so."""
    from .audit import gate_check

    check = gate_check(_project(project_dir), run)
    record = check.record
    if as_json:
        _emit(check.summary())
    elif check.problems:
        err.print(f"{check.run_id}: does not verify, so it cannot be acted on:", markup=False)
        for problem in check.problems:
            err.print(f"  {problem}", markup=False)
    else:
        for effect in record.effects:
            if effect.role in ("primary", "guardrail"):
                out.print(f"  {effect.sentence}", markup=False)
        out.print(f"{record.run_id}: {check.action.value} ({record.decision.reason})"
                  if check.human is None else
                  f"{record.run_id}: {check.action.value} — decided by {check.human['by']} at {check.human['time']}: "
                  f"{check.human['reason']} ({'overrides' if check.action is not record.decision.action else 'confirms'} "
                  f"the automatic {record.decision.action.value}: {record.decision.reason})", markup=False)
    raise typer.Exit(check.exit_code)


@app.command()
def reproduce(run: str = typer.Argument(..., help="Run id, unique prefix, or 'latest'."),
              timeout: Optional[int] = TIMEOUT,
              project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Re-execute a stored run from what it recorded and compare every scrap: exit 0 identical, 3 different.

    Uses the run's frozen plan version, the template copy in its folder, its pinned inputs (re-hashed
    first; a missing or changed input is refused) and its seed, in a fresh kernel; stores the result as a
    new run marked as a reproduction, with reproduction.json and a ledger entry."""
    from .reproduction import reproduce as reproduce_run

    result = reproduce_run(_project(project_dir, reconcile=False), run, timeout_s=timeout, progress=_progress)
    record = result.outcome.record
    if as_json:
        _emit({**result.record(), "folder": str(result.outcome.folder)})
    else:
        out.print(f"reproduction {record.run_id} of {result.original} ({record.status.value}): "
                  + ("IDENTICAL: every scrap matches" if result.identical else
                     f"DIFFERENT: {len(result.differences)} scrap values differ"), markup=False)
        for difference in result.differences[:20]:
            out.print(f"  {difference['scrap']}: {difference['original']!r} -> {difference['reproduced']!r}",
                      markup=False)
        changes = result.environment
        if changes.get("python") or changes.get("packages"):
            out.print(f"  environment: python {changes.get('python', 'unchanged')}; "
                      f"{len(changes.get('packages', {}))} packages differ", markup=False)
    if record.status is not Status.COMPLETED:
        raise typer.Exit(EXIT_FOR_STATUS[record.status])
    raise typer.Exit(0 if result.identical else 3)


@app.command()
def verify(runs: Optional[list[str]] = typer.Argument(None, help="Run ids (default: all runs)."),
           anchor: Optional[list[Path]] = typer.Option(None, "--anchor",
                                                       help="An anchor file (from `ledger anchor --file`); repeatable."),
           project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Recompute every artifact hash and the ledger's hash chain; exit 3 naming whatever does not match."""
    from .audit import verify as verify_project

    report_ = verify_project(_project(project_dir, reconcile=False), runs or None, anchor or None)
    if as_json:
        _emit(report_.record())
    else:
        out.print(f"checked {len(report_.checked_runs)} runs and {report_.ledger_entries} ledger entries: "
                  + ("intact" if report_.intact else f"{len(report_.problems)} problem{'' if len(report_.problems) == 1 else 's'}"))
        for problem in report_.problems:
            out.print(f"  {problem}", markup=False)
    if not report_.intact:
        raise typer.Exit(3)


@app.command()
def site(out_dir: Path = typer.Option(Path("site"), "--out", help="Folder to write the site into."),
         compare_runs: Optional[list[str]] = typer.Option(None, "--compare",
                                                          help="Runs to compare on a page, comma-separated; repeatable."),
         full: bool = typer.Option(False, "--full", help="Re-render every page, not only new or changed runs."),
         project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Build the static report site: index, plan pages with trends, run pages, comparisons (incrementally)."""
    from .site.helpers import SiteHelpers

    out_dir = out_dir if out_dir.is_absolute() else Path.cwd() / out_dir
    with SiteHelpers.start(Project.find(project_dir), out_dir, full) as helpers:  # they work meanwhile
        from .site.build import build_site

        project = _project(project_dir)
        summary = build_site(project, out_dir, [group.split(",") for group in compare_runs or []], full=full,
                             progress=_progress, rows=_state["reconciled"].rows, ledger=_state["reconciled"].ledger,
                             helpers=helpers, suspect=_state["reconciled"].damaged)
    if as_json:
        _emit({"out": str(summary.out), "index": str(summary.out / "index.html"), "plans": summary.plans,
               "runs": summary.runs, "rendered": summary.rendered, "comparisons": summary.comparisons,
               "seconds": summary.seconds})
    else:
        out.print(f"wrote {summary.out / 'index.html'} ({summary.plans} plans, {summary.runs} runs, "
                  f"{summary.rendered} re-rendered, "
                  f"{len(summary.comparisons)} comparisons) in {summary.seconds:.1f} s")


@app.command()
def compare(runs: list[str] = typer.Argument(..., help="Two or more runs; the first is the reference."),
            html: Optional[Path] = typer.Option(None, "--html", help="Also write the comparison as an HTML page."),
            project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Side-by-side effects of runs on their shared metrics, the deltas, and which conclusions differ."""
    from .compare import compare_runs
    from .site.build import render_comparison
    from .wording import describe_effect, percent

    comparison = compare_runs(_project(project_dir), runs)
    if html:
        html.write_text(render_comparison(comparison), encoding="utf-8")
    if as_json:
        _emit(comparison.record())
        return
    for metric in comparison.metrics:
        out.print(f"{metric.metric}{'  (conclusions differ)' if metric.conclusions_differ else ''}", markup=False)
        for row in metric.rows:
            out.print(f"  {row['run_id']} [{row['candidate']}]: {describe_effect(row)}; "
                      f"delta {percent(row['delta_relative'])}; {row['verdict'] or 'no verdict (exploratory)'}", markup=False)
    if html:
        out.print(f"wrote {html}")


@app.command()
def baseline(plan_id: str = typer.Argument(..., help="Plan id."),
             against: Optional[list[str]] = typer.Option(None, "--against", help="Baseline runs (default: earlier runs)."),
             threshold: Optional[float] = typer.Option(None, help="Flag beyond this many SDs (default: the plan's)."),
             project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Historical baseline check: flag the latest run's effects that deviate from earlier runs; exit 3 if any."""
    from .compare import baseline_check
    from .wording import percent

    check = baseline_check(_project(project_dir), plan_id, against, threshold)
    if as_json:
        _emit(check.record())
    else:
        out.print(f"{check.latest_run} against {len(check.history_runs)} runs, threshold {check.threshold_sd} SD"
                  + (f": {check.note}" if check.note else ""), markup=False)
        for flag in check.flags:
            out.print(f"  {flag.metric}: {percent(flag.latest)} vs {percent(flag.history_mean)} ± "
                      f"{percent(flag.history_sd)[1:]} (z {flag.z:+.2f}) {'DEVIATES' if flag.flagged else 'ok'}",
                      markup=False)
    if check.deviating:
        raise typer.Exit(3)


@app.command()
def decide(run: str = typer.Argument(..., help="The run the decision rests on (id, prefix or 'latest')."),
           action: str = typer.Option(..., "--action", help="advance, hold or rollback."),
           by: str = typer.Option(..., "--by", help="Who decides."),
           reason: str = typer.Option(..., "--reason", help="Why (shown in rollout status and reports)."),
           project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Record a human decision in the hash-chained ledger (overriding an automatic roll back is marked)."""
    from .decisionlog import record_decision

    entry = record_decision(_project(project_dir), run, action, by, reason)
    if as_json:
        _emit(entry)
    else:
        out.print(f"recorded: {entry['by']} decided {entry['action']} on {entry['run_id']} (ledger entry {entry['seq']})"
                  + (f" — OVERRIDES the automatic {entry['automatic']}" if entry["override"] else ""), markup=False)


@rollout_app.command("status")
def rollout_status_command(plan_id: str = typer.Argument(..., help="Plan id."),
                           project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """The stage history across all monitoring runs of a plan, with human decisions."""
    from .decisionlog import rollout_status
    from .wording import percent

    history = rollout_status(_project(project_dir), plan_id)
    if as_json:
        _emit(history.record())
        return
    for run_ in history.runs:
        out.print(f"{run_['run_id']}  stage {run_['stage'] or '-'}  {run_['status']}  {run_['decision']}: {run_['reason']}",
                  markup=False)
        for metric, interval in run_["intervals"].items():
            out.print(f"    {metric}: {percent(interval['relative'])} [{percent(interval['low'])}, "
                      f"{percent(interval['high'])}]{'  BREACH' if interval['breach'] else ''}", markup=False)
        for metric, interval in run_.get("recent_intervals", {}).items():
            out.print(f"    {metric} since {interval['window_start']}: {percent(interval['relative'])} "
                      f"[{percent(interval['low'])}, {percent(interval['high'])}]"
                      f"{'  BREACH' if interval['breach'] else ''}", markup=False)
        if run_.get("stage_mismatches"):
            out.print(f"    sample ratio mismatch in stage {', '.join(run_['stage_mismatches'])}", markup=False)
        for human in run_["human_decisions"]:
            out.print(f"    decided {human['action']} by {human['by']} at {human['time']}: {human['reason']}"
                      + ("  (OVERRIDE of the automatic roll back)" if human["override"] else ""), markup=False)


@ledger_app.command("anchor")
def ledger_anchor(file: Optional[Path] = typer.Option(None, "--file",
                                                    help="Append the anchor to this file (kept outside the project)."),
                  project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Write the ledger's head (entry number and hash) where the ledger cannot rewrite it: a git tag
    `impactbook-ledger/<entry>-<hash>` (push it), or a line in --file. `verify` checks every anchor."""
    from .anchors import anchor_in_file, anchor_in_git

    project = _project(project_dir)
    anchor = anchor_in_file(project, file.absolute()) if file else anchor_in_git(project)
    if as_json:
        _emit(anchor.record())
    else:
        out.print(f"anchored ledger entry {anchor.seq} (hash {anchor.hash[:16]}…) in {anchor.where}", markup=False)


@index_app.command("rebuild")
def index_rebuild(project_dir: Optional[Path] = PROJECT) -> None:
    """Rebuild the run index from the run folders and the ledger alone."""
    from .backends.index_store import IndexOfAnotherStore
    from .index import SharedIndexUnusable, open_index, rebuild, shown_where
    from .publication import reconcile

    project = _project(project_dir, reconcile=False)
    shown = shown_where(project, open_index(project))
    try:  # asked for: the index becomes this copy's (when it listed another copy's runs, or could not be read)
        _state["reconciled"] = reconcile(project, _progress)
        count = rebuild(project, skipped=_progress, take_over=True)
    except (IndexOfAnotherStore, SharedIndexUnusable):  # rebuilt first, then this copy's interrupted runs finished
        count = rebuild(project, skipped=_progress, take_over=True)
        _state["reconciled"] = reconcile(project, _progress)
    out.print(f"indexed {count} runs into {shown}")


def main(argv: list[str] | None = None) -> None:
    """Usage mistakes are typer's (usage line, exit 2); ours are one line and a distinct exit code."""
    from .processes import sigterm_as_interrupt

    _state["json"] = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        with sigterm_as_interrupt():  # SIGTERM (CI cancelling, a batch stopping its runs) ends as Ctrl-C does
            app(args=argv, prog_name="impactbook")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
        elif code == 130 and _interrupt_behind(exc):  # typer turns an interrupt into a silent exit 130
            code = _fail(exc, "interrupted", 130)
        elif _is_usage_error(exc.__context__) and _state.get("json") and not _state.get("emitted"):
            _emit_usage_error(exc.__context__, code)  # typer printed it (usage, exit 2); automation reads stdout
    except ImpactbookError as exc:
        code = _fail(exc, str(exc), exc.exit_code)
    except click.ClickException as exc:  # a usage mistake found inside a command (see _usage_error)
        exc.show()
        code = exc.exit_code
        if _state.get("json") and not _state.get("emitted"):
            _emit_usage_error(exc, code)
    except BrokenPipeError:  # output piped into `head`: the reader left; exit as a SIGPIPE would, quietly
        _stdout_gone()
        code = 141
    except OSError as exc:
        from .durable import storage_error

        project = _state.get("project")
        shown = project.relative if project is not None else str
        code = _fail(exc, str(storage_error(exc, shown)), 1)
    except KeyboardInterrupt as exc:
        code = _fail(exc, "interrupted", 130)
    except Exception as exc:  # a bug of ours: say so in one line; the traceback is one flag away
        unreachable = _backend_failure(exc)
        code = _fail(exc, unreachable or f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                                         "traceback, and please report it)", 1)
    _exit(code)


def _backend_failure(exc: Exception) -> str | None:
    """A server that failed us (S3 through botocore/s3fs, PostgreSQL through psycopg: unreachable, refused
    credentials, no such bucket or database) is not a bug of ours: one line naming the setting that points at
    it, never "internal error"."""
    library = type(exc).__module__.split(".")[0]
    said = " ".join(str(exc).split())[:400]
    project = _state.get("project")
    from .catalog import setting_source

    if library in ("botocore", "boto3", "s3fs", "aiobotocore"):
        from .backends.run_store import STORAGE_ENV, storage_url

        where = _quietly(lambda: storage_url(project)) if project is not None else None
        source = _quietly(lambda: setting_source(project, "storage", STORAGE_ENV)) if project is not None else None
        return (f"the S3 store could not be used ({type(exc).__name__}: {said}); the run store is {where or '?'} "
                f"(set by {source or f'${STORAGE_ENV} or settings.storage'}; credentials and endpoint from the AWS "
                "chain, e.g. AWS_ENDPOINT_URL), or an s3:// input in catalog.yaml")
    if library == "psycopg":
        from .index import INDEX_ENV, open_index

        where = _quietly(lambda: open_index(project).where) if project is not None else None
        source = _quietly(lambda: setting_source(project, "index", INDEX_ENV)) if project is not None else None
        return (f"PostgreSQL could not be used ({type(exc).__name__}: {said}); the run index is {where or '?'} "
                f"(set by {source or f'${INDEX_ENV} or settings.index'}), or a postgresql:// input in catalog.yaml")
    return None


def _quietly(read: Callable[[], str]) -> str | None:
    try:
        return read()
    except Exception:
        return None


def _is_usage_error(exc: BaseException | None) -> bool:
    """click's usage errors, whichever click raised them (typer >= 0.24 carries its own copy of click)."""
    return exc is not None and any(kind.__name__ == "ClickException" for kind in type(exc).__mro__)


def _emit_usage_error(usage: Any, code: int) -> None:
    """A usage error as the JSON every failure gives with --json; `field` the option or argument it is about
    (`--limit`), when click knows it."""
    param = getattr(usage, "param", None)
    field = (param.opts[0] if param.opts else param.name) if param is not None else None
    _emit({"error": usage.format_message(), "where": None, "field": field, "hint": "see the command's --help",
           "exit_code": code})


def _interrupt_behind(exc: BaseException | None) -> bool:
    """Whether an exit was raised while handling an interrupt (click's Exit from typer's KeyboardInterrupt)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _fail(exc: BaseException, message: str, code: int) -> int:
    """One line on stderr; with --json, when the command printed nothing yet, the same as JSON on stdout, so
    automation reading stdout gets an answer on failure too."""
    if _state["debug"]:
        import traceback

        traceback.print_exception(exc)
    print(f"error: {message}".translate(_UNSEEN), file=sys.stderr)
    if _state.get("json") and not _state.get("emitted"):
        fields = {name: getattr(exc, name, None) for name in ("where", "field", "hint")}
        fields.update({"run_id": exc.run_id} if getattr(exc, "run_id", None) else {})  # a run stored, not finished
        _emit({"error": exc.message if isinstance(exc, ImpactbookError) else message, **fields, "exit_code": code})
    return code


def _exit(code: int) -> None:
    """Leave without the interpreter's module teardown (~0.25 s after a run loads nbconvert, pandas
    and papermill): every file is closed by now; flush what is buffered, run atexit hooks, go."""
    import atexit
    import logging

    logging.shutdown()
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # (see main: the reader of stdout left)
        _stdout_gone()
        code = code or 141
    sys.stderr.flush()
    os._exit(code)
