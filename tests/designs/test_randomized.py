"""designs/randomized.py (the randomized design's analysis): the engine on synthetic data with a known effect, end to end through DuckDB."""

from __future__ import annotations

import datetime as dt

from impactbook.designs.randomized import analyse_file
from impactbook.demo import generate_demo_data
from impactbook.plan import load_plan
from conftest import PLAN

DAY_ONE = dt.date(2026, 11, 23)  # a fixed calendar: the data and the window do not move with the day the test runs


def _plan(project):
    """The example plan with its window over the generated fortnight (a fresh plan's window opens tomorrow)."""
    plan = load_plan(project.root / PLAN)
    window = plan.window.model_copy(update={"start": DAY_ONE, "end": DAY_ONE + dt.timedelta(days=13)})
    return plan.model_copy(update={"window": window})


def test_known_effect_is_found_and_reported(project, tmp_path):
    path = generate_demo_data(tmp_path / "d.csv", DAY_ONE, 14, users=40_000, conversion_lift=0.03)
    plan = _plan(project)
    analysis = analyse_file(plan, path)
    results = {r.metric: r for r in analysis.results}
    conversion = results["conversion"].effect
    assert conversion.difference_low < 0.03 < conversion.difference_high  # the true lift is 0.03 (absolute)
    assert results["conversion"].verdict == "CONFIRMED"
    assert results["conversion"].adjusted_p_value >= conversion.p_value  # Holm never lowers a p-value
    assert results["revenue_per_user"].effect.variance_reduction > 0.2
    assert results["revenue_per_user"].cap is not None
    assert results["pre_period_revenue"].verdict is None
    assert not analysis.srm.mismatch and set(analysis.segment_srm) == {"platform=android", "platform=ios", "platform=web"}
    assert {h["metric"] for h in analysis.heterogeneity} == {m.id for m in plan.metrics}
    last = analysis.daily[-1]
    assert last["difference"] == conversion.difference  # the cumulative effect on the last day is the overall one
    assert {p["metric"] for p in analysis.scraps()["power"]} == {"conversion", "revenue_per_user"}


def test_small_segments_are_suppressed(project, tmp_path):
    path = generate_demo_data(tmp_path / "d.csv", DAY_ONE, 14, users=6000)
    plan = _plan(project)
    plan = plan.model_copy(update={"segments": plan.segments.model_copy(update={"min_size": 800})})
    analysis = analyse_file(plan, path)
    suppressed = {s.value for s in analysis.segments if s.suppressed}
    assert suppressed == {"web"}  # 25% of 6000 split in two arms: about 750 per arm
    rows = [r for r in analysis.scraps()["segments"] if r["value"] == "web"]
    assert all("relative" not in r for r in rows), "no numbers of a suppressed segment leave the engine"
    assert all(h["segments"] == 2 for h in analysis.heterogeneity)
