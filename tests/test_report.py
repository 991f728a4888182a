"""report.py: decision first, verdicts, plan summary, deviations, a plot, no code; everything escaped."""

from __future__ import annotations

import re

from impactbook.freezing import freeze_plan
from conftest import PLAN, cli, edit_yaml, run


def test_report_leads_with_decision_and_hides_code(frozen_project):
    outcome = run(frozen_project)
    html = (outcome.folder / "report.html").read_text()
    body = html[html.index("<body"):]
    assert body.index("Decision: SHIP") < body.index("Verdicts") < body.index("Deviations from the frozen plan")
    assert "conversion" in body and "CONFIRMED" in body and "alpha 0.05" in body and "-2.0%" in body
    assert re.search(r'<img[^>]+src="data:image/png;base64,', body), "the report must include a plot"
    assert "ib.ab_results" not in body and "import impactbook" not in body, "code cells must be hidden"
    assert "application/scrapbook" not in body
    assert "&lt;h2" not in body and "<h2" in body, "markdown renders as markup, not as escaped text"
    head = html[:html.index("<body")]
    assert "Content-Security-Policy" in head and "default-src 'none'" in head
    assert "cdnjs" not in html and "<script" not in html, "a report runs no script and fetches nothing"


def test_strings_from_the_plan_are_escaped(project):
    edit_yaml(project.root / PLAN, (("title",), "<script>alert(1)</script> ranker"),
              (("hypothesis",), "<img src=x onerror=alert(2)>"))
    freeze_plan(project, PLAN)
    html = (run(project).folder / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; ranker" in html
    assert "<img src=x onerror" not in html


def test_report_command_rerenders_outside_the_immutable_folder(frozen_project):
    outcome = run(frozen_project)
    done = cli(frozen_project, "report", "latest")
    assert done.returncode == 0, done.stderr
    path = done.stdout.strip()
    assert path.endswith(f"runs/.reports/{outcome.record.run_id}.html")
    assert "Decision: SHIP" in open(path).read()
    assert cli(frozen_project, "verify").returncode == 0
    for wrong, said in (("runs/ledger.jsonl", "does not end in .html"), ("catalog.yaml", "does not end in .html"),
                        ("plans/example.yaml", "does not end in .html"), ("runs/x.html", "inside the project's runs/"),
                        ("templates/x.html", "inside the project's templates/"), ("plans", "is a folder")):
        before = {p: p.read_bytes() for p in frozen_project.root.rglob("*") if p.is_file()}
        refused = cli(frozen_project, "report", "latest", "--out", wrong)
        assert refused.returncode == 1 and f"error: {wrong}: {said}" in refused.stderr, (wrong, refused.stderr)
        assert {p: p.read_bytes() for p in frozen_project.root.rglob("*") if p.is_file()} == before, wrong
    (frozen_project.root / "link.html").symlink_to(frozen_project.ledger_path)
    assert "does not end in .html" in cli(frozen_project, "report", "latest", "--out", "link.html").stderr
    elsewhere = cli(frozen_project, "report", "latest", "--out", "shared/report.html")
    assert elsewhere.returncode == 0 and "Decision: SHIP" in (frozen_project.root / "shared/report.html").read_text()
    assert cli(frozen_project, "verify").returncode == 0
