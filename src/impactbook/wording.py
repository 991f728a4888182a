"""Plain-language numbers for stakeholders: one effect, one sentence, consistent formatting."""

from __future__ import annotations

from typing import Any


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def describe_effect(row: dict[str, Any]) -> str:
    """'conversion rose 0.6 pp (95% CI 0.2 to 1.0), relative +4.1%' from an engine result row."""
    difference = row.get("difference")
    if not isinstance(difference, (int, float)):
        return f"{row.get('metric', 'the metric')}: no estimate"
    verb = "rose" if difference > 0 else ("fell" if difference < 0 else "did not change")
    low, high = row.get("difference_low"), row.get("difference_high")
    bounded = isinstance(low, (int, float)) and isinstance(high, (int, float))
    level = f"{100 * (row.get('level') or 0.95):.0f}% CI"
    if row.get("kind") == "proportion":
        amount = f"{abs(difference) * 100:.1f} pp"
        interval = f" ({level} {low * 100:.1f} to {high * 100:.1f} pp)" if bounded else ""
    else:
        amount = _number(abs(difference))
        interval = f" ({level} {_number(low)} to {_number(high)})" if bounded else ""
    relative = row.get("relative")
    tail = f", relative {relative * 100:+.1f}%" if isinstance(relative, (int, float)) else ""
    return f"{row.get('metric', 'the metric')} {verb} {amount}{interval}{tail}"


def percent(value: Any, digits: int = 1) -> str:
    return f"{value * 100:+.{digits}f}%" if isinstance(value, (int, float)) else "–"


def effect_summaries(rows: list[dict[str, Any]], verdicts: dict[str, str]) -> list[dict[str, Any]]:
    """The standard results rows as plain-words summaries with their final verdicts."""
    summaries = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("metric"), str):
            continue
        key = f"{row['metric']}:{row['arm']}" if row.get("arm") else row["metric"]
        verdict = verdicts.get(key, verdicts.get(row["metric"]))
        sentence = describe_effect(row)
        if row.get("arm"):
            sentence = f"[{row['arm']}] {sentence}"
        if row.get("note") and not isinstance(row.get("relative"), (int, float)):
            sentence += f" ({row['note']})"
        summaries.append({
            "metric": row["metric"], "arm": row.get("arm"), "role": row.get("role"),
            **{k: row.get(k) if isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool) else None
               for k in ("difference", "difference_low", "difference_high", "relative", "relative_low",
                         "relative_high", "level")},
            "unit": "pp" if row.get("kind") == "proportion" else "absolute",
            "verdict": verdict or ("exploratory, no verdict" if row.get("role") == "exploratory" else None),
            "sentence": sentence + (f" — {verdict}" if verdict else (
                " — exploratory, no verdict" if row.get("role") == "exploratory" else ""))})
    return summaries
