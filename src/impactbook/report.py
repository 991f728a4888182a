"""Stage 7 of a run: the stakeholder report — decision first, then verdicts, plan and deviations,
then the executed notebook with code hidden (nbconvert). Every value from a plan, a dataset or a
scrap is escaped by Jinja2's autoescaping."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jinja2

from .plan import Plan
from .record import RunRecord

HEADER = jinja2.Environment(autoescape=True).from_string("""
<style>
  .ib-summary th, .ib-summary td { padding: .25em .8em; text-align: left; border-bottom: 1px solid #d0d7de; }
</style>
<section class="ib-summary" style="font-family: system-ui, sans-serif; max-width: 72em; margin: 1em auto;">
  <div class="ib-decision ib-{{ r.decision.action.value }}" role="status"
       style="padding: .8em 1.2em; border-radius: 6px; color: #fff; background: {{ colour }};">
    <strong style="font-size: 1.4em;">Decision: {{ r.decision.action.value | upper }}</strong>
    &mdash; {{ r.decision.reason }}
    <div>Run {{ r.run_id }} &middot; status {{ r.status.value }} &middot; plan {{ r.plan.id }} v{{ r.plan.version }}
      (frozen {{ r.plan.frozen_at }})</div>
  </div>
  <h2>{{ plan.title }}</h2>
  <p><em>Hypothesis:</em> {{ plan.hypothesis }}</p>
  {% if r.plan.amendment_reason %}<p class="ib-amendment"><em>Plan version {{ r.plan.version }} is an amendment
     (frozen {{ r.plan.frozen_at }}):</em> {{ r.plan.amendment_reason }}</p>{% endif %}
  <p>Model change: {{ plan.model_change.baseline }} &rarr; {{ plan.model_change.candidate }};
     alpha {{ plan.alpha }}; expected split
     {% for arm, share in plan.design.expected_split.items() %}{{ arm }} {{ share }}{% if not loop.last %}, {% endif %}{% endfor %};
     outcome window {{ plan.window.start }} to {{ plan.window.end }}.</p>
  <h3>Verdicts</h3>
  <table class="ib-verdicts" style="border-collapse: collapse;">
    <thead><tr><th>Metric</th><th>Role</th><th>Kind</th><th>Good direction</th><th>Margin</th><th>Verdict</th><th>Why</th></tr></thead>
    <tbody>
    {% for v in r.verdicts %}{% set m = metrics[v.metric] %}
      <tr><td>{{ v.metric }}</td><td>{{ v.role }}</td><td>{{ m.kind }}</td><td>{{ m.direction }}</td>
          <td>{{ "" if m.margin is none else "%+.1f%%" % (100 * m.margin) }}</td>
          <td><strong>{{ v.verdict.value }}</strong></td><td>{{ v.reason }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
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
  <h3>Inputs</h3>
  <ul>{% for i in r.inputs %}<li>{{ i.name }}: {{ i.uri }} (sha256 {{ i.sha256[:16] }}&hellip;)</li>{% endfor %}</ul>
</section>
<hr/>
""")

# No script runs and nothing is fetched: a report stays readable from file:// and cannot leak or execute
# anything that slipped into an output. (nbconvert's own sanitize_html escapes ordinary markup too.)
CSP = ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
       "style-src 'unsafe-inline'; font-src data:\">")

COLOURS = {"ship": "#1a7f37", "hold": "#9a6700", "rollback": "#cf222e"}  # WCAG AA contrast on white text


def render_header(record: RunRecord, plan: Plan, decisions: list[dict] | None = None) -> str:
    return HEADER.render(r=record, plan=plan, metrics={m.id: m for m in plan.metrics}, decisions=decisions or [],
                         exploratory=[m.id for m in plan.metrics if m.role == "exploratory"],
                         colour=COLOURS[record.decision.action.value])


def render_report(record: RunRecord, plan: Plan, notebook: Path | None, output: Path,
                  decisions: list[dict] | None = None) -> Path:
    """Write the report; the notebook body (code hidden) follows the header when one was executed.
    `decisions`: human decisions recorded later in the ledger (re-rendered reports show them)."""
    header = render_header(record, plan, decisions)
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
    output.write_text(html, encoding="utf-8")
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


def strip_scripts(html: str) -> str:
    """A report runs no script and fetches nothing, so none is kept: nbconvert's lab template links
    require.js and MathJax from a CDN and adds loaders (mermaid, widgets) that would import more."""
    return SCRIPT.sub("", html)


def _without_scrap_outputs(notebook):
    """Scraps are data for machines (scraps.json); they have no visual form in a report."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not any(k.startswith("application/scrapbook") for k in o.get("data", {}))]
    return notebook


def _escape(text: Any) -> str:
    return str(jinja2.utils.markupsafe.escape(text))
