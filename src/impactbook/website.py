"""`impactbook site`: a static, self-contained report site built from the run index, run folders
and ledger — index, plan pages with trends, run pages, comparison pages. No external assets, no
network: it works from file:// and any static host. Every string from a plan, a dataset or a
scrap goes through Jinja2's autoescaping; the only script is our own filter, allowed by hash."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import multiprocessing
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jinja2
from markupsafe import Markup, escape

from .audit import recorded_twice, run_problems
from .backends.run_store import RunStore, open_run_store
from .compare import Comparison, RunEffects, compare_effects, frozen_plan_of, judge_against_history
from .errors import ImpactbookError
from .index import open_index, run_folder
from .ledger import Ledger, chain_problems
from .project import Project
from .record import Action, Status
from .report import COLOURS, strip_scripts
from .wording import describe_effect, percent

FILTER_SCRIPT = """
document.addEventListener('DOMContentLoaded', function () {
  var selects = document.querySelectorAll('select[data-filter]');
  function apply() {
    document.querySelectorAll('tr[data-plan]').forEach(function (row) {
      var show = true;
      selects.forEach(function (s) { if (s.value && row.getAttribute('data-' + s.dataset.filter) !== s.value) { show = false; } });
      row.hidden = !show;
    });
  }
  selects.forEach(function (s) { s.addEventListener('change', apply); });
});
"""
SCRIPT_HASH = base64.b64encode(hashlib.sha256(FILTER_SCRIPT.encode()).digest()).decode()
CSP = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{SCRIPT_HASH}'")
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 76em; margin: 1em auto; padding: 0 1em; color: #1f2328; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { padding: .3em .8em; text-align: left; border-bottom: 1px solid #d0d7de; vertical-align: top; }
.badge { display: inline-block; padding: .1em .6em; border-radius: 1em; color: #fff; font-weight: 600; }
.differ { background: #fff8c5; }
nav { margin-bottom: 1em; } nav a { margin-right: 1em; }
.muted { color: #59636e; }
.badge { background: #59636e; }
""" + "".join(f".decision-{action} {{ background: {colour}; }}\n" for action, colour in COLOURS.items())

PAGE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
PAGE.globals.update(percent=percent, describe=describe_effect)
LAYOUT = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} — impactbook</title><style>{{ style }}</style></head><body>
<nav><a href="{{ root }}index.html">All plans and runs</a></nav>
{% macro badge(action) %}<span class="badge decision-{{ action }}">{{ action }}</span>{% endmacro %}
"""
INDEX = PAGE.from_string(LAYOUT + """
<h1>Impact assessments</h1>
<p class="muted">Generated {{ generated }} from {{ run_count }} runs of {{ plans | length }} plans.</p>
{% if ledger_problems %}<section class="ib-verify-failed"><h2>The ledger does not verify</h2><ul>{% for p in ledger_problems %}<li>{{ p }}</li>{% endfor %}</ul>
<p>Run pages check each run against its ledger entry, but the chain itself is broken: run <code>impactbook verify</code>.</p></section>{% endif %}
<h2>Plans</h2>
<table id="plans"><thead><tr><th>Plan</th><th>Title</th><th>Latest decision</th><th>Runs</th><th>Last run</th></tr></thead><tbody>
{% for plan in plans %}<tr><td><a href="plans/{{ plan.id }}.html">{{ plan.id }}</a></td><td>{{ plan.title }}</td>
<td>{{ badge(plan.latest.decision) }}</td><td>{{ plan.count }}</td><td>{{ plan.latest.started_at }}</td></tr>{% endfor %}
</tbody></table>
<h2>Runs</h2>
<p>{% for name, label in filters %}<label>{{ label }} <select data-filter="{{ name }}"><option value="">all</option>
{% for value in options[name] %}<option>{{ value }}</option>{% endfor %}</select></label> {% endfor %}</p>
<table id="runs"><thead><tr><th>Run</th><th>Plan</th><th>Model</th><th>Status</th><th>Decision</th><th>Started (UTC)</th></tr></thead><tbody>
{{ run_rows }}
</tbody></table>
{% if comparisons %}<h2>Comparisons</h2><ul>{% for c in comparisons %}<li><a href="compare/{{ c.file }}">{{ c.label }}</a></li>{% endfor %}</ul>{% endif %}
<script>{{ script | safe }}</script></body></html>""")
PLAN_PAGE = PAGE.from_string(LAYOUT + """
<h1>{{ plan.title }}</h1>
<p><em>Hypothesis:</em> {{ plan.hypothesis }}</p>
<p>Plan <strong>{{ plan.id }}</strong>; model change {{ plan.model_change.baseline }} → {{ plan.model_change.candidate }};
alpha {{ plan.alpha }}; multiple-testing correction {{ plan.correction.method }}; segments {{ plan.segments.columns | join(", ") or "none" }}.</p>
<h2>Preregistered metrics</h2>
<table><thead><tr><th>Metric</th><th>Role</th><th>Kind</th><th>Good direction</th><th>Margin</th><th>Minimum detectable effect</th></tr></thead><tbody>
{% for m in plan.assessed %}<tr><td>{{ m.id }}</td><td>{{ m.role }}</td><td>{{ m.kind }}</td><td>{{ m.direction }}</td>
<td>{{ "" if m.margin is none else (percent(m.margin) if m.margin_type == "relative" else m.margin) }}</td>
<td>{{ "" if m.minimum_detectable_effect is none else percent(m.minimum_detectable_effect) }}</td></tr>{% endfor %}
</tbody></table>
<h2>Versions and amendments</h2>
<table><thead><tr><th>Version</th><th>Frozen (UTC)</th><th>Hash</th><th>Reason</th></tr></thead><tbody>
{% for v in versions %}<tr><td>{{ v.version }}</td><td>{{ v.time }}</td><td><code>{{ v.plan_hash[:16] }}</code></td><td>{{ v.get("reason", "first freeze") }}</td></tr>{% endfor %}
</tbody></table>
<h2>Runs, oldest first</h2>
<table><thead><tr><th>Run</th><th>Version</th><th>Model</th><th>Status</th><th>Decision</th><th>Verdicts</th></tr></thead><tbody>
{% for run in runs %}<tr><td><a href="../runs/{{ run.run_id }}.html">{{ run.run_id }}</a></td><td>{{ run.plan_version }}</td><td>{{ run.candidate }}</td>
<td>{{ run.status }}</td><td>{{ badge(run.decision) }}</td><td>{% for k, v in run.verdicts.items() %}{{ k }}: {{ v }}{% if not loop.last %}; {% endif %}{% endfor %}</td></tr>{% endfor %}
</tbody></table>
<h2>Historical baseline check</h2>
{% if baseline.flags %}<p>Latest run {{ baseline.latest_run }} against {{ baseline.history_runs | length }} earlier runs (flag beyond {{ baseline.threshold_sd }} SD):</p>
<table><thead><tr><th>Metric</th><th>Latest relative effect</th><th>Earlier runs: mean ± SD</th><th>z</th><th>Flag</th></tr></thead><tbody>
{% for f in baseline.flags %}<tr{% if f.flagged %} class="differ"{% endif %}><td>{{ f.metric }}</td><td>{{ percent(f.latest) }}</td><td>{{ percent(f.history_mean) }} ± {{ percent(f.history_sd)[1:] }}</td><td>{{ "%.2f" % f.z }}</td><td>{{ "DEVIATES" if f.flagged else "within range" }}</td></tr>{% endfor %}
</tbody></table>{% else %}<p class="muted">{{ baseline.note or "No completed run yet." }}</p>{% endif %}
<h2>Trends</h2>
{% for t in trends %}<figure><img src="data:image/png;base64,{{ t.png }}" alt="{{ t.alt }}"><figcaption>{{ t.alt }}</figcaption></figure>{% else %}<p class="muted">No completed runs with effects yet.</p>{% endfor %}
</body></html>""")
RUN_NAV = PAGE.from_string("""
<nav style="font-family: system-ui, sans-serif; max-width: 72em; margin: 1em auto;"><a href="../index.html">All plans and runs</a> &middot;
<a href="../plans/{{ r.plan.id }}.html">Plan {{ r.plan.id }}</a></nav>""")
RUN_EXTRA = PAGE.from_string("""
<section class="ib-site" style="font-family: system-ui, sans-serif; max-width: 72em; margin: 1em auto;">
<h3>Effects in plain words</h3><ul>{% for row in results %}<li>{{ describe(row) }}{% if row.verdict %} — {{ row.verdict }}{% endif %}</li>{% else %}<li>No effects were computed.</li>{% endfor %}</ul>
{% if decisions %}<h3>Human decisions</h3><ul>{% for d in decisions %}<li{% if d.override %} class="ib-override" style="border-left: 4px solid #cf222e; padding-left: .5em;"{% endif %}>
<strong>{{ d.action }}</strong> by {{ d.by }} at {{ d.time }}: {{ d.reason }}{% if d.override %} <strong>— overrides the automatic {{ d.automatic }}</strong>{% endif %}</li>{% endfor %}</ul>{% endif %}
<h3>Environment</h3><p>Python {{ env.python }} on {{ env.platform }}; kernel {{ env.kernel_name }};
git {{ (env.git.commit or "no commit")[:12] }}{% if env.git.dirty %} (dirty tree){% endif %};
{% for name in packages %}{% if name in env.distributions %}{{ name }} {{ env.distributions[name] }}{% if not loop.last %}, {% endif %}{% endif %}{% endfor %}.</p>
<h3>Artifact verification</h3>{% if problems %}<ul class="ib-verify-failed">{% for p in problems %}<li>{{ p }}</li>{% endfor %}</ul>
{% else %}<p class="ib-verify-ok">All artifacts match SHA256SUMS and the ledger (checked {{ generated }}).</p>{% endif %}
</section>""")
COMPARE_PAGE = PAGE.from_string(LAYOUT + """
<h1>Comparison of {{ c.runs | length }} runs</h1>
<table><thead><tr><th>Run</th><th>Plan</th><th>Model change</th><th>Status</th><th>Decision</th></tr></thead><tbody>
{% for r in c.runs %}<tr><td><a href="{{ root }}runs/{{ r.run_id }}.html">{{ r.run_id }}</a>{% if loop.first %} (reference){% endif %}</td><td>{{ r.plan }} v{{ r.plan_version }}</td>
<td>{{ r.baseline }} → {{ r.candidate }}</td><td>{{ r.status }}</td><td>{{ badge(r.decision) }}</td></tr>{% endfor %}
</tbody></table>
{% for m in c.metrics %}<h2>{{ m.metric }}{% if m.conclusions_differ %} — <span class="differ">conclusions differ</span>{% endif %}</h2>
<table><thead><tr><th>Run</th><th>Model</th><th>Effect</th><th>Relative (CI)</th><th>Δ relative vs reference</th><th>Verdict</th></tr></thead><tbody>
{% for row in m.rows %}<tr{% if m.conclusions_differ %} class="differ"{% endif %}><td>{{ row.run_id }}</td><td>{{ row.candidate }}</td>
<td>{{ describe(row) }}</td>
<td>{{ percent(row.relative) }} ({{ percent(row.relative_low) }} to {{ percent(row.relative_high) }})</td>
<td>{{ percent(row.delta_relative) }}</td><td>{{ row.verdict or "—" }}</td></tr>{% endfor %}
</tbody></table>{% endfor %}
{% if c.not_shared %}<p class="muted">Not shared by every run: {% for run, metrics in c.not_shared.items() %}{{ run }}: {{ metrics | join(", ") }}{% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
</body></html>""")
PACKAGES = ("impactbook", "papermill", "pandas", "duckdb", "statsmodels", "scipy", "numpy")


@dataclass(frozen=True)
class SiteSummary:
    out: Path
    plans: int
    runs: int
    comparisons: list[str]
    seconds: float
    rendered: int = 0  # run pages (re)written by this build


def _run_rows(rows: list[dict[str, Any]]) -> Markup:
    """The index's table of runs, newest first, built without a template call per row (10,000 rows: 0.8 s
    through Jinja); every value escaped by markupsafe, exactly as Jinja's autoescaping does."""
    def row(run: dict[str, Any]) -> str:
        plan, model, status, decision, run_id = (escape(run[k]) for k in ("plan_id", "candidate", "status", "decision",
                                                                          "run_id"))
        return (f'<tr data-plan="{plan}" data-model="{model}" data-decision="{decision}" data-status="{status}">\n'
                f'<td><a href="runs/{run_id}.html">{run_id}</a></td><td>{plan} v{escape(run["plan_version"])}</td>'
                f'<td>{model}</td>\n<td>{status}</td><td><span class="badge decision-{decision}">{decision}</span></td>'
                f'<td>{escape(run["started_at"])}</td></tr>')
    return Markup("".join(row(run) for run in reversed(rows)))


def _page(template: jinja2.Template, root: str, title: str, **values: Any) -> str:
    return template.render(csp=CSP, style=STYLE, root=root, title=title, **values)


TREND_RUNS = 200  # a trend plot shows a plan's latest runs; its table lists every run
EffectPoints = dict[str, list[Any]]  # metric -> [relative, relative_low, relative_high]: what plan pages read of a run


def _effect_points(run: RunEffects) -> EffectPoints:
    """A run's effects as plan pages use them; kept in the manifest so an unchanged run is never reloaded."""
    return {metric: [row.get("relative"), row.get("relative_low"), row.get("relative_high")]
            for metric, row in run.results.items()}


def _trend_images(plan, runs: list[dict[str, Any]], points: dict[str, EffectPoints]) -> list[dict[str, str]]:
    """One plot per preregistered metric: relative effect with interval per run, coloured by model, over the
    latest TREND_RUNS runs that have one (numbered among all the plan's runs)."""
    import matplotlib.ticker
    from matplotlib.figure import Figure  # not pyplot: no global state, and half its import time

    images = []
    palette = ["#0969da", "#bc4c00", "#1a7f37", "#8250df", "#cf222e", "#57606a"]
    for metric in plan.hypotheses:
        plotted = [(i, run, points[run["run_id"]][metric.id]) for i, run in enumerate(runs, start=1)
                   if all(isinstance(v, (int, float)) for v in points.get(run["run_id"], {}).get(metric.id, [None]))]
        if not plotted:
            continue
        shown = plotted[-TREND_RUNS:]
        fig = Figure(figsize=(8, 3))
        ax = fig.subplots()
        models = sorted({str(run["candidate"]) for _, run, _ in shown})
        for colour, model in zip(palette * 10, models):
            chosen = [(i, effect) for i, run, effect in shown if str(run["candidate"]) == model]
            xs = [i for i, _ in chosen]
            ys = [effect * 100 for _, (effect, _, _) in chosen]
            low = [y - low * 100 for y, (_, (_, low, _)) in zip(ys, chosen)]
            high = [high * 100 - y for y, (_, (_, _, high)) in zip(ys, chosen)]
            ax.errorbar(xs, ys, yerr=[low, high], fmt="o", capsize=3, color=colour, label=f"model {model}")
        if metric.margin is not None and metric.margin_type == "relative":
            ax.axhline(metric.margin * 100 * (1 if metric.direction == "increase" else -1), color="#cf222e",
                       linestyle="--", lw=1, label="guardrail margin")
        ax.axhline(0, color="grey", lw=1)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("run number (oldest to newest)")
        ax.set_ylabel("relative effect (%)")
        ax.set_title(f"{metric.id} ({metric.role}) across runs")
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        which = f"the latest {len(shown)} of {len(plotted)} runs" if len(shown) < len(plotted) else f"{len(shown)} runs"
        images.append({"png": base64.b64encode(buffer.getvalue()).decode(),
                       "alt": f"Relative effect of {metric.id} with intervals across {which}, by model version"})
    return images


MANIFEST = ".site-manifest.json"
# any change to this module (templates, wording) makes every page stale
SITE_FORMAT = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _fingerprint(*parts: Any) -> str:
    """Of plain values (index rows in column order, file states, ledger entries as read): their repr is
    deterministic, and cheaper than canonical JSON over 10,000 runs."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _folder_state(folder: str) -> list[tuple[str, int, int]]:
    """Name, size and mtime of every file: a changed artifact shows here even if SHA256SUMS did not change."""
    with os.scandir(folder) as found:
        return sorted((e.name, (st := e.stat()).st_size, st.st_mtime_ns) for e in found if e.is_file())


@dataclass
class _Manifest:
    """What the last build rendered: each run's and plan's fingerprint, each run's effect points, and how far
    the ledger's chain was verified (a byte length, the sha256 of those bytes, the chain state there)."""

    runs: dict[str, str] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)
    effects: dict[str, EffectPoints] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> "_Manifest":
        try:
            manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
            return cls(dict(manifest["runs"]), dict(manifest["plans"]), dict(manifest["effects"]),
                       dict(manifest["ledger"]))
        except (OSError, ValueError, KeyError, TypeError):  # none, or an older format: render everything
            return cls()

    def save(self, out: Path) -> None:
        manifest = {"runs": self.runs, "plans": self.plans, "effects": self.effects, "ledger": self.ledger}
        (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")  # (asdict would deep-copy it all)


@dataclass(frozen=True)
class _Sources:
    """Everything the ledger says that pages show: plan versions, human decisions, run entries, chain problems."""

    versions: dict[str, list[dict[str, Any]]]
    human: dict[str, list[dict[str, Any]]]
    run_entries: dict[str, dict[str, Any]]
    problems: list[str]
    verified: dict[str, Any]  # for the next build's manifest

    @classmethod
    def read(cls, project: Project, verified: dict[str, Any]) -> "_Sources":
        """The entries, and their chain checked from where `verified` (the last build's) left off when the
        ledger still begins with the very bytes it verified: appends are checked, the rest is not re-hashed."""
        ledger = Ledger(project.ledger_path)
        try:
            data = project.ledger_path.read_bytes() if project.ledger_path.exists() else b""
            entries = ledger.entries_in(data)  # parsed from the very bytes whose hash is kept
        except Exception as exc:  # an unreadable ledger is itself the finding
            return cls({}, {}, {}, [str(exc)], {})
        known = verified.get("bytes", 0)
        if 0 < known <= len(data) and verified.get("entries", 0) <= len(entries) \
                and hashlib.sha256(data[:known]).hexdigest() == verified.get("sha256"):
            chain, state = chain_problems(entries[verified["entries"]:], ledger.path.name, tuple(verified["state"]))
            chain = verified["problems"] + chain
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
               generated: str | None = None, progress: Callable[[str], None] = lambda message: None) -> SiteSummary:
    """Build the site, re-rendering only runs and plans whose fingerprint (index row, run folder files,
    human decisions, this module) differs from the manifest of the last build in `out`; `full` ignores it.
    Each re-rendered run is verified (its artifacts against SHA256SUMS, SHA256SUMS and its record against
    its ledger entry) as its page is written. Runs held only in a remote run store are fetched (verified)
    into runs/.cache when they need rendering."""
    start = time.perf_counter()
    generated = generated or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    index = open_index(project)
    rows = index.rows()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("plans", "runs", "compare", ASSETS):
        (out / sub).mkdir(exist_ok=True)
    previous = _Manifest() if full else _Manifest.load(out)
    sources = _Sources.read(project, previous.ledger)
    store = open_run_store(project)
    in_store = set(store.published()) if store.remote else set()

    run_prints = {}
    runs_dir = str(project.runs_dir)  # plain strings and one scandir per run: this loop visits every run
    for row in rows:
        run_id = row["run_id"]
        try:
            state: Any = _folder_state(os.path.join(runs_dir, run_id))
        except (FileNotFoundError, NotADirectoryError):
            if run_id not in in_store:
                continue
            state = row["sums_sha256"]  # a store-only run: its row carries its SHA256SUMS hash
        run_prints[run_id] = _fingerprint(SITE_FORMAT, row, state, sources.human.get(run_id, []))
    pages = set(os.listdir(out / "runs"))
    stale = [run_id for run_id, fp in run_prints.items()
             if previous.runs.get(run_id) != fp or run_id not in previous.effects or f"{run_id}.html" not in pages]
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
    gone = set(previous.runs) - set(run_prints)
    changed = bool(stale or stale_plans or gone) or previous.plans.keys() != plan_prints.keys()
    if changed:
        (out / MANIFEST).unlink(missing_ok=True)  # a build that stops half-way leaves no manifest to trust
    points = {run_id: previous.effects[run_id] for run_id in run_prints if run_id not in stale}
    points.update(_render_runs(project, store, out, stale, sources, generated, progress))
    for run_id in gone:
        (out / "runs" / f"{run_id}.html").unlink(missing_ok=True)

    plans = []
    for plan_id, plan_runs in sorted(by_plan.items()):
        located = [r for r in plan_runs if r["run_id"] in run_prints]
        plan = frozen_plan_of(run_folder(project, located[-1]["run_id"], store))
        if plan_id in stale_plans:
            _write_plan_page(project, store, out, plan, plan_runs, sources.versions.get(plan_id, []), points)
        plans.append({"id": plan_id, "title": plan.title, "latest": plan_runs[-1], "count": len(plan_runs)})

    written = []
    for group in comparisons or []:
        comparison = compare_effects([RunEffects.load(run_folder(project, index.find(run)["run_id"], store))
                                      for run in group])
        name = "--".join(r["run_id"] for r in comparison.runs) + ".html"
        (out / "compare" / name).write_text(render_comparison(comparison, root="../"), encoding="utf-8")
        written.append({"file": name, "label": " vs ".join(r["run_id"] for r in comparison.runs)})

    known = {"decision": {a.value for a in Action}, "status": {s.value for s in Status}}
    options = {key: sorted({str(r[column]) for r in rows} | known.get(key, set()))
               for key, column in (("plan", "plan_id"), ("model", "candidate"), ("decision", "decision"), ("status", "status"))}
    (out / "index.html").write_text(_page(
        INDEX, "", "Impact assessments", plans=plans, run_rows=_run_rows(rows), run_count=len(rows), options=options,
        filters=[("plan", "Plan"), ("model", "Model version"), ("decision", "Decision"), ("status", "Status")],
        comparisons=written, generated=generated, script=FILTER_SCRIPT, ledger_problems=sources.problems),
        encoding="utf-8")
    if changed:  # (unchanged, the last manifest still describes every page; the ledger is re-checked from it)
        _Manifest(run_prints, plan_prints, {run_id: points[run_id] for run_id in run_prints},
                  sources.verified).save(out)
    return SiteSummary(out, len(plans), len(rows), [w["file"] for w in written], round(time.perf_counter() - start, 3),
                       rendered=len(stale))


PARALLEL_FROM = 200  # stale runs from which pages are rendered by one process per core (start-up ~0.5 s each)
RUNS_PER_TASK = 50
RunJob = tuple[str, "dict[str, Any] | None", "list[dict[str, Any]]"]  # run id, its ledger entry, human decisions


def _render_runs(project: Project, store: RunStore, out: Path, stale: list[str], sources: _Sources, generated: str,
                 progress: Callable[[str], None]) -> dict[str, EffectPoints]:
    """Verify and write each stale run's page; its effect points, by run id. Parsing, templating and hashing
    hold the GIL for most of a page, so many pages are spread over processes, not threads."""
    jobs: list[RunJob] = [(run_id, sources.run_entries.get(run_id), sources.human.get(run_id, [])) for run_id in stale]
    tasks = [jobs[i:i + RUNS_PER_TASK] for i in range(0, len(jobs), RUNS_PER_TASK)]
    workers = min(os.cpu_count() or 1, len(tasks), 8)
    found: dict[str, EffectPoints] = {}

    def collect(done: dict[str, EffectPoints]) -> None:
        before = len(found)
        found.update(done)
        step = max(100, len(jobs) // 10)
        if len(found) // step > before // step or len(found) == len(jobs):
            progress(f"site: {len(found):,} of {len(jobs):,} run pages verified and written")

    # Forked workers start at once and need no re-import (spawn would re-run the caller's main script); a fork is
    # safe only from a process with one thread (no lock held elsewhere mid-fork), such as `impactbook site`.
    if len(jobs) < PARALLEL_FROM or workers < 2 or threading.active_count() > 1 \
            or "fork" not in multiprocessing.get_all_start_methods():
        for task in tasks:
            collect(_render_task(project, out, task, generated, store))
        return found
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for future in as_completed([pool.submit(_render_task, project, out, task, generated) for task in tasks]):
            collect(future.result())
    return found


def _render_task(project: Project, out: Path, jobs: list[RunJob], generated: str,
                 store: RunStore | None = None) -> dict[str, EffectPoints]:
    """Run pages for `jobs`, in this process or a pool's; a failure names the run (and crosses processes as a
    plain ImpactbookError)."""
    store = store or open_run_store(project)
    points = {}
    for run_id, entry, decisions in jobs:
        try:
            folder = run_folder(project, run_id, store)
            run = RunEffects.load(folder)
            problems = run_problems(project, folder, entry, run.record)
            _write_run_page(folder, out, run, problems, decisions, generated)
        except ImpactbookError:
            raise
        except Exception as exc:
            raise ImpactbookError(f"run {run_id}: its page could not be written ({type(exc).__name__}: {exc})",
                                  where=str(project.relative(project.runs_dir / run_id)),
                                  hint="run `impactbook verify`") from None
        points[run_id] = _effect_points(run)
    return points


ASSETS = "assets"
SHARED_STYLE_BYTES = 4096
REPORT_CSP_STYLES = b"style-src 'unsafe-inline'"
RUN_PAGE_CSP_STYLES = b"style-src 'self' 'unsafe-inline'"  # the site's own shared stylesheets, nothing else


def _share_styles(html: bytes, assets: Path) -> bytes:
    """Move each large style block into a content-addressed file under assets/ and link it. Two thirds of
    every stored report is nbconvert's JupyterLab theme, the same in every run: the site writes it once
    instead of once per run page (a name from the content can never point at other content). Found with
    bytes.find, not a regex: a lazy match over 250 KB of CSS costs more than writing it."""
    parts, at = [], 0
    while (start := html.find(b"<style", at)) >= 0:
        opened = html.find(b">", start) + 1
        closed = html.find(b"</style>", opened)
        if opened == 0 or closed < 0:
            break
        css = html[opened:closed]
        if len(css) < SHARED_STYLE_BYTES:
            parts.append(html[at:closed + 8])
        else:
            name = hashlib.sha256(css).hexdigest()[:24] + ".css"
            target = assets / name
            if not target.exists():
                partial = assets / f".{name}.{os.getpid()}"
                partial.write_bytes(css)
                os.replace(partial, target)  # other processes may be writing the same file
            parts += [html[at:start], b'<link rel="stylesheet" href="../' + f"{ASSETS}/{name}".encode() + b'">']
        at = closed + 8
    parts.append(html[at:])
    return b"".join(parts)


def _write_run_page(folder: Path, out: Path, run: RunEffects, problems: list[str],
                    decisions: list[dict[str, Any]], generated: str) -> None:
    """The stored report with the site's navigation and checks added, handled as bytes (no decode, no
    re-encode of a report that is mostly embedded images)."""
    run_id = run.record.run_id
    extra = RUN_EXTRA.render(r=run.record, results=list(run.results.values()), env=run.record.environment,
                             packages=PACKAGES, problems=problems, generated=generated, decisions=decisions)
    html = _share_styles(strip_scripts((folder / "report.html").read_bytes()), out / ASSETS)
    html = html.replace(REPORT_CSP_STYLES, RUN_PAGE_CSP_STYLES, 1)
    body = html.find(b"<body")
    body = html.find(b">", body) + 1 if body >= 0 else 0
    html = html[:body] + RUN_NAV.render(r=run.record).encode() + html[body:]
    html = html.replace(b"</section>\n<hr/>", b"</section>\n" + extra.encode() + b"\n<hr/>", 1)
    (out / "runs" / f"{run_id}.html").write_bytes(html)


def _write_plan_page(project: Project, store: RunStore, out: Path, plan, plan_runs: list[dict[str, Any]],
                     versions: list[dict[str, Any]], points: dict[str, EffectPoints]) -> None:
    """The plan's page; its baseline check judges from the effect points, exactly as `impactbook baseline`."""
    completed = [r["run_id"] for r in plan_runs if r["status"] == "COMPLETED" and r["run_id"] in points]
    baseline = None
    if completed:
        settings = frozen_plan_of(run_folder(project, completed[-1], store)).history
        relative = {run_id: {metric: p[0] for metric, p in points[run_id].items()} for run_id in completed}
        baseline = judge_against_history(plan.id, (completed[-1], relative[completed[-1]]),
                                         [(run_id, relative[run_id]) for run_id in completed[:-1]],
                                         settings.threshold_sd, settings.min_runs)
    (out / "plans" / f"{plan.id}.html").write_text(_page(
        PLAN_PAGE, "../", plan.title, plan=plan, runs=plan_runs, versions=versions,
        baseline=baseline or {"flags": [], "note": "No completed run yet."},
        trends=_trend_images(plan, plan_runs, points)), encoding="utf-8")


def render_comparison(comparison: Comparison, root: str = "") -> str:
    return _page(COMPARE_PAGE, root, "Comparison", c=comparison)
