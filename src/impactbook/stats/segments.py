"""Heterogeneity of an effect across segments."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from .distributions import chi2_sf


@dataclass(frozen=True)
class Heterogeneity:
    method: str
    q: float
    df: int
    p_value: float
    i_squared: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cochran_q(estimates: Sequence[float], standard_errors: Sequence[float]) -> Heterogeneity:
    """Cochran's Q test of equal effects (Cochran 1954, Biometrics 10:101-129): inverse-variance
    weights, Q ~ chi-square with k - 1 df under homogeneity; I^2 = max(0, (Q - df) / Q)
    (Higgins & Thompson 2002, Stat. Med. 21:1539-1558)."""
    weights = [1 / se**2 for se in standard_errors]
    pooled = sum(w * e for w, e in zip(weights, estimates)) / sum(weights)
    q = sum(w * (e - pooled) ** 2 for w, e in zip(weights, estimates))
    df = len(estimates) - 1
    return Heterogeneity("Cochran's Q (inverse-variance weights)", float(q), df,
                         chi2_sf(q, df) if df > 0 else 1.0, max(0.0, (q - df) / q) if q > 0 else 0.0)
