"""The command line: parse, call one function per command, print, set the exit code.

Exit codes: 0 ok; 1 error (bad input, nothing stored); 3 verify found problems; 4 the run was
stored INADMISSIBLE; 5 the run was stored FAILED; `gate`: 0 ship, 10 hold, 20 roll back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from .errors import ImpactbookError, RunNotFoundError
from .project import Project
from .record import GATE_EXIT, Status

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Reproducible, auditable impact assessments of model changes.")
dataset_app = typer.Typer(no_args_is_help=True, help="Pin datasets in catalog.yaml and verify them.")
template_app = typer.Typer(no_args_is_help=True, help="Pin templates in catalog.yaml.")
plan_app = typer.Typer(no_args_is_help=True, help="Freeze, amend and check preregistered plans.")
runs_app = typer.Typer(no_args_is_help=True, help="List and show stored runs.")
index_app = typer.Typer(no_args_is_help=True, help="The derived run index.")
rollout_app = typer.Typer(no_args_is_help=True, help="Staged rollouts: the stage history of a plan.")
for sub, name in ((dataset_app, "dataset"), (template_app, "template"), (plan_app, "plan"), (runs_app, "runs"),
                  (index_app, "index"), (rollout_app, "rollout")):
    app.add_typer(sub, name=name)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
EXIT_FOR_STATUS = {Status.COMPLETED: 0, Status.INADMISSIBLE: 4, Status.FAILED: 5}
JSON = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
PROJECT = typer.Option(None, "--project", "-C", help="Project folder (default: nearest with catalog.yaml).")
_state = {"debug": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    _state["debug"] = debug


def _project(folder: Optional[Path]) -> Project:
    return Project.find(folder)


def _emit(value: Any) -> None:
    out.print_json(json.dumps(value, default=str)) if sys.stdout.isatty() else print(json.dumps(value, default=str, indent=2))


def _progress(message: str) -> None:
    err.print(f"[dim]· {message}[/dim]")


@app.command()
def init(folder: Path = typer.Argument(Path("."), help="Folder to scaffold (created if missing).")) -> None:
    """Scaffold a project: catalog.yaml, templates/ (with ab_test), plans/ (with example), runs/."""
    from .scaffold import init_project

    project = init_project(folder)
    out.print(f"initialised impactbook project in {project.root}\nnext: impactbook demo   (or: impactbook plan freeze plans/example.yaml)")


@app.command()
def demo(project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Generate the synthetic demo data, pin it, freeze the example plan and run it end to end."""
    from .demo import run_demo

    result = run_demo(_project(project_dir), progress=_progress)
    if result.rollout is not None:
        record = result.rollout.record
        message = (f"rollout monitor: run {record.run_id}: {record.decision.action.value} "
                   f"({record.decision.reason}); report {result.rollout.report}")
        if as_json:
            _progress(message)
        else:
            out.print(message, markup=False)
    _report_run(result.outcome, as_json)


@app.command()
def run(plan: Path = typer.Argument(..., help="Plan YAML file, e.g. plans/example.yaml."),
        timeout: Optional[int] = typer.Option(None, help="Per-cell timeout in seconds."),
        project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Run a frozen plan: gates, Papermill execution, capture, immutable store, index, report."""
    from .runner import run_plan

    project = _project(project_dir)
    _report_run(run_plan(project, _plan_path(project, plan), timeout_s=timeout, progress=_progress), as_json)


def _plan_path(project: Project, plan: Path) -> Path:
    return plan if plan.is_absolute() or (Path.cwd() / plan).exists() else project.resolve(plan)


def _report_run(outcome, as_json: bool) -> None:
    record = outcome.record
    if as_json:
        _emit({**record.summary(), "folder": str(outcome.folder), "report": str(outcome.report),
               "errors": record.errors, "inadmissible": record.gate.get("inadmissible", []),
               "deviations": record.gate.get("deviations", [])})
    else:
        out.print(f"run id:   {record.run_id}")
        out.print(f"status:   {record.status.value}")
        for verdict in record.verdicts:
            out.print(f"verdict:  {verdict.metric} ({verdict.role}): {verdict.verdict.value}")
        for reason in record.gate.get("inadmissible", []) + record.errors:
            out.print(f"reason:   {reason}", markup=False)
        for deviation in record.gate.get("deviations", []):
            out.print(f"deviation: {deviation}", markup=False)
        out.print(f"decision: {record.decision.action.value} ({record.decision.reason})", markup=False)
        out.print(f"report:   {outcome.report}")
    raise typer.Exit(EXIT_FOR_STATUS[record.status])


@dataset_app.command("add")
def dataset_add(name: str, path: Path,
                contract: Optional[Path] = typer.Option(None, "--contract", help="YAML data contract to pin with it."),
                project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Pin a dataset: sha256, size, uri and contract written into catalog.yaml (comments kept)."""
    from .catalog import Catalog, load_contract

    project = _project(project_dir)
    entry = Catalog.load(project).pin_dataset(name, Path(path).absolute(),
                                              load_contract(contract) if contract else None)
    if as_json:
        _emit({"name": name, **entry.model_dump(mode="json")})
    else:
        out.print(f"pinned {name}: {entry.uri} sha256 {entry.sha256} ({entry.size:,} bytes)"
                  + ("" if entry.contract else " — no contract yet: runs using it are INADMISSIBLE until one is added"))


@dataset_app.command("verify")
def dataset_verify(name: Optional[str] = typer.Argument(None), project_dir: Optional[Path] = PROJECT,
                   as_json: bool = JSON) -> None:
    """Check each pinned dataset's sha256 (and contract); exit 3 when any does not match."""
    from .catalog import Catalog
    from .inputs import ResolvedInput, contract_problems, hash_problem, read_dataset

    project = _project(project_dir)
    catalog = Catalog.load(project)
    names = [name] if name else list(catalog.model.datasets)
    results = {}
    for item_name in names:
        entry = catalog.dataset(item_name)
        item = ResolvedInput(item_name, item_name, entry, project.resolve(entry.uri))
        problems = [p for p in [hash_problem(item)] if p]
        if not problems and entry.contract:
            problems = contract_problems(read_dataset(item.path, entry), entry.contract, item_name)
        results[item_name] = problems
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
    """Pin a template's path and sha256 in catalog.yaml (after every reviewed edit)."""
    from .catalog import Catalog

    entry = Catalog.load(_project(project_dir)).pin_template(name, Path(path).absolute(), version)
    out.print(f"pinned template {name}: {entry.path} sha256 {entry.sha256}")


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
    entry = frozen.entry
    if as_json:
        _emit({k: v for k, v in entry.items() if k != "plan"})
    else:
        out.print(f"{frozen.path}: plan {frozen.plan.id} version {frozen.version} frozen at {frozen.frozen_at} "
                  f"(sha256 {frozen.sha256[:16]}…, ledger entry {entry['seq']}, git {str(entry.get('git_commit'))[:10]}"
                  f"{' dirty' if entry.get('git_dirty') else ''})")


@plan_app.command("check")
def plan_check(plan: Optional[Path] = typer.Argument(None, help="Plan file; default: every plans/*.yaml."),
               project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Say whether each plan on disk still matches its latest frozen version; exit 1 if any does not."""
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
    if not all(s.matches for s in statuses):
        raise typer.Exit(1)


@runs_app.command("list")
def runs_list(plan: Optional[str] = typer.Option(None, "--plan", help="Only runs of this plan id."),
              project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Runs in the index, oldest first."""
    from .index import RunIndex

    rows = RunIndex(_project(project_dir).index_path).rows(plan)
    if as_json:
        _emit(rows)
        return
    table = Table("plan", "v", "status", "decision", "verdicts")
    table.add_column("run id", no_wrap=True, min_width=38)
    for row in rows:
        table.add_row(row["plan_id"], str(row["plan_version"]), row["status"], row["decision"],
                      ", ".join(f"{k}={v}" for k, v in row["verdicts"].items()), row["run_id"])
    out.print(table)


def _record(project: Project, run: str):
    from .index import RunIndex, load_record

    row = RunIndex(project.index_path).find(run)
    folder = project.runs_dir / row["run_id"]
    if not folder.is_dir():
        raise RunNotFoundError(f"run folder {project.relative(folder)} is missing", hint="run `impactbook verify`")
    return load_record(folder), folder


@runs_app.command("show")
def runs_show(run: str = typer.Argument(..., help="Run id, unique prefix, or 'latest'."),
              project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Everything recorded about one run (run.json)."""
    record, folder = _record(_project(project_dir), run)
    if as_json:
        _emit(record.model_dump(mode="json"))
        return
    out.print(f"run {record.run_id} ({record.status.value}) in {folder}")
    out.print(f"plan {record.plan.id} v{record.plan.version} sha256 {record.plan.sha256[:16]}… frozen {record.plan.frozen_at}")
    out.print(f"template {record.template.path} sha256 {str(record.template.sha256)[:16]}…")
    for item in record.inputs:
        out.print(f"input {item['parameter']} = {item['name']}: {item['uri']} sha256 {item['sha256'][:16]}…")
    for verdict in record.verdicts:
        out.print(f"{verdict.metric} ({verdict.role}): {verdict.verdict.value} — {verdict.reason}", markup=False)
    for problem in record.gate.get("inadmissible", []) + record.gate.get("deviations", []) + record.errors:
        out.print(f"note: {problem}", markup=False)
    out.print(f"decision {record.decision.action.value}: {record.decision.reason}", markup=False)
    out.print(f"python {record.environment['python']} on {record.environment['platform']}; "
              f"{record.timings.duration_s}s total, {record.timings.execution_s}s in the kernel")


@app.command()
def report(run: str = typer.Argument(..., help="Run id, unique prefix, or 'latest'."),
           output: Optional[Path] = typer.Option(None, "--out", help="Where to write (default runs/.reports/<run>.html)."),
           project_dir: Optional[Path] = PROJECT) -> None:
    """Re-render a run's HTML report from its stored notebook and record; print its path.

    The report stored inside the run folder is part of the immutable artifact and never rewritten."""
    from .plan import plan_from_canonical
    from .report import render_report

    project = _project(project_dir)
    record, folder = _record(project, run)
    plan = plan_from_canonical(json.loads((folder / "plan.json").read_text(encoding="utf-8")))
    target = output or project.rendered_dir / f"{record.run_id}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    from .decisionlog import decisions_for

    notebook = folder / "notebook.ipynb"
    print(render_report(record, plan, notebook if notebook.exists() else None, target,
                        decisions_for(project, record.run_id)))


@app.command()
def gate(run: str = typer.Argument(..., help="Run id, unique prefix, or 'latest'."),
         project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Exit with the run's decision: 0 ship, 10 hold, 20 roll back (1 on error)."""
    record, _ = _record(_project(project_dir), run)
    code = GATE_EXIT[record.decision.action]
    if as_json:
        _emit({**record.summary(), "exit_code": code})
    else:
        out.print(f"{record.run_id}: {record.decision.action.value} ({record.decision.reason})", markup=False)
    raise typer.Exit(code)


@app.command()
def verify(runs: Optional[list[str]] = typer.Argument(None, help="Run ids (default: all runs)."),
           project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Recompute every artifact hash and the ledger's hash chain; exit 3 naming whatever does not match."""
    from .audit import verify as verify_project

    report_ = verify_project(_project(project_dir), runs or None)
    if as_json:
        _emit(report_.record())
    else:
        out.print(f"checked {len(report_.checked_runs)} runs and {report_.ledger_entries} ledger entries: "
                  + ("intact" if report_.intact else f"{len(report_.problems)} problems"))
        for problem in report_.problems:
            out.print(f"  {problem}", markup=False)
    if not report_.intact:
        raise typer.Exit(3)


@app.command()
def site(out_dir: Path = typer.Option(Path("site"), "--out", help="Folder to write the site into."),
         compare_runs: Optional[list[str]] = typer.Option(None, "--compare",
                                                          help="Runs to compare on a page, comma-separated; repeatable."),
         project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Build the static report site: index, plan pages with trends, run pages, comparisons."""
    from .website import build_site

    project = _project(project_dir)
    summary = build_site(project, out_dir if out_dir.is_absolute() else Path.cwd() / out_dir,
                         [group.split(",") for group in compare_runs or []])
    if as_json:
        _emit({"out": str(summary.out), "index": str(summary.out / "index.html"), "plans": summary.plans,
               "runs": summary.runs, "comparisons": summary.comparisons, "seconds": summary.seconds})
    else:
        out.print(f"wrote {summary.out / 'index.html'} ({summary.plans} plans, {summary.runs} runs, "
                  f"{len(summary.comparisons)} comparisons) in {summary.seconds:.1f} s")


@app.command()
def compare(runs: list[str] = typer.Argument(..., help="Two or more runs; the first is the reference."),
            html: Optional[Path] = typer.Option(None, "--html", help="Also write the comparison as an HTML page."),
            project_dir: Optional[Path] = PROJECT, as_json: bool = JSON) -> None:
    """Side-by-side effects of runs on their shared metrics, the deltas, and which conclusions differ."""
    from .compare import compare_runs
    from .website import render_comparison
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
        for human in run_["human_decisions"]:
            out.print(f"    decided {human['action']} by {human['by']} at {human['time']}: {human['reason']}"
                      + ("  (OVERRIDE of the automatic roll back)" if human["override"] else ""), markup=False)


@index_app.command("rebuild")
def index_rebuild(project_dir: Optional[Path] = PROJECT) -> None:
    """Rebuild the run index from the run folders and the ledger alone."""
    from .index import rebuild

    project = _project(project_dir)
    out.print(f"indexed {rebuild(project)} runs into {project.relative(project.index_path)}")


def main(argv: list[str] | None = None) -> None:
    try:
        code = app(args=argv, standalone_mode=False, prog_name="impactbook")
    except ImpactbookError as exc:
        if _state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a bug of ours: say so in one line; the traceback is one flag away
        if _state["debug"]:
            raise
        print(f"error: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback, "
              "and please report it)", file=sys.stderr)
        sys.exit(1)
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> None:
    """Leave without the interpreter's module teardown (~0.25 s after a run loads nbconvert, pandas
    and papermill): every file is closed by now; flush what is buffered, run atexit hooks, go."""
    import atexit
    import logging

    logging.shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
