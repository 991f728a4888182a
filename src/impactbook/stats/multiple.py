"""Multiple-testing correction across a preregistered family (statsmodels' multipletests)."""

from __future__ import annotations

from typing import Literal, Sequence

from statsmodels.stats.multitest import multipletests

Correction = Literal["holm", "bh", "none"]
_METHODS = {"holm": "holm", "bh": "fdr_bh"}


def adjust_p_values(p_values: Sequence[float], method: Correction) -> list[float]:
    """Holm (1979, Scand. J. Statist. 6:65-70) step-down FWER, or Benjamini-Hochberg (1995, JRSS B
    57:289-300) FDR adjusted p-values; "none" returns them unchanged."""
    if method == "none" or len(p_values) == 0:
        return [float(p) for p in p_values]
    return [float(p) for p in multipletests(list(p_values), method=_METHODS[method])[1]]
