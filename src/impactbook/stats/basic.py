"""Two-sample effects from sufficient statistics, the SRM test, and the verdict rules.

Kept deliberately small (the full engine is a later issue); every method is named in its result.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from scipy import stats as sps


@dataclass(frozen=True)
class SampleMean:
    """n, sum and sum of squares: enough for a mean and its variance, and additive across segments."""

    n: int
    sum: float
    sum_squares: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "SampleMean":
        values = [float(v) for v in values]
        return cls(len(values), math.fsum(values), math.fsum(v * v for v in values))

    def __add__(self, other: "SampleMean") -> "SampleMean":
        return SampleMean(self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares)

    @property
    def mean(self) -> float:
        return self.sum / self.n

    @property
    def variance(self) -> float:
        """Unbiased sample variance (n - 1 in the denominator)."""
        return (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1)


@dataclass(frozen=True)
class Effect:
    method: str
    level: float
    control_n: int
    treatment_n: int
    control_mean: float
    treatment_mean: float
    difference: float
    difference_low: float
    difference_high: float
    relative: float
    relative_se: float
    relative_low: float
    relative_high: float
    statistic: float
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _relative(control: float, treatment: float, var_c_over_n: float, var_t_over_n: float) -> tuple[float, float]:
    """Relative lift t/c - 1 and its delta-method standard error (Deng, Knoblich, Lu 2018,
    "Applying the Delta Method in Metric Analytics", KDD; independent arms, no covariance term)."""
    relative = treatment / control - 1
    se = math.sqrt(var_t_over_n / control**2 + treatment**2 * var_c_over_n / control**4)
    return relative, se


def _effect(method: str, alpha: float, control: SampleMean, treatment: SampleMean, mc: float, mt: float,
            vc_n: float, vt_n: float, critical: float, statistic: float, p_value: float) -> Effect:
    difference = mt - mc
    se = math.sqrt(vc_n + vt_n)
    relative, relative_se = _relative(mc, mt, vc_n, vt_n)
    z = sps.norm.ppf(1 - alpha / 2)
    return Effect(method=method, level=1 - alpha, control_n=control.n, treatment_n=treatment.n, control_mean=mc,
                  treatment_mean=mt, difference=difference, difference_low=difference - critical * se,
                  difference_high=difference + critical * se, relative=relative, relative_se=relative_se,
                  relative_low=relative - z * relative_se, relative_high=relative + z * relative_se,
                  statistic=statistic, p_value=p_value)


def welch_difference(control: SampleMean, treatment: SampleMean, alpha: float = 0.05) -> Effect:
    """Difference in means with Welch's t test and Welch–Satterthwaite degrees of freedom
    (Welch 1947, Biometrika 34:28-35); same numbers as scipy.stats.ttest_ind(equal_var=False)."""
    vc_n, vt_n = control.variance / control.n, treatment.variance / treatment.n
    se = math.sqrt(vc_n + vt_n)
    df = (vc_n + vt_n) ** 2 / (vc_n**2 / (control.n - 1) + vt_n**2 / (treatment.n - 1))
    t = (treatment.mean - control.mean) / se
    p = 2 * sps.t.sf(abs(t), df)
    return _effect("Welch t test; relative lift by the delta method", alpha, control, treatment, control.mean,
                   treatment.mean, vc_n, vt_n, sps.t.ppf(1 - alpha / 2, df), t, p)


def proportion_difference(control: SampleMean, treatment: SampleMean, alpha: float = 0.05) -> Effect:
    """Difference in proportions, Wald z test with unpooled variance (Agresti 2013, Categorical Data
    Analysis, 3rd ed., §1.4); same as statsmodels test_proportions_2indep(method="wald")."""
    pc, pt = control.mean, treatment.mean
    vc_n, vt_n = pc * (1 - pc) / control.n, pt * (1 - pt) / treatment.n
    z = (pt - pc) / math.sqrt(vc_n + vt_n)
    p = 2 * sps.norm.sf(abs(z))
    return _effect("Wald z test for two proportions; relative lift by the delta method", alpha, control, treatment,
                   pc, pt, vc_n, vt_n, sps.norm.ppf(1 - alpha / 2), z, p)


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


def superiority_verdict(effect: Effect, direction: str, alpha: float) -> str:
    """Two-sided test at alpha: significant in the good direction confirms, in the bad direction refutes."""
    if effect.p_value >= alpha:
        return "INCONCLUSIVE"
    good = effect.difference > 0 if direction == "increase" else effect.difference < 0
    return "CONFIRMED" if good else "REFUTED"


def non_inferiority_verdict(effect: Effect, direction: str, margin: float, alpha: float) -> tuple[str, float, float]:
    """One-sided non-inferiority at alpha on the relative lift, via the (1 - 2 alpha) interval
    (Schuirmann 1987; Wellek 2010, Testing Statistical Hypotheses of Equivalence and Noninferiority).

    `margin` is the largest tolerated relative harm, negative (e.g. -0.02). Returns the verdict
    and the interval used: CONFIRMED when the whole interval lies above the margin (non-inferior),
    REFUTED when it lies wholly beyond it (inferior), otherwise INCONCLUSIVE.
    """
    z = sps.norm.ppf(1 - alpha)
    sign = 1 if direction == "increase" else -1
    low, high = sorted((sign * (effect.relative - z * effect.relative_se), sign * (effect.relative + z * effect.relative_se)))
    if low > margin:
        verdict = "CONFIRMED"
    elif high < margin:
        verdict = "REFUTED"
    else:
        verdict = "INCONCLUSIVE"
    return verdict, effect.relative - z * effect.relative_se, effect.relative + z * effect.relative_se
