"""Two-sample effects: absolute difference and relative lift, each with an interval and p-values.

All tests consume two `ArmEstimate`s (see statistics.py) and return an `Effect` that names its
method and interval level.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .distributions import Reference
from .statistics import ArmEstimate, RatioStatistic, RegressionStatistic, SampleMean

Distribution = Literal["t", "z"]


class NotEstimable(ValueError):
    """The data cannot give this effect (too few units, no variation, a zero denominator): the metric ends
    INCONCLUSIVE with this reason, and the rest of the analysis goes on."""


@dataclass(frozen=True)
class Effect:
    method: str
    level: float
    control_n: int
    treatment_n: int
    control_mean: float
    treatment_mean: float
    difference: float
    standard_error: float
    difference_low: float
    difference_high: float
    relative: float | None
    relative_se: float | None
    relative_low: float | None
    relative_high: float | None
    statistic: float
    p_value: float
    p_value_greater: float
    p_value_less: float
    df: float | None = None
    variance_reduction: float | None = None
    theta: float | None = None
    note: str | None = None
    control_variance_of_mean: float | None = None  # the control's share of the variance (shared across arms)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _welch_df(control: ArmEstimate, treatment: ArmEstimate) -> float:
    vc, vt = control.variance_of_mean, treatment.variance_of_mean
    return (vc + vt) ** 2 / (vc**2 / (control.n - 1) + vt**2 / (treatment.n - 1))


def reference_distribution(effect: Effect):
    """The distribution an effect's test uses: Student's t with its Welch df, else the normal."""
    return Reference(effect.df)


def relative_lift(control: ArmEstimate, treatment: ArmEstimate) -> tuple[float, float]:
    """t/c - 1 and its delta-method standard error for independent arms (Deng, Knoblich, Lu 2018,
    "Applying the Delta Method in Metric Analytics", KDD, section 3.3). Undefined when c is 0."""
    c, t = control.mean, treatment.mean
    if c == 0:
        raise NotEstimable("the control mean is 0, so a relative effect is undefined")
    se = math.sqrt(treatment.variance_of_mean / c**2 + t**2 * control.variance_of_mean / c**4)
    return t / c - 1, se


def compare(control: ArmEstimate, treatment: ArmEstimate, alpha: float = 0.05, distribution: Distribution = "t",
            method: str = "", variance_reduction: float | None = None, theta: float | None = None) -> Effect:
    """Treatment minus control. distribution "t" uses Welch–Satterthwaite degrees of freedom
    (Welch 1947, Biometrika 34:28-35); "z" the normal approximation. The relative effect's interval uses
    the same reference distribution as the absolute one (with t, its coverage holds in small samples).
    Raises NotEstimable when an arm has fewer than 2 units or neither arm varies."""
    if min(control.n, treatment.n) < 2:
        raise NotEstimable(f"too few units to estimate (control {control.n}, treatment {treatment.n}; at least 2 each)")
    difference = treatment.mean - control.mean
    se = math.sqrt(control.variance_of_mean + treatment.variance_of_mean)
    if not se > 0:
        raise NotEstimable(f"no variation in either arm (control mean {control.mean:g}, treatment mean "
                           f"{treatment.mean:g}), so there is no standard error")
    df = _welch_df(control, treatment) if distribution == "t" else None
    reference = Reference(df)
    statistic = difference / se
    critical = reference.ppf(1 - alpha / 2)
    note = None
    try:
        relative, relative_se = relative_lift(control, treatment)
        relative_low, relative_high = relative - critical * relative_se, relative + critical * relative_se
    except NotEstimable as undefined:
        relative = relative_se = relative_low = relative_high = None
        note = str(undefined)
    return Effect(method=method, level=1 - alpha, control_n=control.n, treatment_n=treatment.n,
                  control_mean=control.mean, treatment_mean=treatment.mean, difference=difference,
                  standard_error=se, difference_low=difference - critical * se, difference_high=difference + critical * se,
                  relative=relative, relative_se=relative_se, relative_low=relative_low,
                  relative_high=relative_high, statistic=statistic, note=note,
                  control_variance_of_mean=control.variance_of_mean,
                  p_value=float(2 * reference.sf(abs(statistic))), p_value_greater=float(reference.sf(statistic)),
                  p_value_less=float(reference.cdf(statistic)), df=df, variance_reduction=variance_reduction,
                  theta=theta)


def welch_difference(control: SampleMean, treatment: SampleMean, alpha: float = 0.05) -> Effect:
    """Difference in means, Welch's t test; the same numbers as scipy.stats.ttest_ind(equal_var=False)."""
    return compare(control.estimate(), treatment.estimate(), alpha, "t",
                   "Welch t test; relative lift by the delta method")


def proportion_difference(control: SampleMean, treatment: SampleMean, alpha: float = 0.05) -> Effect:
    """Difference in proportions, Wald z test with unpooled variance (Agresti 2013, Categorical Data
    Analysis, 3rd ed., section 1.4); the same as statsmodels test_proportions_2indep(method="wald")."""
    return compare(control.proportion_estimate(), treatment.proportion_estimate(), alpha, "z",
                   "Wald z test for two proportions; relative lift by the delta method")


def ratio_difference(control: RatioStatistic, treatment: RatioStatistic, alpha: float = 0.05) -> Effect:
    """Difference of ratio metrics with delta-method variances (Deng, Knoblich, Lu 2018), z test."""
    for arm, statistic in (("control", control), ("treatment", treatment)):
        if statistic.n and statistic.denominator.sum == 0:
            raise NotEstimable(f"the denominator sums to 0 in the {arm} arm, so the ratio is undefined")
    return compare(control.estimate(), treatment.estimate(), alpha, "z",
                   "ratio metric, delta-method variance, z test; relative lift by the delta method")


def cuped_arms(control: RegressionStatistic, treatment: RegressionStatistic
               ) -> tuple[tuple[ArmEstimate, ArmEstimate], tuple[ArmEstimate, ArmEstimate], float]:
    """Each arm's CUPED-adjusted and raw estimate, and theta (see cuped_difference)."""
    sxx = control.centred_pre_squares + treatment.centred_pre_squares
    theta = (control.centred_cross_products + treatment.centred_cross_products) / sxx if sxx > 0 else 0.0
    pooled_pre = (control.pre.sum + treatment.pre.sum) / (control.n + treatment.n)

    def adjusted(arm: RegressionStatistic) -> tuple[ArmEstimate, ArmEstimate]:
        raw = arm.post.estimate()
        variance = raw.variance - 2 * theta * arm.covariance + theta**2 * arm.pre.variance
        return ArmEstimate(arm.n, raw.mean - theta * (arm.pre.mean - pooled_pre), max(variance, 0.0)), raw

    return adjusted(control), adjusted(treatment), theta


def cuped_difference(control: RegressionStatistic, treatment: RegressionStatistic, alpha: float = 0.05) -> Effect:
    """CUPED (Deng, Xu, Kohavi, Walker 2013, "Improving the Sensitivity of Online Controlled Experiments
    by Utilizing Pre-Experiment Data", WSDM) with theta the pooled within-arm regression slope, so the
    adjusted difference equals the OLS coefficient on the treatment indicator in y ~ 1 + T + x.

    Each arm's mean is adjusted by theta (x_bar_arm - x_bar_pooled); its variance is
    var(y) - 2 theta cov(x, y) + theta^2 var(x). Reports the variance reduction achieved.
    """
    (adj_c, raw_c), (adj_t, raw_t), theta = cuped_arms(control, treatment)
    before = raw_c.variance_of_mean + raw_t.variance_of_mean
    after = adj_c.variance_of_mean + adj_t.variance_of_mean
    return compare(adj_c, adj_t, alpha, "z",
                   "CUPED regression adjustment (pooled within-arm theta), z test; relative lift by the delta method",
                   variance_reduction=1 - after / before if before > 0 else 0.0, theta=theta)
