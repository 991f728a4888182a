"""Stage 7 of a run: the stakeholder report — decision first, then verdicts, plan and deviations,
then the executed notebook with code hidden (nbconvert). Every value from a plan, a dataset or a
scrap is escaped by Jinja2's autoescaping."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, AnyStr

import jinja2

from .durable import write_text
from .plan import Plan
from .record import RunRecord

RUN_ALERT = jinja2.Environment(autoescape=True).from_string("""
<section class="ib-verify-failed" role="alert" style="font-family: system-ui, sans-serif; max-width: 72em;
margin: 1em auto; border: 2px solid #cf222e; padding: .5em 1em;">
<strong>This run does not verify: its numbers and decision cannot be trusted.</strong>
<ul>{% for p in problems %}<li>{{ p }}</li>{% endfor %}</ul>
<p>Run <code>impactbook verify</code> to see every problem.</p></section>""")  # (the site's run pages too)
HEADER = jinja2.Environment(autoescape=True).from_string("""
<style>
  .ib-summary th, .ib-summary td { padding: .25em .8em; text-align: left; border-bottom: 1px solid #d0d7de; vertical-align: top; }
  .ib-label { display: inline-block; padding: .1em .5em; margin-right: .4em; border-radius: 4px; background: #fff; color: #24292f; font-weight: 600; }
</style>
<section class="ib-summary" style="font-family: system-ui, sans-serif; max-width: 72em; margin: 1em auto;">
  {% if "RETROSPECTIVE" in r.labels %}<p class="ib-retrospective" style="font-weight: 600; font-size: 1.1em;">
    Retrospective analysis: the plan was frozen after the outcome data existed{% if plan.registration.reason %} ({{ plan.registration.reason }}){% endif %}.
    Its verdicts keep their statistical meaning; shipping needs a recorded human decision.</p>{% endif %}
  <div class="ib-decision ib-{{ r.decision.action.value }}" role="status"
       style="padding: .8em 1.2em; border-radius: 6px; color: #fff; background: {{ colour }};">
    {% for label in r.labels %}<span class="ib-label">{{ label }}</span>{% endfor %}
    <strong style="font-size: 1.4em;">Decision: {{ r.decision.action.value | upper }}</strong>
    &mdash; {{ r.decision.reason }}
    <div>Run {{ r.run_id }} &middot; status {{ r.status.value }} &middot; plan {{ r.plan.id }} v{{ r.plan.version }}
      (frozen {{ r.plan.frozen_at }}){% if r.reproduces %} &middot; reproduction of run {{ r.reproduces }}{% endif %}</div>
  </div>
  {% for note in r.gate.notes or [] %}<p class="ib-note"><em>{{ note }}</em></p>{% endfor %}
  <h2>{{ plan.title }}</h2>
  <p><em>Hypothesis:</em> {{ plan.hypothesis }}</p>
  {% if r.plan.amendment_reason %}<p class="ib-amendment"><em>Plan version {{ r.plan.version }} is an amendment
     (frozen {{ r.plan.frozen_at }}):</em> {{ r.plan.amendment_reason }}</p>{% endif %}
  <p>Model change: {{ plan.model_change.baseline }} &rarr; {{ plan.model_change.candidate }};
     alpha {{ plan.alpha }}; {% if plan.randomized %}expected split
     {% for arm, share in plan.design.expected_split.items() %}{{ arm }} {{ share }}{% if not loop.last %}, {% endif %}{% endfor %};
     {%- else %}design {{ plan.design.kind | replace("_", " ") }};{% endif %}
     outcome window {{ plan.window.start }} to {{ plan.window.end }}.</p>
  {% if plan.design.assumptions is defined %}<h3>Assumptions and limitations</h3>
  <p class="ib-assumptions">This {{ plan.design.kind | replace("_", " ") }} design rests on assumptions the data
     cannot fully test; the plan states them: {{ plan.design.assumptions }}</p>{% endif %}
  {% if effects %}<h3>Effects</h3><ul class="ib-effects">{% for line in effects %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
  <h3>Verdicts</h3>
  <table class="ib-verdicts" style="border-collapse: collapse;">
    <thead><tr><th>Metric</th><th>Role</th><th>Kind</th><th>Good direction</th><th>Margin</th><th>Final verdict</th>
      <th>Statistical result</th><th>Why</th></tr></thead>
    <tbody>
    {% for v in r.verdicts %}{% set m = metrics[v.metric] %}
      <tr><td>{{ v.metric }}</td><td>{{ v.role }}</td><td>{{ m.kind }}</td><td>{{ m.direction }}</td>
          <td>{{ margin(m) }}</td>
          <td><strong>{{ v.verdict.value }}</strong>{% for label in r.labels if label != "INTERIM" %} ({{ label }}){% endfor %}</td>
          <td>{{ v.statistical_verdict.value if v.statistical_verdict else "none" }}</td>
          <td>{% if v.statistical_verdict and v.statistical_verdict != v.verdict %}statistical result:
              {{ v.statistical_verdict.value }}; final verdict: {{ v.verdict.value }} because {% endif %}{{ v.reason }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  <p><small>The final verdict is impactbook's: the template's statistical result, unless the run was inadmissible
    (INADMISSIBLE), departed from its frozen plan (DEVIATED) or looked at a fixed-horizon test before its window
    closed (INTERIM). Labels: SIMULATED (synthetic data), RETROSPECTIVE (frozen after the outcomes existed).</small></p>
  {% if exploratory %}<p>Exploratory metrics (not preregistered hypotheses, no verdict): {{ exploratory | join(", ") }}</p>{% endif %}
  {% if decisions %}<h3>Human decisions</h3><ul class="ib-human-decisions">{% for d in decisions %}
    <li{% if d.override %} class="ib-override" style="border-left: 4px solid #cf222e; padding-left: .5em;"{% endif %}>
    <strong>{{ d.action }}</strong> by {{ d.by }} at {{ d.time }}: {{ d.reason }}
    {% if d.override %}<strong>— overrides the automatic {{ d.automatic }}</strong>{% endif %}</li>{% endfor %}</ul>{% endif %}
  <h3>Deviations from the frozen plan</h3>
  {% if r.gate.deviations %}<ul class="ib-deviations">{% for d in r.gate.deviations %}<li>{{ d }}</li>{% endfor %}</ul>
  {% else %}<p class="ib-deviations">None.</p>{% endif %}
  {% if r.gate.inadmissible %}<h3>Why the run is inadmissible</h3>
  <ul>{% for d in r.gate.inadmissible %}<li>{{ d }}</li>{% endfor %}</ul>{% endif %}
  {% if r.errors %}<h3>Errors</h3><ul>{% for e in r.errors %}<li><pre>{{ e }}</pre></li>{% endfor %}</ul>{% endif %}
  <h3>Inputs and data quality</h3>
  <ul>{% for i in r.inputs %}{% set facts = data.get(i.name, {}) %}<li>{{ i.name }}: {{ i.uri }} (sha256 {{ i.sha256[:16] }}&hellip;{% if i.pin_seq %}, pinned in ledger entry {{ i.pin_seq }}{% endif %})
    {% if facts %}&mdash; {{ "{:,}".format(facts.rows) }} rows{% if facts.first_time %}, dated {{ facts.first_time }} to {{ facts.last_time }}{% endif %}{% if facts.synthetic %}, synthetic{% endif %}{% for reason, count in (facts.excluded or {}).items() %}; {{ "{:,}".format(count) }} rows excluded ({{ reason }}){% endfor %}{% endif %}</li>{% endfor %}</ul>
  {% if units %}<table class="ib-units" style="border-collapse: collapse;"><thead><tr><th>Metric</th><th>n control</th><th>n treatment</th><th>Note</th></tr></thead><tbody>
  {% for u in units %}<tr><td>{{ u.metric }}</td><td>{{ u.control }}</td><td>{{ u.treatment }}</td><td>{{ u.note }}</td></tr>{% endfor %}
  </tbody></table>{% endif %}
</section>
<hr/>
""")

# No script runs and nothing is fetched: a report stays readable from file:// and cannot leak or execute
# anything that slipped into an output. (nbconvert's own sanitize_html escapes ordinary markup too.)
CSP = ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
       "style-src 'unsafe-inline'; font-src data:\">")

COLOURS = {"ship": "#1a7f37", "hold": "#9a6700", "rollback": "#cf222e"}  # WCAG AA contrast on white text


def _margin(metric) -> str:
    if metric.margin is None:
        return ""
    return f"{100 * metric.margin:+.1f}%" if metric.margin_type == "relative" else f"{metric.margin:+g} (absolute)"


def render_header(record: RunRecord, plan: Plan, decisions: list[dict] | None = None,
                  results: list[dict[str, Any]] | None = None) -> str:
    from .wording import describe_effect

    rows = [row for row in results or [] if isinstance(row, dict) and "metric" in row]
    verdicts = {v.key: v.verdict.value for v in record.verdicts}
    effects = [f"{describe_effect(row)} — {verdicts.get(row['metric'], 'exploratory, no verdict')}" for row in rows]
    units = [{"metric": row["metric"], "control": _count(row.get("control_n")), "treatment": _count(row.get("treatment_n")),
              "note": row.get("note") or ""} for row in rows]
    data = {facts.get("name"): facts for facts in record.gate.get("inputs", []) if isinstance(facts, dict)}
    return HEADER.render(r=record, plan=plan, metrics={m.id: m for m in plan.assessed}, decisions=decisions or [],
                         exploratory=[m.id for m in plan.assessed if m.role == "exploratory"], margin=_margin,
                         colour=COLOURS[record.decision.action.value], effects=effects, units=units, data=data)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else ""


def render_report(record: RunRecord, plan: Plan, notebook: Path | None, output: Path,
                  decisions: list[dict] | None = None, results: list[dict[str, Any]] | None = None,
                  problems: list[str] | None = None) -> Path:
    """Write the report; the notebook body (code hidden) follows the header when one was executed.
    `decisions`: human decisions recorded later in the ledger (re-rendered reports show them);
    `results`: the template's results rows, for the effects in plain words and the units per metric;
    `problems`: why the run does not verify, shown above everything (a re-rendered report of a tampered run)."""
    header = (RUN_ALERT.render(problems=problems) if problems else "") + render_header(record, plan, decisions, results)
    if notebook is not None and notebook.exists():
        import nbformat

        body, _ = _exporter().from_notebook_node(_without_scrap_outputs(nbformat.read(notebook, as_version=4)))
        body = re.sub(r"<title>.*?</title>", f"<title>{_escape(plan.title)} — impactbook run</title>", body,
                      count=1, flags=re.S)
        html = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + header, body, count=1)
        html = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + CSP, strip_scripts(html), count=1)
    else:
        html = (f"<!DOCTYPE html><html><head>{CSP}<meta charset='utf-8'><title>{_escape(plan.title)} — impactbook run"
                f"</title></head><body>{header}<p>No notebook was executed for this run.</p></body></html>")
    write_text(output, html)
    return output


@functools.lru_cache(maxsize=1)
def _exporter():
    """One exporter per process: building it compiles nbconvert's templates (~0.25 s), rendering is cheap."""
    from nbconvert import HTMLExporter

    return HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)


def warm_up() -> None:
    """Import nbconvert and compile its templates and sanitizer while the kernel works (the parent is
    idle then), so rendering after execution costs only the rendering itself."""
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# warm *up*"),
                                               nbformat.v4.new_code_cell("1", outputs=[nbformat.v4.new_output(
                                                   "execute_result", {"text/html": "<b>1</b>", "text/plain": "1"},
                                                   execution_count=1)])])
    _exporter().from_notebook_node(notebook)


SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)


SCRIPT_BYTES = re.compile(SCRIPT.pattern.encode(), SCRIPT.flags & ~re.U)


def strip_scripts(html: AnyStr) -> AnyStr:
    """A report runs no script and fetches nothing, so none is kept: nbconvert's lab template links
    require.js and MathJax from a CDN and adds loaders (mermaid, widgets) that would import more.
    Bytes are stripped as bytes: the site copies thousands of reports and never needs their text."""
    return SCRIPT.sub("", html) if isinstance(html, str) else SCRIPT_BYTES.sub(b"", html)


def _without_scrap_outputs(notebook):
    """Scraps are data for machines (scraps.json); they have no visual form in a report."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not any(k.startswith("application/scrapbook") for k in o.get("data", {}))]
    return notebook


def _escape(text: Any) -> str:
    return str(jinja2.utils.markupsafe.escape(text))
