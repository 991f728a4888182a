"""stats/distributions.py: the tails scipy.special gives equal scipy.stats's own, and importing the A/B path
does not import scipy.stats (the ~0.5 s it saves in every kernel)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from impactbook.stats.distributions import NORMAL, Reference, chi2_sf

POINTS = [-40.0, -8.5, -3.0, -1.96, -0.3, 0.0, 1e-9, 0.7, 2.5, 6.0, 38.0]
LEVELS = [1e-12, 1e-6, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999, 1 - 1e-9]


@pytest.mark.parametrize("df", [None, 1.0, 2.5, 17.3, 1_000.0, 2.4e6])
def test_the_reference_distribution_equals_scipy_stats(df):
    mine, theirs = Reference(df), (sps.norm() if df is None else sps.t(df))
    for x in POINTS:
        assert mine.cdf(x) == pytest.approx(theirs.cdf(x), rel=1e-12, abs=1e-300)
        assert mine.sf(x) == pytest.approx(theirs.sf(x), rel=1e-12, abs=1e-300)
    for q in LEVELS:
        assert mine.ppf(q) == pytest.approx(theirs.ppf(q), rel=1e-12)
    assert np.allclose(mine.cdf(np.array(POINTS)), theirs.cdf(POINTS), rtol=1e-12, atol=0)
    assert NORMAL == Reference()


@pytest.mark.parametrize("df", [1, 2, 5, 40])
def test_the_chi_square_tail_equals_scipy_stats(df):
    for x in [0.0, 1e-6, 0.5, 3.84, 10.0, 80.0, 400.0]:
        assert chi2_sf(x, df) == pytest.approx(sps.chi2.sf(x, df), rel=1e-12, abs=1e-300)


def test_the_ab_path_does_not_import_scipy_stats_or_statsmodels():
    code = ("import sys, impactbook.notebook, impactbook.stats, impactbook.designs.rollout; "
            "print(sorted(m for m in ('scipy.stats', 'statsmodels', 'scipy.optimize') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
