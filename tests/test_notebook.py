"""notebook.py: the helpers templates call — here the data-quality table every quasi-experimental report ends with."""

from __future__ import annotations

import impactbook.notebook as ib


def test_facts_show_each_value_as_text_escaped_once():
    """The ITS template escaped each value and then the table escaped it again: the report read
    '2026\\-01\\-01' and '\\[&amp;\\#x27;r1&amp;\\#x27;\\]'."""
    html = ib.facts({"first_period": "2026-01-01", "series": ["r1", "r2"], "missing_values": {"conversion": 7},
                     "left_out": [{"metric": "a", "units": 3}, {"metric": "b", "units": 0}], "panel_rows": 12345,
                     "series_periods_with_several_rows": None, "note": "<b>&</b>"}).data
    for cell in ("<td>first period</td>", "<td>2026-01-01</td>", "<td>r1, r2</td>", "<td>conversion: 7</td>",
                 "<td>metric: a; units: 3 | metric: b; units: 0</td>", "<td>12,345</td>",
                 "<td>&lt;b&gt;&amp;&lt;/b&gt;</td>"):
        assert cell in html, cell
    assert "\\-" not in html and "&amp;#" not in html
