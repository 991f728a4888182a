"""`impactbook site`: a static, self-contained report site built from the run index, run folders
and ledger — index, plan pages with trends, run pages, comparison pages (pages.py). No external
assets, no network: it works from file:// and any static host. Incremental: a manifest in the output
folder says what the last build rendered, so only new or changed runs and their plans are rendered."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import multiprocessing
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from . import filestates, pages, plots
from .helpers import SiteHelpers
from .manifest import EFFECTS, MANIFEST
from .pages import (ASSETS, FILTER_SCRIPT, INDEX, EffectPoints, damaged_assets, effect_points, page, plan_page,
                    render_comparison, run_rows, style_names, trend_specs, write_run_page)
from ..audit import recorded_twice, run_problems
from ..backends.run_store import RunStore, open_run_store
from ..backends.index_store import IndexStore
from ..compare import Comparison, RunEffects, compare_effects, frozen_plan_of
from ..durable import try_lock, write_text
from ..errors import ImpactbookError
from ..index import open_index, run_folder
from ..ledger import Ledger, LedgerSnapshot, PlanVersion, chain_problems, frozen_versions
from ..project import Project
from ..record import Action, Status


@dataclass(frozen=True)
class SiteSummary:
    out: Path
    plans: int
    runs: int
    comparisons: list[str]
    seconds: float
    rendered: int = 0  # run pages (re)written by this build


# any change to the site's code (templates, wording) makes every page stale
SITE_FORMAT = hashlib.sha256(b"".join(Path(module).read_bytes() for module in
                                      (__file__, pages.__file__, plots.__file__,
                                       filestates.__file__))).hexdigest()


def _fingerprint(*parts: Any) -> str:
    """Of plain values (index rows in column order, file states, ledger entries as read): their repr is
    deterministic, and cheaper than canonical JSON over 10,000 runs."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@dataclass
class _Manifest:
    """What the last build rendered: each run's and plan's fingerprint, and how far the ledger's chain was
    verified (a byte length, the sha256 of those bytes, the chain state there). Each run's effect points (4 MB
    at 10,000 runs, read only when some page must be rendered) are kept beside it, written before it."""

    runs: dict[str, str] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)
    index: str = ""  # the index page's fingerprint
    flagged: dict[str, list[str]] = field(default_factory=dict)  # runs that did not verify: their problems
    out: Path | None = None  # where its effect points are, if any
    assets: list[str] = field(default_factory=list)  # the shared stylesheets the run pages link

    @classmethod
    def load(cls, out: Path) -> "_Manifest":
        try:
            manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
            return cls(dict(manifest["runs"]), dict(manifest["plans"]), dict(manifest["ledger"]),
                       str(manifest["index"]), {str(k): list(v) for k, v in dict(manifest["flagged"]).items()}, out,
                       [str(name) for name in manifest.get("assets", [])])
        except (OSError, ValueError, KeyError, TypeError):  # none, or an older format: render everything
            return cls()

    @functools.cached_property
    def effects(self) -> dict[str, EffectPoints]:
        """A run missing here is rendered again (its page is where its effect points come from)."""
        try:
            return dict(json.loads((self.out / EFFECTS).read_text(encoding="utf-8"))) if self.out else {}
        except (OSError, ValueError, TypeError):
            return {}

    def save_effects(self, out: Path, points: dict[str, EffectPoints], runs: dict[str, str],
                     rendered: set[str]) -> None:
        """The effect points of `runs`, written before the manifest that relies on them. When the last build's file
        holds only runs still here and none of those rendered now, the new ones are appended inside its object
        (its closing brace moved: 10 new runs cost 10 entries, not a rewrite of 10,000; the same bytes as a
        rewrite when they come last); a torn append leaves a file that does not parse: every run is then
        rendered again."""
        path, known = out / EFFECTS, self.effects
        if self.out == out and known and rendered.isdisjoint(known) and known.keys() <= runs.keys() \
                and not path.is_symlink():  # (appended in place: never through a link to a file elsewhere)
            with path.open("r+b") as held:
                held.seek(-1, os.SEEK_END)
                if held.read(1) == b"}":
                    if rendered:
                        held.seek(-1, os.SEEK_END)
                        added = {run_id: points[run_id] for run_id in runs if run_id in rendered}
                        held.write(b", " + json.dumps(added)[1:].encode())
                    return
        write_text(path, json.dumps({run_id: points[run_id] for run_id in runs}), sync=False)

    def save(self, out: Path) -> None:
        manifest = {"runs": self.runs, "plans": self.plans, "ledger": self.ledger, "index": self.index,
                    "flagged": self.flagged, "assets": self.assets}
        write_text(out / MANIFEST, json.dumps(manifest), sync=False)  # (asdict would deep-copy it all)


@dataclass(frozen=True)
class _Sources:
    """Everything the ledger says that pages show: plan versions, human decisions, run entries, chain problems."""

    versions: dict[str, list[dict[str, Any]]]
    human: dict[str, list[dict[str, Any]]]
    run_entries: dict[str, dict[str, Any]]
    problems: list[str]
    verified: dict[str, Any]  # for the next build's manifest

    @property
    def frozen(self) -> set[PlanVersion]:
        return frozen_versions([entry for entries in self.versions.values() for entry in entries])

    @classmethod
    def read(cls, project: Project, verified: dict[str, Any], snapshot: LedgerSnapshot | None = None) -> "_Sources":
        """The entries (of `snapshot`, the ledger as the caller just read it, if given), and their chain checked
        from where `verified` (the last build's) left off when the ledger still begins with the very bytes it
        verified: appends are checked, the rest is not re-hashed."""
        ledger = Ledger(project.ledger_path)
        try:
            snapshot = snapshot or ledger.snapshot()  # entries parsed from the very bytes whose hash is kept
        except Exception as exc:  # an unreadable ledger is itself the finding
            return cls({}, {}, {}, [str(exc)], {})
        data, entries = snapshot.data, snapshot.entries
        try:
            known, count, before = int(verified["bytes"]), int(verified["entries"]), list(verified["problems"])
            previous_state = (str(verified["state"][0]), int(verified["state"][1]))
            unchanged = 0 < known <= len(data) and count <= len(entries) \
                and hashlib.sha256(data[:known]).hexdigest() == verified["sha256"]
        except (KeyError, IndexError, TypeError, ValueError):  # no earlier build, or its record is not ours
            unchanged = False
        if unchanged:
            chain, state = chain_problems(entries[count:], ledger.path.name, previous_state)
            chain = before + chain
        else:
            chain, state = chain_problems(entries, ledger.path.name)
        complete = data.rfind(b"\n") + 1  # a torn last line is not an entry yet
        verified = {"bytes": complete, "sha256": hashlib.sha256(data[:complete]).hexdigest(), "entries": len(entries),
                    "state": list(state), "problems": chain}
        versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        human: dict[str, list[dict[str, Any]]] = defaultdict(list)
        runs = {}
        for entry in entries:
            if entry["kind"] in ("freeze", "amend"):
                versions[entry["plan_id"]].append(entry)
            elif entry["kind"] == "decision":
                human[entry["run_id"]].append(entry)
            elif entry["kind"] == "run":
                runs[entry["run_id"]] = entry
        return cls(versions, human, runs, chain + recorded_twice(entries, ledger.path.name), verified)


def build_site(project: Project, out: Path, comparisons: list[list[str]] | None = None, full: bool = False,
               generated: str | None = None, progress: Callable[[str], None] = lambda message: None,
               rows: list[dict[str, Any]] | None = None, ledger: LedgerSnapshot | None = None,
               helpers: SiteHelpers | None = None, suspect: Iterable[str] = ()) -> SiteSummary:
    """Build the site, re-rendering only runs and plans whose fingerprint (index row, run folder files,
    human decisions, this module) differs from the manifest of the last build in `out`; `full` ignores it.
    Each re-rendered run is verified (its artifacts against SHA256SUMS, SHA256SUMS and its record against
    its ledger entry) as its page is written. Runs held only in a remote run store are fetched (verified)
    into runs/.cache when they need rendering. `rows` and `ledger`: the index's rows and the ledger when the
    caller has just read them (the reconciliation that opens every command); `helpers`: started by the caller
    before that reconciliation (SiteHelpers.start), else plots are drawn by a helper started here, and file
    states taken here; `suspect`: runs the reconciliation found not matching their SHA256SUMS, re-rendered
    (so re-verified) whatever their fingerprint, as is every run the last build flagged. Builds into one folder
    take turns (an exclusive lock on it): two at once would interleave their pages and manifests."""
    _check_out_folder(project, out)
    out.mkdir(parents=True, exist_ok=True)
    with _taking_turns(out, progress):
        return _build(project, out, comparisons, full, generated, progress, rows, ledger, helpers, set(suspect))


def _check_out_folder(project: Project, out: Path) -> None:
    """Refuse an output folder that is not a folder, or that is (or holds) the project or one of its own
    folders: `--out runs` wrote pages into the run store, which `verify` then reported as broken runs."""
    shown, hint = project.relative(out), "give a folder for the site, e.g. --out site"
    if out.is_symlink() and not out.exists():
        raise ImpactbookError(f"a symlink to {os.readlink(out)}, which does not exist", where=shown, hint=hint)
    if out.exists() and not out.is_dir():
        raise ImpactbookError("not a folder", where=shown, hint=hint)
    target, root = out.resolve(), project.root.resolve()
    if target == root or target in root.parents:
        raise ImpactbookError("the project's own folder (or one above it): the site's pages would be written "
                              "among the project's files", where=shown, hint=hint)
    folder = project.own_folder_holding(target)
    if folder is not None:
        raise ImpactbookError(f"inside the project's {folder.name}/ folder, which the site must not write into",
                              where=shown, hint=hint)


def _real_folder(project: Project, folder: Path) -> None:
    """Make a page folder of the site, refusing a symlink there: pages written through it would land wherever it
    points (anyone who can write into the site's folder could aim them at the user's files)."""
    if folder.is_symlink():
        raise ImpactbookError(f"a symlink (to {os.readlink(folder)}); the site writes its pages only into real "
                              "folders", where=str(project.relative(folder)), hint="remove the symlink")
    folder.mkdir(exist_ok=True)


@contextlib.contextmanager
def _taking_turns(out: Path, progress: Callable[[str], None]):
    """An exclusive flock on the output folder for the length of a build; a second build waits, and says so."""
    fd = try_lock(out)
    if fd is None:
        progress(f"site: another build is writing {out}; waiting for it to finish")
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # (held already when try_lock got it: a no-op then)
        yield
    finally:
        os.close(fd)


def _build(project: Project, out: Path, comparisons: list[list[str]] | None, full: bool, generated: str | None,
           progress: Callable[[str], None], rows: list[dict[str, Any]] | None, ledger: LedgerSnapshot | None,
           helpers: SiteHelpers | None, suspect: set[str]) -> SiteSummary:
    start = time.perf_counter()
    generated = generated or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    index, store = open_index(project), open_run_store(project)
    compared = [_comparison(project, index, store, group) for group in comparisons or []]  # (a mistake in one is
    rows = index.rows() if rows is None else rows                                          # said before any write)
    for sub in ("plans", "runs", "compare", ASSETS):
        _real_folder(project, out / sub)
    pages.forget_written_styles()
    previous = _Manifest() if full else _Manifest.load(out)
    sources = _Sources.read(project, previous.ledger, ledger)
    if helpers is None:  # after new ledger entries plan pages are redrawn: matplotlib is imported meanwhile
        likely_plots = full or sources.verified.get("bytes") != previous.ledger.get("bytes")
        helpers = SiteHelpers(plots.Painter(helper=likely_plots),
                              filestates.Scan(str(project.runs_dir), helper=False))
    with helpers:
        painter = helpers.painter
        in_store = set(store.published()) if store.remote else set()

        run_prints = _run_prints(project, rows, in_store, sources, helpers.scan.digests())
        written_pages = set(os.listdir(out / "runs"))
        damaged = damaged_assets(out / ASSETS, previous.assets)
        if damaged:  # (the run pages that link them write them again)
            progress(f"site: {', '.join(damaged)} in {out / ASSETS} missing or changed; every run page is rendered "
                     "again to restore them")
        suspect |= set(previous.flagged)  # (a run restored since keeps its size and time: checked again)
        stale = [run_id for run_id, fp in run_prints.items() if previous.runs.get(run_id) != fp
                 or f"{run_id}.html" not in written_pages or damaged or run_id in suspect]
        by_plan: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_plan[row["plan_id"]].append(row)
        by_plan = {plan_id: plan_runs for plan_id, plan_runs in by_plan.items()  # a plan none of whose runs is here
                   if any(r["run_id"] in run_prints for r in plan_runs)}       # has no page
        plan_prints = {plan_id: _fingerprint(SITE_FORMAT, [run_prints.get(r["run_id"], r) for r in plan_runs],
                                             sources.versions.get(plan_id, []))
                       for plan_id, plan_runs in by_plan.items()}
        stale_plans = {plan_id for plan_id, fp in plan_prints.items()
                       if previous.plans.get(plan_id) != fp or not (out / "plans" / f"{plan_id}.html").exists()}
        # runs no longer here: in the last manifest, or left by a build that kept none (--full, a stopped build)
        gone = (set(previous.runs) | {name[:-5] for name in written_pages if name.endswith(".html")}) - set(run_prints)
        changed = bool(stale or stale_plans or gone) or previous.plans.keys() != plan_prints.keys()
        if changed:
            (out / MANIFEST).unlink(missing_ok=True)  # a build that stops half-way leaves no manifest to trust
            rendered = set(stale)
            stale += [run_id for run_id in run_prints if run_id not in rendered and run_id not in previous.effects]
        rendered = set(stale)
        points = {run_id: previous.effects[run_id] for run_id in run_prints if run_id not in rendered} \
            if changed else {}
        flagged = {run_id: problems for run_id, problems in previous.flagged.items()
                   if run_id in run_prints and run_id not in rendered}
        points.update(_render_runs(project, store, out, stale, sources, generated, progress, flagged))
        flagged = dict(sorted(flagged.items()))
        missing = sorted(set(sources.run_entries) - set(run_prints))  # ledgered, yet in neither store nor index
        for run_id in gone:
            (out / "runs" / f"{run_id}.html").unlink(missing_ok=True)
        for name in os.listdir(out / "plans"):  # a plan none of whose runs is left: its page goes too
            if name.endswith(".html") and name[:-5] not in by_plan:
                (out / "plans" / name).unlink(missing_ok=True)

        plans, redrawn = [], []
        for plan_id, plan_runs in sorted(by_plan.items()):
            located = [r for r in plan_runs if r["run_id"] in run_prints]
            plan = frozen_plan_of(run_folder(project, located[-1]["run_id"], store))
            if plan_id in stale_plans:
                redrawn.append((plan, plan_runs, trend_specs(plan, plan_runs, points)))
            plans.append({"id": plan_id, "title": plan.title, "latest": plan_runs[-1], "count": len(plan_runs)})
        painter.send([spec for *_, specs in redrawn for spec in specs])  # drawn while the pages are prepared
        plan_pages = [plan_page(project, store, plan, plan_runs, sources.versions.get(plan.id, []), points, specs,
                                     flagged)
                      for plan, plan_runs, specs in redrawn]

        written = []
        for comparison in compared:
            name = "--".join(r["run_id"] for r in comparison.runs) + ".html"
            write_text(out / "compare" / name, render_comparison(comparison, root="../"), sync=False)
            written.append({"file": name, "label": " vs ".join(r["run_id"] for r in comparison.runs)})

        index_print = _fingerprint(SITE_FORMAT, run_prints, plan_prints,
                                   [r for r in rows if r["run_id"] not in run_prints], sources.problems, written,
                                   flagged, missing)
        index_stale = index_print != previous.index or not (out / "index.html").exists()
        if index_stale:  # (unchanged, the index keeps the time its content was generated)
            _write_index(out, rows, plans, written, generated, sources.problems, flagged, missing)
        if changed:  # (written while the plots are drawn; unchanged, the last build's file stays)
            previous.save_effects(out, points, run_prints, rendered)
        images = iter(painter.receive())
        for page_ in plan_pages:
            page_.write(out, [next(images) for _ in page_.specs])
        if changed or index_stale:  # (unchanged, the last manifest describes every page; the ledger is checked from it)
            _Manifest(run_prints, plan_prints, sources.verified, index_print, flagged,
                      assets=style_names(out / ASSETS)).save(out)
        return SiteSummary(out, len(plans), len(rows), [w["file"] for w in written],
                           round(time.perf_counter() - start, 3), rendered=len(stale))


def _comparison(project: Project, index: IndexStore, store: RunStore, runs: list[str]) -> Comparison:
    given = ",".join(runs)
    if any(not run.strip() for run in runs):
        raise ImpactbookError(f"{given!r} has an empty run name", field="--compare",
                              hint="give run ids (or unique prefixes) separated by commas, e.g. RUN1,RUN2")
    ids = [index.find(run.strip())["run_id"] for run in runs]
    if len(set(ids)) < 2:
        raise ImpactbookError(f"{given!r} names fewer than two different runs", field="--compare",
                              hint="give at least two run ids separated by commas, e.g. RUN1,RUN2")
    return compare_effects([RunEffects.load(run_folder(project, run_id, store)) for run_id in ids])


def _run_prints(project: Project, rows: list[dict[str, Any]], in_store: set[str], sources: _Sources,
                digests: dict[str, str]) -> dict[str, str]:
    """Each run's fingerprint: its index row, its folder's file states (`digests`: those a helper took of the
    folders still here, the others taken here), its human decisions and this module."""
    prints = {}
    runs_dir = str(project.runs_dir)  # plain strings: this loop visits every run
    try:
        present = set(os.listdir(runs_dir)) if digests else set()  # (a folder deleted since the helper read it)
    except OSError:
        present = set()
    for row in rows:
        run_id = row["run_id"]
        state = digests.get(run_id) if run_id in present else None
        try:
            state = state or filestates.state_digest(os.path.join(runs_dir, run_id))
        except (FileNotFoundError, NotADirectoryError):
            if run_id not in in_store:
                continue
            state = row["sums_sha256"]  # a store-only run: its row carries its SHA256SUMS hash
        prints[run_id] = _fingerprint(SITE_FORMAT, row, state, sources.human.get(run_id, []))
    return prints


def _write_index(out: Path, rows: list[dict[str, Any]], plans: list[dict[str, Any]], comparisons: list[dict[str, str]],
                 generated: str, ledger_problems: list[str], flagged: dict[str, list[str]], missing: list[str]) -> None:
    known = {"decision": {a.value for a in Action}, "status": {s.value for s in Status}}
    options = {key: sorted({str(r[column]) for r in rows} | known.get(key, set())) for key, column in
               (("plan", "plan_id"), ("model", "candidate"), ("decision", "decision"), ("status", "status"))}
    write_text(out / "index.html", page(
        INDEX, "", "Impact assessments", plans=plans, run_rows=run_rows(rows, flagged), run_count=len(rows),
        options=options, flagged=flagged, missing=missing,
        filters=[("plan", "Plan"), ("model", "Model version"), ("decision", "Decision"), ("status", "Status")],
        comparisons=comparisons, generated=generated, script=FILTER_SCRIPT, ledger_problems=ledger_problems),
        sync=False)


PARALLEL_FROM = 200  # stale runs from which pages are rendered by one process per core (start-up ~0.5 s each)
RUNS_PER_TASK = 50
RunJob = tuple[str, "dict[str, Any] | None", "list[dict[str, Any]]"]  # run id, its ledger entry, human decisions


def _render_runs(project: Project, store: RunStore, out: Path, stale: list[str], sources: _Sources, generated: str,
                 progress: Callable[[str], None], flagged: dict[str, list[str]]) -> dict[str, EffectPoints]:
    """Verify and write each stale run's page; its effect points, by run id (and, into `flagged`, the problems of
    each that does not verify). Parsing, templating and hashing hold the GIL for most of a page, so many pages are
    spread over processes, not threads."""
    jobs: list[RunJob] = [(run_id, sources.run_entries.get(run_id), sources.human.get(run_id, [])) for run_id in stale]
    tasks = [jobs[i:i + RUNS_PER_TASK] for i in range(0, len(jobs), RUNS_PER_TASK)]
    frozen = sources.frozen
    workers = min(os.cpu_count() or 1, len(tasks), 8)
    found: dict[str, EffectPoints] = {}

    def collect(done: tuple[dict[str, EffectPoints], dict[str, list[str]]]) -> None:
        before = len(found)
        found.update(done[0])
        flagged.update(done[1])
        step = max(100, len(jobs) // 10)
        if len(found) // step > before // step or len(found) == len(jobs):
            progress(f"site: {len(found):,} of {len(jobs):,} run pages verified and written")

    # Forked workers start at once and need no re-import (spawn would re-run the caller's main script); a fork is
    # safe only from a process with one thread (no lock held elsewhere mid-fork), such as `impactbook site`.
    if len(jobs) < PARALLEL_FROM or workers < 2 or threading.active_count() > 1 \
            or "fork" not in multiprocessing.get_all_start_methods():
        for task in tasks:
            collect(_render_task(project, out, task, generated, frozen, store))
        return found
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        submitted = [pool.submit(_render_task, project, out, task, generated, frozen) for task in tasks]
        for future in as_completed(submitted):
            collect(future.result())
    return found


def _render_task(project: Project, out: Path, jobs: list[RunJob], generated: str, frozen: set[PlanVersion],
                 store: RunStore | None = None) -> tuple[dict[str, EffectPoints], dict[str, list[str]]]:
    """Run pages for `jobs`, in this process or a pool's: each run's effect points and, for those that do not
    verify, their problems; a failure names the run (and crosses processes as a plain ImpactbookError)."""
    store = store or open_run_store(project)
    points, flagged = {}, {}
    for run_id, entry, decisions in jobs:
        try:
            folder = run_folder(project, run_id, store)
            run = RunEffects.load(folder)
            kept: dict[str, bytes] = {}  # the page shows the report's bytes as verified, read once
            problems = run_problems(project, folder, entry, frozen, run.record, kept)
            write_run_page(folder, out, run, problems, decisions, generated, kept.get("report.html"))
            if problems:
                flagged[run_id] = problems
        except (ImpactbookError, OSError):  # ours, or the file system's (named by the command as storage errors)
            raise
        except Exception as exc:
            raise ImpactbookError(f"run {run_id}: its page could not be written ({type(exc).__name__}: {exc})",
                                  where=str(project.relative(project.runs_dir / run_id)),
                                  hint="run `impactbook verify`") from None
        points[run_id] = effect_points(run)
    return points, flagged


