"""The site's pages: templates, the index's run table, plan pages with trend plots, run pages made from the
stored reports, comparison pages. Every string from a plan, a dataset or a scrap goes through Jinja2's
autoescaping (or markupsafe, the same escaping); the only script is our own filter, allowed by hash."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

import jinja2
from markupsafe import Markup, escape

from ..backends.run_store import RunStore
from ..compare import Comparison, RunEffects, frozen_plan_of, judge_against_history
from ..durable import write_bytes, write_text
from ..errors import ImpactbookError
from ..index import run_folder
from ..project import Project
from ..report import COLOURS, RUN_ALERT, strip_scripts
from .plots import TrendSpec
from ..wording import describe_effect, percent

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
{% if flagged or missing %}<section class="ib-verify-failed" role="alert"><h2>Runs that do not verify</h2>
<p>Their numbers and decisions cannot be trusted until <code>impactbook verify</code> passes.</p><ul>
{% for run_id, problems in flagged.items() %}<li><a href="runs/{{ run_id }}.html">{{ run_id }}</a>: {{ problems[0] }}
{%- if problems | length > 1 %} (and {{ problems | length - 1 }} more){% endif %}</li>{% endfor %}
{% for run_id in missing %}<li>{{ run_id }}: the ledger records this run, but it is not in the run store or the index
</li>{% endfor %}
</ul></section>{% endif %}
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
{{ plan_run_rows }}
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
NOT_VERIFIED = ' <strong class="ib-not-verified">does not verify</strong>'
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


def run_rows(rows: list[dict[str, Any]], flagged: Collection[str] = ()) -> Markup:
    """The index's table of runs, newest first, built without a template call per row (10,000 rows: 0.8 s
    through Jinja); every value escaped by markupsafe, exactly as Jinja's autoescaping does. A run in
    `flagged` (it does not verify) is marked as such."""
    def row(run: dict[str, Any]) -> str:
        plan, model, status, decision, run_id = (escape(run[k]) for k in ("plan_id", "candidate", "status", "decision",
                                                                          "run_id"))
        mark = NOT_VERIFIED if run["run_id"] in flagged else ""
        return (f'<tr data-plan="{plan}" data-model="{model}" data-decision="{decision}" data-status="{status}">\n'
                f'<td><a href="runs/{run_id}.html">{run_id}</a>{mark}</td>'
                f'<td>{plan} v{escape(run["plan_version"])}</td>'
                f'<td>{model}</td>\n<td>{status}</td><td><span class="badge decision-{decision}">{decision}</span></td>'
                f'<td>{escape(run["started_at"])}</td></tr>')
    return Markup("".join(row(run) for run in reversed(rows)))


def plan_run_rows(rows: list[dict[str, Any]], flagged: Collection[str] = ()) -> Markup:
    """A plan page's table of runs, oldest first, built like run_rows (10,000 rows: 1.1 s through Jinja)."""
    def row(run: dict[str, Any]) -> str:
        run_id, decision = escape(run["run_id"]), escape(run["decision"])
        verdicts = "; ".join(f"{escape(k)}: {escape(v)}" for k, v in run["verdicts"].items())
        mark = NOT_VERIFIED if run["run_id"] in flagged else ""
        return (f'<tr><td><a href="../runs/{run_id}.html">{run_id}</a>{mark}</td><td>{escape(run["plan_version"])}</td>'
                f'<td>{escape(run["candidate"])}</td>\n<td>{escape(run["status"])}</td><td><span class="badge '
                f'decision-{decision}">{decision}</span></td><td>{verdicts}</td></tr>')
    return Markup("".join(row(run) for run in rows))


def page(template: jinja2.Template, root: str, title: str, **values: Any) -> str:
    return template.render(csp=CSP, style=STYLE, root=root, title=title, **values)


TREND_RUNS = 200  # a trend plot shows a plan's latest runs; its table lists every run
EffectPoints = dict[str, list[Any]]  # metric -> [relative, relative_low, relative_high]: what plan pages read of a run


def effect_points(run: RunEffects) -> EffectPoints:
    """A run's effects as plan pages use them; kept in the manifest so an unchanged run is never reloaded."""
    return {metric: [row.get("relative"), row.get("relative_low"), row.get("relative_high")]
            for metric, row in run.results.items()}


def trend_specs(plan, runs: list[dict[str, Any]], points: dict[str, EffectPoints]) -> list[TrendSpec]:
    """One plot per preregistered metric: relative effect with interval per run, coloured by model, over the
    latest TREND_RUNS runs that have one (numbered among all the plan's runs); drawn by plots.draw."""
    specs = []
    palette = ["#0969da", "#bc4c00", "#1a7f37", "#8250df", "#cf222e", "#57606a"]
    for metric in plan.hypotheses:
        plotted = [(i, run, points[run["run_id"]][metric.id]) for i, run in enumerate(runs, start=1)
                   if all(isinstance(v, (int, float)) for v in points.get(run["run_id"], {}).get(metric.id, [None]))]
        if not plotted:
            continue
        shown = plotted[-TREND_RUNS:]
        series = []
        models = sorted({str(run["candidate"]) for _, run, _ in shown})
        for colour, model in zip(palette * 10, models):
            chosen = [(i, effect) for i, run, effect in shown if str(run["candidate"]) == model]
            ys = [effect * 100 for _, (effect, _, _) in chosen]
            series.append({"label": f"model {model}", "colour": colour, "x": [i for i, _ in chosen], "y": ys,
                           "low": [y - low * 100 for y, (_, (_, low, _)) in zip(ys, chosen)],
                           "high": [high * 100 - y for y, (_, (_, _, high)) in zip(ys, chosen)]})
        margin = None
        if metric.margin is not None and metric.margin_type == "relative":
            margin = metric.margin * 100 * (1 if metric.direction == "increase" else -1)
        which = f"the latest {len(shown)} of {len(plotted)} runs" if len(shown) < len(plotted) else f"{len(shown)} runs"
        specs.append({"series": series, "margin": margin, "xlabel": "run number (oldest to newest)",
                      "ylabel": "relative effect (%)", "title": f"{metric.id} ({metric.role}) across runs",
                      "alt": f"Relative effect of {metric.id} with intervals across {which}, by model version"})
    return specs


ASSETS = "assets"
SHARED_STYLE_BYTES = 4096
REPORT_CSP_STYLES = b"style-src 'unsafe-inline'"
RUN_PAGE_CSP_STYLES = b"style-src 'self' 'unsafe-inline'"  # the site's own shared stylesheets, nothing else


_WRITTEN_STYLES: dict[Path, dict[bytes, str]] = {}  # assets folder -> large style blocks written there, their names
KNOWN_STYLES = 8  # a report theme has two large blocks; a few themes at once stay known


def _share_styles(html: bytes, assets: Path) -> bytes:
    """Move each large style block into a content-addressed file under assets/ and link it. Two thirds of
    every stored report is nbconvert's JupyterLab theme, the same in every run: the site writes it once
    instead of once per run page (a name from the content can never point at other content). Found with
    bytes.find, not a regex: a lazy match over 250 KB of CSS costs more than writing it."""
    parts, at = [], 0
    while (start := html.find(b"<style", at)) >= 0:
        opened = html.find(b">", start) + 1
        if opened == 0:
            break
        name, closed = _known_style(html, opened, assets)
        if name is None:
            closed = html.find(b"</style>", opened)
            if closed < 0:
                break
            if closed - opened >= SHARED_STYLE_BYTES:
                name = _write_style(html[opened:closed], assets)
        if name is None:
            parts.append(html[at:closed + 8])
        else:
            parts += [html[at:start], b'<link rel="stylesheet" href="../' + f"{ASSETS}/{name}".encode() + b'">']
        at = closed + 8
    parts.append(html[at:])
    return b"".join(parts)


def forget_written_styles() -> None:
    """A new build may write into a folder emptied since the last one: nothing is known to be there."""
    _WRITTEN_STYLES.clear()


def _known_style(html: bytes, opened: int, assets: Path) -> tuple[str | None, int]:
    """The asset name and end of the style block opening at `opened` when it is one already written (the same
    theme, run after run): recognised by comparing bytes in place, a tenth of the cost of finding its end
    and hashing it again."""
    for css, name in _WRITTEN_STYLES.get(assets, {}).items():
        if html.startswith(css, opened) and html.startswith(b"</style>", opened + len(css)):
            return name, opened + len(css)
    return None, -1


STYLE_NAME = re.compile(r"[0-9a-f]{24}\.css")


def style_name(css: bytes) -> str:
    """A shared stylesheet's file name: its content's hash, so a name can never point at other content."""
    return hashlib.sha256(css).hexdigest()[:24] + ".css"


def style_names(assets: Path) -> list[str]:
    """The shared stylesheets in `assets` (nothing else there is the site's)."""
    return sorted(name for name in os.listdir(assets) if STYLE_NAME.fullmatch(name))


def damaged_assets(assets: Path, expected: list[str]) -> list[str]:
    """The shared stylesheets a build left (`expected`) that are gone, and any there whose content no longer
    matches its name; the changed ones are removed, so the run pages that link them write them again. Only
    names a stylesheet can have are looked at: a manifest naming another file (../x) deletes nothing."""
    damaged = []
    for name in sorted({n for n in expected if STYLE_NAME.fullmatch(n)} | set(style_names(assets))):
        path = assets / name
        if path.is_dir() and not path.is_symlink():
            raise ImpactbookError("a folder where the site keeps a shared stylesheet", where=str(path),
                                  hint="remove it; the next build writes the stylesheet again")
        if path.is_symlink() or (path.is_file() and style_name(path.read_bytes()) != name):
            path.unlink()
            damaged.append(name)
        elif not path.exists():
            damaged.append(name)
    return damaged


def _write_style(css: bytes, assets: Path) -> str:
    name = style_name(css)
    target = assets / name
    if not target.exists():
        write_bytes(target, css, sync=False)  # (replaced whole: other processes may be writing the same file)
    known = _WRITTEN_STYLES.setdefault(assets, {})
    if len(known) < KNOWN_STYLES:
        known[css] = name
    return name


def write_run_page(folder: Path, out: Path, run: RunEffects, problems: list[str],
                    decisions: list[dict[str, Any]], generated: str, report: bytes | None = None) -> None:
    """The stored report (`report`: its bytes as verified, else read here) with the site's navigation and
    checks added, handled as bytes (no decode, no re-encode of a report that is mostly embedded images)."""
    run_id = run.record.run_id
    extra = RUN_EXTRA.render(r=run.record, results=list(run.results.values()), env=run.record.environment,
                             packages=PACKAGES, problems=problems, generated=generated, decisions=decisions)
    html = _share_styles(strip_scripts(report if report is not None else (folder / "report.html").read_bytes()),
                         out / ASSETS)
    html = html.replace(REPORT_CSP_STYLES, RUN_PAGE_CSP_STYLES, 1)
    body = html.find(b"<body")
    body = html.find(b">", body) + 1 if body >= 0 else 0
    alert = RUN_ALERT.render(problems=problems) if problems else ""  # (at the top: not only below the numbers)
    html = html[:body] + (RUN_NAV.render(r=run.record) + alert).encode() + html[body:]
    html = html.replace(b"</section>\n<hr/>", b"</section>\n" + extra.encode() + b"\n<hr/>", 1)
    write_bytes(out / "runs" / f"{run_id}.html", html, sync=False)


@dataclass(frozen=True)
class PlanPage:
    """A plan's page, ready but for its trend plots (`specs`), which are drawn elsewhere (plots.Painter)."""

    plan_id: str
    values: dict[str, Any]
    specs: list[TrendSpec]

    def write(self, out: Path, images: list[str]) -> None:
        trends = [{"png": png, "alt": spec["alt"]} for spec, png in zip(self.specs, images, strict=True)]
        write_text(out / "plans" / f"{self.plan_id}.html", page(PLAN_PAGE, "../", trends=trends, **self.values),
                   sync=False)


def plan_page(project: Project, store: RunStore, plan, plan_runs: list[dict[str, Any]], versions: list[dict[str, Any]],
              points: dict[str, EffectPoints], specs: list[TrendSpec], flagged: Collection[str] = ()) -> PlanPage:
    """The plan's page (`specs`: its trend_specs; `flagged`: runs that do not verify); its baseline check judges
    from the effect points, exactly as `impactbook baseline`."""
    completed = [r["run_id"] for r in plan_runs if r["status"] == "COMPLETED" and r["run_id"] in points]
    baseline = None
    if completed:
        settings = frozen_plan_of(run_folder(project, completed[-1], store)).history
        relative = {run_id: {metric: p[0] for metric, p in points[run_id].items()} for run_id in completed}
        baseline = judge_against_history(plan.id, (completed[-1], relative[completed[-1]]),
                                         [(run_id, relative[run_id]) for run_id in completed[:-1]],
                                         settings.threshold_sd, settings.min_runs)
    values = {"title": plan.title, "plan": plan, "plan_run_rows": plan_run_rows(plan_runs, flagged),
              "versions": versions,
              "baseline": baseline or {"flags": [], "note": "No completed run yet."}}
    return PlanPage(plan.id, values, specs)


def render_comparison(comparison: Comparison, root: str = "") -> str:
    return page(COMPARE_PAGE, root, "Comparison", c=comparison)
