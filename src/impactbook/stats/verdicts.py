"""From an effect to a verdict: superiority for primary and secondary metrics, non-inferiority for
guardrails (absolute or relative margins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .effects import Effect, reference_distribution

Direction = Literal["increase", "decrease"]

def superiority_verdict(effect: Effect, direction: Direction, alpha: float, p_value: float | None = None) -> str:
    """Two-sided test at alpha (on `p_value` if given, e.g. multiplicity-adjusted): significant in the
    good direction confirms, in the bad direction refutes, otherwise inconclusive."""
    p = effect.p_value if p_value is None else p_value
    if p >= alpha:
        return "INCONCLUSIVE"
    good = effect.difference > 0 if direction == "increase" else effect.difference < 0
    return "CONFIRMED" if good else "REFUTED"

@dataclass(frozen=True)
class NonInferiority:
    verdict: str
    margin: float
    margin_type: str
    low: float | None
    high: float | None
    p_value: float | None
    note: str | None = None

def non_inferiority_verdict(effect: Effect, direction: Direction, margin: float, alpha: float,
                            margin_type: Literal["relative", "absolute"] = "relative") -> tuple[str, float, float]:
    """See `non_inferiority`; returns (verdict, low, high) of the interval used."""
    result = non_inferiority(effect, direction, margin, alpha, margin_type)
    return result.verdict, result.low, result.high

def non_inferiority(effect: Effect, direction: Direction, margin: float, alpha: float,
                    margin_type: Literal["relative", "absolute"] = "relative") -> NonInferiority:
    """One-sided non-inferiority at alpha via the (1 - 2 alpha) interval (Schuirmann 1987; Wellek 2010,
    Testing Statistical Hypotheses of Equivalence and Noninferiority, ch. 2), on the effect's own
    reference distribution (Welch's t for means, the normal otherwise).

    `margin` is the largest tolerated harm, negative, on the relative lift or the absolute
    difference. For a metric whose good direction is `decrease`, harm is an increase. CONFIRMED
    when the whole interval lies on the safe side of the margin, REFUTED when it lies wholly
    beyond it, otherwise INCONCLUSIVE. The p-value is that of H0: harm at least the margin.
    """
    estimate, se = (effect.relative, effect.relative_se) if margin_type == "relative" else \
        (effect.difference, effect.standard_error)
    if estimate is None:
        return NonInferiority("INCONCLUSIVE", margin, margin_type, None, None, None,
                              f"a relative margin needs a relative effect: {effect.note}")
    reference = reference_distribution(effect)
    critical = reference.ppf(1 - alpha)
    low, high = estimate - critical * se, estimate + critical * se
    sign = 1 if direction == "increase" else -1
    safe_low, safe_high = sorted((sign * low, sign * high))
    verdict = "CONFIRMED" if safe_low > margin else ("REFUTED" if safe_high < margin else "INCONCLUSIVE")
    p = float(reference.sf((sign * estimate - margin) / se)) if se > 0 else float(sign * estimate <= margin)
    return NonInferiority(verdict, margin, margin_type, low, high, p)
