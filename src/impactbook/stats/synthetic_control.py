"""Synthetic control (Abadie, Diamond & Hainmueller 2010, JASA 105:493-505): the treated unit's
counterfactual is a convex combination of donors fitted on pre-period outcomes (or on predictors);
inference by in-space placebos ranked on the post/pre RMSPE ratio (ADH 2010, sec. 2.4 and 3.3), an
interval by inverting the placebo test under a constant additive effect (Firpo & Possebom 2018,
J. Causal Inference 6(2); Abadie 2021, JEL 59(2), sec. 7), several treated units averaged and their
placebos drawn as averages of as many donors (Cavallo, Galiani, Noy & Pantano 2013, REStat 95(5))."""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy.optimize import nnls


def simplex_weights(treated: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """argmin_w ||treated - donors @ w||^2 subject to w >= 0, sum(w) = 1: Lawson-Hanson active-set NNLS
    (Lawson & Hanson 1974, ch. 23) with the sum-to-one constraint as a heavily weighted extra row
    (the weighting method for equality constraints, Lawson & Hanson 1974, ch. 22), then refined by an
    active-set iteration with sum(w) = 1 exact (the heavy row only approximates it) to the KKT point."""
    scale = 1e4 * max(float(np.abs(donors).max()), 1.0)
    design = np.vstack([donors, np.full((1, donors.shape[1]), scale)])
    target = np.append(treated, scale)
    weights, _ = nnls(design, target, maxiter=50 * donors.shape[1])
    weights = weights / weights.sum()
    return _polished(treated, donors, weights)


def _on_support(treated: np.ndarray, donors: np.ndarray, support: list[int]) -> np.ndarray:
    """Least squares on the support with sum(w) = 1 eliminated (w_ref = 1 - sum of the others)."""
    exact = np.zeros(donors.shape[1])
    reference, rest = support[0], support[1:]
    if not rest:
        exact[reference] = 1.0
        return exact
    solution, *_ = np.linalg.lstsq(donors[:, rest] - donors[:, [reference]], treated - donors[:, reference],
                                   rcond=None)
    exact[rest], exact[reference] = solution, 1.0 - solution.sum()
    return exact


def _polished(treated: np.ndarray, donors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Lawson & Hanson's (1974, ch. 23) primal active-set iteration carried to the simplex, from the
    feasible NNLS point: solve on the support; where a weight would turn negative, step back to the
    boundary and drop it; else add the donor whose gradient undercuts the support's most, until the KKT
    conditions hold (gradient equal on the support, no smaller off it). Kept unless it fits worse."""
    current = weights.copy()
    support = [int(i) for i in np.flatnonzero(current > 0)]
    added = None
    for _ in range(3 * donors.shape[1]):
        target = _on_support(treated, donors, support)
        negative = [i for i in support if target[i] <= 0]
        if negative:
            step = min(current[i] / (current[i] - target[i]) for i in negative)
            current = current + step * (target - current)
            dropped = [i for i in support if current[i] <= 1e-15 or i in negative and step == 1.0]
            if step == 0 and dropped == [added]:
                break  # the donor just added cannot enter: optimal within rounding
            support = [i for i in support if i not in dropped]
            current[dropped] = 0.0
            current /= current.sum()
            continue
        current = target
        gradient = donors.T @ (donors @ current - treated)
        outside = np.setdiff1d(np.arange(donors.shape[1]), support)
        if outside.size == 0:
            break
        candidate = int(outside[np.argmin(gradient[outside])])
        if gradient[candidate] >= gradient[support].mean() - 1e-10 * max(1.0, float(np.abs(gradient).max())):
            break
        support.append(candidate)
        added = candidate
    loss = lambda w: float(np.sum(np.square(treated - donors @ w)))  # noqa: E731
    # at the optimum both losses agree to rounding; the refined point also satisfies sum(w) = 1 exactly
    return current if current.min() >= 0 and loss(current) <= loss(weights) * (1 + 1e-10) + 1e-300 else weights


def scaled_predictors(predictors: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Predictor rows (predictors x units) divided by their standard deviation across all units and
    multiplied by sqrt(v): then ||x1 - X0 w||^2 is ADH's (X1 - X0 W)' V (X1 - X0 W) with the scaling of
    their Synth package (Abadie, Diamond & Hainmueller 2011, J. Stat. Softw. 42(13)). Equal v by default."""
    predictors = np.asarray(predictors, float)
    spread = predictors.std(axis=1, ddof=1, keepdims=True)
    spread[spread == 0] = 1.0
    v = np.full(len(predictors), 1.0 / len(predictors)) if weights is None else np.asarray(weights, float)
    return predictors / spread * np.sqrt(v / v.sum())[:, None]


def rmspe(gaps: np.ndarray) -> float:
    """Root mean squared prediction error of a gap series."""
    return float(np.sqrt(np.mean(np.square(gaps))))


@dataclass(frozen=True)
class SyntheticControlFit:
    """One synthetic control: weights, gaps (treated - synthetic) and the pre/post RMSPE."""
    weights: np.ndarray
    gaps: np.ndarray
    pre_rmspe: float
    post_rmspe: float

    @property
    def rmspe_ratio(self) -> float:
        return self.post_rmspe / self.pre_rmspe if self.pre_rmspe > 0 else float("inf")


def fit_synthetic_control(treated: np.ndarray, donors: np.ndarray, pre_periods: int,
                          treated_fit: np.ndarray | None = None,
                          donors_fit: np.ndarray | None = None) -> SyntheticControlFit:
    """Weights fitted on the first `pre_periods` rows of the outcomes (`treated` (periods,), `donors`
    (periods x donors)), or on predictor rows `treated_fit` / `donors_fit` when given (ADH 2010, eq. 2)."""
    weights = simplex_weights(treated[:pre_periods] if treated_fit is None else treated_fit,
                              donors[:pre_periods] if donors_fit is None else donors_fit)
    gaps = treated - donors @ weights
    return SyntheticControlFit(weights, gaps, rmspe(gaps[:pre_periods]), rmspe(gaps[pre_periods:]))


def _placebo_chunk(outcomes: np.ndarray, fit_rows: np.ndarray | None, pre_periods: int,
                   units: list[int]) -> list[SyntheticControlFit]:
    fits = []
    for j in units:
        others = np.delete(np.arange(outcomes.shape[1]), j)
        fits.append(fit_synthetic_control(outcomes[:, j], outcomes[:, others], pre_periods,
                                          None if fit_rows is None else fit_rows[:, j],
                                          None if fit_rows is None else fit_rows[:, others]))
    return fits


def placebo_fits(donors: np.ndarray, pre_periods: int, donors_fit: np.ndarray | None = None,
                 workers: int = 1) -> list[SyntheticControlFit]:
    """In-space placebos: each donor in turn as treated, the other donors as its pool (ADH 2010, 3.3);
    `workers` > 1 splits them over processes (each fit is independent)."""
    units = list(range(donors.shape[1]))
    if workers <= 1 or len(units) < 2 * workers:
        return _placebo_chunk(donors, donors_fit, pre_periods, units)
    chunks = [units[k::workers] for k in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_placebo_chunk, *zip(*[(donors, donors_fit, pre_periods, c) for c in chunks])))
    by_unit = {j: fit for chunk, part in zip(chunks, parts) for j, fit in zip(chunk, part)}
    return [by_unit[j] for j in units]


@dataclass(frozen=True)
class SyntheticControlResult:
    """Average post-period gap with its placebo rank p-value, the interval from inverting the placebo
    test (None when too few placebos to bound it) and the diagnostics. `weights` are the donors' weights
    in the synthetic average of the treated units (their mean weights); `unit_weights` one row each."""
    method: str
    estimate: float
    counterfactual_level: float
    relative: float | None
    p_value: float
    level: float
    interval_low: float | None
    interval_high: float | None
    weights: np.ndarray
    gaps: np.ndarray
    pre_rmspe: float
    rmspe_ratio: float
    placebo_ratios: np.ndarray
    placebo_gaps: np.ndarray
    leave_one_out_estimates: dict[int, float]
    treated_pre_level: float = float("nan")
    placebo_statistics: np.ndarray = field(default_factory=lambda: np.empty(0))
    unit_weights: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    placebo_draws: int = 0
    pre_periods: int = 0

    def interval(self, level: float) -> tuple[float | None, float | None]:
        """The effects a constant additive shift does not reject at 1 - level in either tail."""
        return placebo_interval(self.estimate, self.pre_rmspe, self.placebo_statistics, level)


def _pre_rmspe(gaps: np.ndarray, pre_periods: int) -> float:
    """The pre-period RMSPE, 0 when it is at rounding level against the gap series (an exact fit)."""
    pre = rmspe(gaps[:pre_periods])
    return pre if pre > 1e-10 * float(np.abs(gaps).max()) else 0.0


def _signed(gaps: np.ndarray, pre_periods: int) -> float:
    pre, post = _pre_rmspe(gaps, pre_periods), float(np.mean(gaps[pre_periods:]))
    return post / pre if pre > 0 else math.copysign(math.inf, post)


def placebo_interval(estimate: float, pre_rmspe: float, placebo_statistics: np.ndarray,
                     level: float) -> tuple[float | None, float | None]:
    """Test inversion (Firpo & Possebom 2018): under a constant post-period effect d the treated unit's
    statistic is (mean gap - d) / pre RMSPE; d is kept when neither one-sided rank test rejects at
    (1 - level) / 2, i.e. (1 + #placebos beyond it) / (J + 1) > (1 - level) / 2. None when J is too small
    for that test ever to reject (the interval is unbounded)."""
    s = np.sort(np.asarray(placebo_statistics, float))
    count = s.size
    allowed = math.floor((1 - level) / 2 * (count + 1) - 1 + 1e-9)  # placebos allowed beyond a rejected d
    if allowed < 0 or count == 0:
        return None, None
    bound = lambda statistic: float(estimate - pre_rmspe * statistic) if math.isfinite(statistic) else None  # noqa: E731
    return bound(s[count - 1 - allowed]), bound(s[allowed])  # a placebo fitted exactly (RMSPE 0) leaves a side open


def _placebo_averages(placebos: list[SyntheticControlFit], group: int, draws: int,
                      seed: int) -> np.ndarray:
    """Placebo gap series for `group` treated units: each donor's own gaps (group 1), or the average over
    every set of `group` donors, a seeded sample of `draws` sets when there are more (Cavallo et al. 2013)."""
    gaps = np.array([p.gaps for p in placebos])
    if group == 1:
        return gaps
    total = math.comb(len(placebos), group)
    if total <= draws:
        sets = [list(c) for c in combinations(range(len(placebos)), group)]
    else:
        rng = np.random.default_rng(seed)
        sets = [rng.choice(len(placebos), group, replace=False) for _ in range(draws)]
    return np.array([gaps[list(s)].mean(axis=0) for s in sets])


def synthetic_control_panel(outcomes: np.ndarray, treated: list[int], pre_periods: int,
                            fit_rows: np.ndarray | None = None, level: float = 0.95, leave_one_out: bool = True,
                            workers: int = 1, draws: int = 5000, seed: int = 0) -> SyntheticControlResult:
    """Synthetic control on a periods x units outcome matrix with `treated` column indices (the other
    columns are donors); `fit_rows` (features x units) fits on predictors instead of pre-period outcomes.
    Several treated units are fitted one by one and their gaps averaged.

    Estimate = mean post-period gap; p-value = rank of the treated post/pre RMSPE ratio among the placebos',
    (1 + #placebos >= treated) / (placebos + 1) (ADH 2010); interval at `level` by test inversion (see
    `placebo_interval`). Leave-one-out re-estimates drop each donor with positive weight (ADH 2015, AJPS)."""
    outcomes = np.asarray(outcomes, float)
    donors_idx = [j for j in range(outcomes.shape[1]) if j not in set(treated)]
    donors = outcomes[:, donors_idx]
    donors_fit = None if fit_rows is None else np.asarray(fit_rows, float)[:, donors_idx]

    def fit_all(keep: np.ndarray) -> list[SyntheticControlFit]:
        return [fit_synthetic_control(outcomes[:, t], donors[:, keep], pre_periods,
                                      None if fit_rows is None else fit_rows[:, t],
                                      None if donors_fit is None else donors_fit[:, keep]) for t in treated]

    everyone = np.arange(len(donors_idx))
    fits = fit_all(everyone)
    gaps = np.mean([f.gaps for f in fits], axis=0)
    unit_weights = np.array([f.weights for f in fits])
    weights = unit_weights.mean(axis=0)
    placebos = placebo_fits(donors, pre_periods, donors_fit, workers)
    placebo_gaps = _placebo_averages(placebos, len(treated), draws, seed)
    ratio = _ratio(gaps, pre_periods)
    ratios = np.array([_ratio(g, pre_periods) for g in placebo_gaps])
    p_value = (1 + np.sum(ratios >= ratio)) / (ratios.size + 1)
    estimate = float(np.mean(gaps[pre_periods:]))
    synthetic = outcomes[:, treated].mean(axis=1) - gaps
    counterfactual = float(np.mean(synthetic[pre_periods:]))
    statistics = np.array([_signed(g, pre_periods) for g in placebo_gaps])
    pre = rmspe(gaps[:pre_periods])
    low, high = placebo_interval(estimate, pre, statistics, level)
    loo = {}
    if leave_one_out:
        for j in np.nonzero(weights > 1e-6)[0]:
            refits = fit_all(np.delete(everyone, j))
            loo[int(j)] = float(np.mean([f.gaps[pre_periods:] for f in refits]))
    return SyntheticControlResult(
        "synthetic control (Abadie, Diamond & Hainmueller 2010), placebo RMSPE-ratio rank p-value, "
        "interval by placebo test inversion (Firpo & Possebom 2018)",
        estimate, counterfactual, estimate / counterfactual if counterfactual != 0 else None,
        float(p_value), level, low, high, weights, gaps, pre, ratio, ratios, placebo_gaps, loo,
        float(np.mean(outcomes[:pre_periods, treated])), statistics, unit_weights, len(placebo_gaps), pre_periods)


def _ratio(gaps: np.ndarray, pre_periods: int) -> float:
    pre, post = _pre_rmspe(gaps, pre_periods), rmspe(gaps[pre_periods:])
    return post / pre if pre > 0 else float("inf")


def synthetic_control(treated: np.ndarray, donors: np.ndarray, pre_periods: int, level: float = 0.95,
                      leave_one_out: bool = True, workers: int = 1) -> SyntheticControlResult:
    """One treated series against a donor matrix (periods x donors): `synthetic_control_panel` with the
    treated unit first."""
    outcomes = np.column_stack([np.asarray(treated, float), np.asarray(donors, float)])
    return synthetic_control_panel(outcomes, [0], pre_periods, level=level, leave_one_out=leave_one_out,
                                   workers=workers)
