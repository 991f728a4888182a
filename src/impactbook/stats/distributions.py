"""The normal, Student's t and chi-square tails through scipy.special: the very functions scipy.stats's own
distributions evaluate (ndtr, ndtri, stdtr, stdtrit, chdtrc; scipy/stats/_continuous_distns.py), so the
numbers are the same, without importing scipy.stats, which costs ~0.5 s in every kernel that runs an A/B
template. Tests compare each with scipy.stats."""

from __future__ import annotations

from dataclasses import dataclass

from scipy import special


@dataclass(frozen=True)
class Reference:
    """A test's reference distribution: Student's t with `df` degrees of freedom, or the standard normal when
    `df` is None; the methods of a frozen scipy.stats distribution that the tests here use."""

    df: float | None = None

    def cdf(self, x):
        return special.ndtr(x) if self.df is None else special.stdtr(self.df, x)

    def sf(self, x):
        return self.cdf(-x)

    def ppf(self, q):
        return special.ndtri(q) if self.df is None else special.stdtrit(self.df, q)


NORMAL = Reference()


def chi2_sf(x: float, df: float) -> float:
    """P(X >= x) for X ~ chi-square(df), as scipy.stats.chi2.sf."""
    return float(special.chdtrc(df, x))
