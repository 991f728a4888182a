"""Attack: a plan title carrying Markdown (`[Approve the rollout](https://...)`) or HTML becomes a working
link in the report a stakeholder reads. Defence: plan text is escaped for HTML and Markdown alike."""

from __future__ import annotations

from impactbook.freezing import freeze_plan
from conftest import PLAN, edit_yaml, run

TITLE = "T [Approve the rollout](https://attacker.example/approve) <img src=x onerror=alert(1)> **bold**"


def test_a_markdown_link_in_the_title_is_not_a_link_in_the_report(project):
    edit_yaml(project.root / PLAN, (("title",), TITLE))
    freeze_plan(project, PLAN)
    report = (run(project).folder / "report.html").read_text()
    assert "attacker.example" in report, "the text is shown"
    assert 'href="https://attacker.example' not in report and "<img src=x" not in report
    assert "<strong>bold</strong>" not in report.split("<h2>")[1], "no emphasis from plan text either"
