"""Sufficient statistics: what SQL can sum per arm and segment, so Python never sees a row.

Each statistic adds with `+` across segments and yields an `ArmEstimate` (mean and per-unit
variance, so that the variance of the mean is variance / n) for the tests in effects.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class ArmEstimate:
    """A point estimate for one arm: n units, the mean, and the per-unit variance behind it."""

    n: int
    mean: float
    variance: float

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.n


@dataclass(frozen=True)
class SampleMean:
    """n, sum and sum of squares of a per-unit metric (a mean, or a proportion of 0/1 values)."""

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
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Unbiased sample variance (n - 1 in the denominator); nan below 2 units (the tests refuse those)."""
        if self.n < 2:
            return math.nan
        return max(self.sum_squares - self.sum * self.sum / self.n, 0.0) / (self.n - 1)

    def estimate(self) -> ArmEstimate:
        return ArmEstimate(self.n, self.mean, self.variance)

    def proportion_estimate(self) -> ArmEstimate:
        """Bernoulli variance p(1 - p), the maximum-likelihood form the Wald test uses."""
        p = self.mean
        return ArmEstimate(self.n, p, p * (1 - p))


@dataclass(frozen=True)
class RatioStatistic:
    """A ratio metric whose unit differs from the randomization unit (revenue per session):
    per randomization unit a numerator and a denominator, and the sum of their products."""

    numerator: SampleMean
    denominator: SampleMean
    sum_products: float

    def __add__(self, other: "RatioStatistic") -> "RatioStatistic":
        return RatioStatistic(self.numerator + other.numerator, self.denominator + other.denominator,
                              self.sum_products + other.sum_products)

    @property
    def n(self) -> int:
        return self.numerator.n

    @property
    def covariance(self) -> float:
        n = self.n
        return (self.sum_products - self.numerator.sum * self.denominator.sum / n) / (n - 1) if n > 1 else math.nan

    def estimate(self) -> ArmEstimate:
        """sum(num) / sum(den), with the delta-method variance (Deng, Knoblich, Lu 2018, "Applying the
        Delta Method in Metric Analytics", KDD, eq. 2): var(R) ~ (s_n^2 - 2 R s_nd + R^2 s_d^2) / (n mu_d^2)."""
        ratio = self.numerator.sum / self.denominator.sum if self.denominator.sum else math.nan
        mu_d = self.denominator.mean
        per_unit = (self.numerator.variance - 2 * ratio * self.covariance
                    + ratio**2 * self.denominator.variance) / mu_d**2
        return ArmEstimate(self.n, ratio, max(per_unit, 0.0))


@dataclass(frozen=True)
class RegressionStatistic:
    """A metric with a pre-period covariate: sums of the metric, the covariate and their product,
    enough for CUPED / regression adjustment."""

    post: SampleMean
    pre: SampleMean
    sum_products: float

    def __add__(self, other: "RegressionStatistic") -> "RegressionStatistic":
        return RegressionStatistic(self.post + other.post, self.pre + other.pre,
                                   self.sum_products + other.sum_products)

    @property
    def n(self) -> int:
        return self.post.n

    @property
    def centred_cross_products(self) -> float:
        return self.sum_products - self.post.sum * self.pre.sum / self.n

    @property
    def centred_pre_squares(self) -> float:
        return self.pre.sum_squares - self.pre.sum**2 / self.n

    @property
    def covariance(self) -> float:
        return self.centred_cross_products / (self.n - 1) if self.n > 1 else math.nan
