"""Real data: LaLonde's NSW job-training experiment (the Dehejia & Wahba 1999 subsample, 185 treated, 260
randomized controls) and the same treated men against the CPS-1 comparison group (15,992 men), from the
`causaldata` package (nsw_mixtape, cps_mixtape). The experiment gives the benchmark ATT on 1978 earnings;
the naive observational difference is far off and negative; weighting and matching on Dehejia & Wahba's
covariates move it back toward the benchmark. Figures recorded in docs/quasi_experimental.md."""

from __future__ import annotations

import pytest

causaldata = pytest.importorskip("causaldata")  # a dev dependency (pyproject [dev]); absent: not a broken feature

from impactbook.stats.balance import balance_table  # noqa: E402
from impactbook.stats.matching import match_att  # noqa: E402
from impactbook.stats.observational import ipw, propensity_score  # noqa: E402

COVARIATES = ["age", "age2", "educ", "educ2", "black", "hisp", "marr", "nodegree", "re74", "re75", "u74", "u75",
              "re74_2", "re75_2"]  # Dehejia & Wahba (1999)'s specification for CPS, with squares


@pytest.fixture(scope="module")
def lalonde():
    import pandas as pd

    experiment = causaldata.nsw_mixtape.load_pandas().data
    frame = pd.concat([experiment[experiment.treat == 1], causaldata.cps_mixtape.load_pandas().data], ignore_index=True)
    frame = frame.assign(u74=(frame.re74 == 0) * 1.0, u75=(frame.re75 == 0) * 1.0, age2=frame.age ** 2.0,
                         educ2=frame.educ ** 2.0, re74_2=frame.re74 ** 2.0, re75_2=frame.re75 ** 2.0)
    x = frame[COVARIATES].to_numpy(float)
    return experiment, frame.treat.to_numpy(float), frame.re78.to_numpy(float), x / x.std(axis=0)


def test_the_experiment_and_the_naive_comparison(lalonde):
    experiment, treated, earnings, _ = lalonde
    benchmark = experiment[experiment.treat == 1].re78.mean() - experiment[experiment.treat == 0].re78.mean()
    assert benchmark == pytest.approx(1794.34, abs=0.01)  # Dehejia & Wahba (1999), Table 3: $1,794
    naive = earnings[treated == 1].mean() - earnings[treated == 0].mean()
    assert naive == pytest.approx(-8497.52, abs=0.01)  # Dehejia & Wahba (1999), Table 3, CPS-1: -$8,498


def test_weighting_and_matching_move_the_estimate_to_the_experimental_one(lalonde):
    _, treated, earnings, x = lalonde
    score = propensity_score(treated, x)
    weighted = ipw(earnings, score, "ATT", trim=0.01)
    matched = match_att(earnings, treated, score.logit, caliper=0.2)
    for estimate in (ipw(earnings, score, "ATT"), weighted, matched):
        assert estimate.low < 1794.34 < estimate.high, estimate  # the benchmark inside each interval
        assert abs(estimate.estimate - 1794.34) < 1000 < abs(-8497.52 - 1794.34)
    assert weighted.trimmed_units > 10_000  # most CPS men look nothing like the trainees
    rows = balance_table(x, COVARIATES, treated, matched.unit_weights(treated))
    assert max(abs(r.smd_before) for r in rows) > 1.0  # 2.43 (black) before
    assert max(abs(r.smd_after) for r in rows) < 0.25  # 0.13 (educ) after matching
