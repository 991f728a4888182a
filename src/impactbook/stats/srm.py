"""Sample-ratio mismatch: are the arms the sizes the plan said they would be?"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .distributions import chi2_sf


@dataclass(frozen=True)
class SampleRatioMismatch:
    method: str
    observed: dict[str, int]
    expected: dict[str, float]
    statistic: float
    p_value: float
    threshold: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mismatch": self.mismatch}


def srm_test(observed: dict[str, int], expected_split: dict[str, float], threshold: float = 0.001) -> SampleRatioMismatch:
    """Pearson chi-square goodness-of-fit of arm sizes against the planned split (Fabijan et al. 2019,
    "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD): sum (O - E)^2 / E with k - 1
    df, the arithmetic of scipy.stats.chisquare (power_divergence, lambda 1), which tests compare it with."""
    names = list(expected_split)
    total = sum(observed.get(n, 0) for n in names)
    expected = {n: total * expected_split[n] for n in names}
    statistic = sum((observed.get(n, 0) - expected[n]) ** 2 / expected[n] for n in names)
    return SampleRatioMismatch("Pearson chi-square goodness of fit", {n: int(observed.get(n, 0)) for n in names},
                               expected, float(statistic), chi2_sf(statistic, len(names) - 1), threshold)
