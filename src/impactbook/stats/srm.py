"""Sample-ratio mismatch: are the arms the sizes the plan said they would be?"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats as sps


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
    "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD)."""
    names = list(expected_split)
    total = sum(observed.get(n, 0) for n in names)
    expected = {n: total * expected_split[n] for n in names}
    result = sps.chisquare([observed.get(n, 0) for n in names], [expected[n] for n in names])
    return SampleRatioMismatch("Pearson chi-square goodness of fit", {n: int(observed.get(n, 0)) for n in names},
                               expected, float(result.statistic), float(result.pvalue), threshold)
