"""stats/synthetic_did.py: the weights solve the paper's regularised problems exactly (checked against SLSQP
and the KKT conditions), Proposition 99 reproduces Arkhangelsky et al. (2021) Table 1 and the authors'
estimator as ported by synthdid-py, the placebo variance is Algorithm 4 over every placebo, and on panels with
a known effect the estimate is unbiased where the synthetic control is not and the interval covers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from impactbook.stats.synthetic_did import (SyntheticDidWeights, placebo_sets, regularized_simplex_weights,
                                            synthetic_did, synthetic_did_weights)
from impactbook.stats.synthetic_control import synthetic_control_panel


def _slsqp(donors, target, ridge):
    """The same problem by a general-purpose solver: intercept free, weights on the simplex."""
    k = donors.shape[1]

    def loss(x):
        return np.sum(np.square(x[0] + donors @ x[1:] - target)) + ridge * np.sum(np.square(x[1:]))

    start = np.concatenate([[0.0], np.full(k, 1 / k)])
    fit = minimize(loss, start, method="SLSQP", bounds=[(None, None)] + [(0, 1)] * k,
                   constraints=[{"type": "eq", "fun": lambda x: x[1:].sum() - 1}],
                   options={"ftol": 1e-15, "maxiter": 2000})
    return fit.x[1:], fit.x[0], loss


@pytest.mark.parametrize("seed, ridge", [(1, 0.0), (2, 0.5), (3, 25.0)])
def test_weights_solve_the_regularised_problem_exactly(seed, ridge):
    rng = np.random.default_rng(seed)
    donors = rng.normal(size=(15, 12)).cumsum(axis=0)
    target = donors[:, :3].mean(axis=1) + 2.0 + rng.normal(0, 0.3, 15)  # parallel up to a level shift
    weights, intercept = regularized_simplex_weights(donors, target, ridge)
    reference, reference_intercept, loss = _slsqp(donors, target, ridge)
    ours = loss(np.concatenate([[intercept], weights]))
    assert ours <= loss(np.concatenate([[reference_intercept], reference])) + 1e-9
    assert np.abs(weights - reference).max() < 1e-5 and weights.min() >= 0 and weights.sum() == pytest.approx(1, abs=1e-12)
    # KKT: the gradient is equal on the support and no smaller off it
    residual = intercept + donors @ weights - target
    assert abs(residual.sum()) < 1e-9  # the intercept is optimal
    gradient = 2 * donors.T @ residual + 2 * ridge * weights
    support = weights > 1e-10
    assert np.ptp(gradient[support]) < 1e-7 * max(1.0, np.abs(gradient).max())
    assert gradient[~support].min(initial=np.inf) >= gradient[support].mean() - 1e-7


@pytest.fixture(scope="module")
def prop99():
    from synthdid import load_california_prop99
    from synthdid.utils import panel_matrices

    setup = panel_matrices(load_california_prop99(), unit="State", time="Year", outcome="PacksPerCapita",
                           treatment="treated")
    return setup, setup.Y.T  # periods x units, California last


def test_proposition_99_reproduces_table_1(prop99):
    """Arkhangelsky et al. (2021), Table 1, California: SDID -15.6, DiD -27.3 packs per capita."""
    setup, outcomes = prop99
    treated = [outcomes.shape[1] - 1]
    result = synthetic_did(outcomes, treated, setup.T0)
    assert round(result.estimate, 1) == -15.6
    donors, post = setup.N0, outcomes.shape[0] - setup.T0
    uniform = SyntheticDidWeights(np.full(donors, 1 / donors), 0.0, np.full(setup.T0, 1 / setup.T0), 1.0, 0.0)
    did = uniform.estimate(outcomes, treated, setup.T0)
    assert round(did, 1) == -27.3
    direct = outcomes[setup.T0:, -1].mean() - outcomes[:setup.T0, -1].mean() - (
        outcomes[setup.T0:, :-1].mean() - outcomes[:setup.T0, :-1].mean())
    assert did == pytest.approx(direct, abs=1e-9)
    assert post == 12 and result.placebo_draws == donors  # every donor once as the placebo
    # the time weights sit on the last pre-treatment years, as in the paper's Figure 1
    assert set(np.flatnonzero(result.time_weights > 1e-6)) == {16, 17, 18}


def test_proposition_99_matches_the_authors_estimator(prop99):
    """synthdid-py ports the authors' R package: Frank-Wolfe with a sparsifying restart (their default, whose
    answer the paper prints) and without it, run longer, which approaches our exact solution (Frank-Wolfe
    converges sublinearly: 20,000 steps leave weights 2e-4 off). The noise level and ridge are theirs."""
    from synthdid import did_estimate, synthdid_estimate

    setup, outcomes = prop99
    ours = synthetic_did_weights(outcomes, [outcomes.shape[1] - 1], setup.T0)
    tau = ours.estimate(outcomes, [outcomes.shape[1] - 1], setup.T0)
    default = synthdid_estimate(setup.Y, setup.N0, setup.T0)
    assert ours.unit_ridge == pytest.approx(default.opts["zeta_omega"], rel=1e-12)
    assert ours.noise_level * 1e-6 == pytest.approx(default.opts["zeta_lambda"], rel=1e-12)
    assert tau == pytest.approx(float(default), abs=0.01)
    converged = synthdid_estimate(setup.Y, setup.N0, setup.T0, sparsify=None, max_iter=20_000, min_decrease=1e-14)
    assert tau == pytest.approx(float(converged), abs=1e-3)
    assert np.abs(ours.unit_weights - converged.weights.omega).max() < 3e-4
    assert np.abs(ours.time_weights - converged.weights.lambda_).max() < 1e-4
    assert float(did_estimate(setup.Y, setup.N0, setup.T0)) == pytest.approx(-27.349111, abs=1e-6)


def test_the_placebo_variance_is_algorithm_4_over_every_placebo(prop99):
    """Recomputed from scratch: each donor in turn relabelled treated on the donors-only panel, the
    variance their mean squared deviation; the interval and p-value are normal."""
    from scipy.stats import norm

    setup, outcomes = prop99
    result = synthetic_did(outcomes, [outcomes.shape[1] - 1], setup.T0, level=0.9)
    donors = outcomes[:, :-1]
    taus = [synthetic_did_weights(donors, [j], setup.T0).estimate(donors, [j], setup.T0) for j in range(setup.N0)]
    assert result.placebo_estimates == pytest.approx(taus, abs=1e-12)
    se = np.std(taus)
    assert result.standard_error == pytest.approx(se, rel=1e-12)
    assert result.interval_low == pytest.approx(result.estimate - norm.ppf(0.95) * se, rel=1e-12)
    assert result.p_value == pytest.approx(2 * norm.sf(abs(result.estimate) / se), rel=1e-12)
    assert 5 < result.standard_error < 15  # the paper's placebo SE (sampled draws) is 9.3-10 on repeated runs


def test_placebo_sets_enumerate_when_few_and_sample_reproducibly_when_many():
    assert placebo_sets(5, 2, 100, 0) == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]
    drawn = placebo_sets(40, 3, 50, 7)
    assert len(drawn) == 50 and drawn == placebo_sets(40, 3, 50, 7) and all(len(set(s)) == 3 for s in drawn)


def _factor_panel(rng, effect, shift, donors=30, pre=20, post=6, inside=True):
    """Two latent factors with unit loadings; the treated unit (column 0) loads like the donors' first third
    (`inside` their hull) or is one more draw like them (exchangeable, as the placebo variance assumes), and
    sits `shift` above them; `effect` is added after the intervention."""
    time = np.arange(pre + post)
    factors = np.column_stack([np.sin(time / 3.0), time / 10.0])
    loadings = rng.normal(1, 0.5, size=(2, donors + 1))
    if inside:
        loadings[:, 0] = loadings[:, 1:11].mean(axis=1)
    outcomes = factors @ loadings + rng.normal(0, 0.2, (pre + post, donors + 1))
    outcomes[:, 0] += shift
    outcomes[pre:, 0] += effect
    return outcomes, pre


def test_a_level_shift_does_not_bias_sdid_but_biases_the_synthetic_control():
    rng = np.random.default_rng(11)
    sdid, sc = [], []
    for _ in range(40):
        outcomes, pre = _factor_panel(rng, effect=1.0, shift=5.0)
        sdid.append(synthetic_did(outcomes, [0], pre).estimate)
        sc.append(synthetic_control_panel(outcomes, [0], pre, leave_one_out=False).estimate)
    assert abs(np.mean(sdid) - 1.0) < 0.1  # the intercept absorbs the level
    assert np.mean(sc) > 2.0  # the treated unit lies outside the donors' hull: convex weights cannot reach it


def test_the_interval_covers_a_known_effect_at_about_the_nominal_rate():
    rng = np.random.default_rng(12)
    covered, draws = 0, 300
    for _ in range(draws):
        outcomes, pre = _factor_panel(rng, effect=0.5, shift=0.0, donors=20, inside=False)
        result = synthetic_did(outcomes, [0], pre, level=0.9)
        covered += result.interval_low <= 0.5 <= result.interval_high
    # 90% nominal; 300 draws give a binomial sd of 1.7 points
    assert 0.84 <= covered / draws <= 0.96, covered / draws


def test_too_few_donors_or_pre_periods_are_refused_and_no_placebo_leaves_no_interval():
    with pytest.raises(ValueError, match="at least two donors and two pre-periods"):
        synthetic_did_weights(np.ones((5, 2)), [0], 3)
    with pytest.raises(ValueError, match="at least two donors and two pre-periods"):
        synthetic_did_weights(np.random.default_rng(0).normal(size=(5, 4)), [0], 1)
    result = synthetic_did(np.random.default_rng(0).normal(size=(8, 3)), [0], 5)
    assert result.standard_error is None and result.interval_low is None and result.p_value is None
