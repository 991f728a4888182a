"""Stage 7: every preregistered tolerance, contract, budget and threshold becomes one check with a verdict
(CONFIRMED within, REFUTED breached, INCONCLUSIVE when the interval straddles the tolerance) and one row of
the standard `results` scrap (impactbook.results.ResultRow), so the usual decision and gate apply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .metrics import PairedDelta


@dataclass(frozen=True)
class Check:
    id: str
    kind: str  # tolerance, contract, latency, memory, drift, failure
    verdict: str
    observed: float | None
    limit: float | None
    method: str
    low: float | None = None
    high: float | None = None
    level: float | None = None
    direction: str | None = None
    note: str | None = None

    def row(self) -> dict[str, Any]:
        return {"metric": self.id, "role": "guardrail", "kind": f"pipeline_{self.kind}", "direction": self.direction,
                "method": self.method, "level": self.level, "difference": self.observed,
                "difference_low": self.low, "difference_high": self.high, "tolerance": self.limit,
                "verdict": self.verdict, "note": self.note}


def harm_verdict(delta: PairedDelta, direction: str, tolerance: float) -> str:
    """A harmful change is a decrease of an increase-is-better metric (and vice versa); within tolerance
    when the whole interval of the harm is at most `tolerance` (a non-inferiority test by interval,
    Wellek 2010, *Testing Statistical Hypotheses of Equivalence and Noninferiority*, ch. 2)."""
    sign = -1.0 if direction == "increase" else 1.0
    low, high = sorted([sign * delta.difference_low, sign * delta.difference_high])
    if high <= tolerance:
        return "CONFIRMED"
    if low > tolerance:
        return "REFUTED"
    return "INCONCLUSIVE"


def tolerance_check(check_id: str, delta: PairedDelta, direction: str, tolerance: float, note: str | None = None) -> Check:
    return Check(check_id, "tolerance", harm_verdict(delta, direction, tolerance), delta.difference, tolerance,
                 delta.method, delta.difference_low, delta.difference_high, delta.level, direction, note)


def limit_check(check_id: str, kind: str, observed: float, limit: float, method: str, note: str | None = None) -> Check:
    """A measured figure against a ceiling (latency, memory, drift): no interval, so no INCONCLUSIVE."""
    return Check(check_id, kind, "CONFIRMED" if observed <= limit else "REFUTED", observed, limit, method,
                 direction="decrease", note=note)


def worst(verdicts: list[str]) -> str:
    """A perturbation checked at several magnitudes: the worst of its verdicts."""
    for verdict in ("REFUTED", "INCONCLUSIVE"):
        if verdict in verdicts:
            return verdict
    return "CONFIRMED"
