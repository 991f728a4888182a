"""Group-time average treatment effects under staggered adoption (Callaway & Sant'Anna 2021,
"Difference-in-Differences with multiple time periods", Journal of Econometrics 225:200-230), without
covariates, with never-treated units as the comparison group, on a balanced unit x period panel.

Why: with staggered adoption, two-way fixed effects compares late adopters with early adopters whose
effect is still growing and can even flip sign (Goodman-Bacon 2021). Comparing each adoption cohort g
only with units that never adopt, period by period, gives an ATT(g, t) for every cohort and period free
of that bias; their averages (overall, by event time) are the estimates a plan tests.

ATT(g, t) = mean over cohort g of (Y_t - Y_b) minus the same mean over never-treated units, with base
period b = g - 1 for t >= g and b = t - 1 before adoption ("varying" base, the paper's default). Standard
errors come from the influence functions (the paper's section 4, without the multiplier bootstrap): the
analytic standard error of R's `did` and Python's `differences` with `boot_iterations=0`, and summed within
clusters when units are clustered. Aggregations weight cohorts by their size and include the estimated
weights' own influence (the paper's eq. 3.10-3.11; `did::aggte`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class GroupTimeEffect:
    cohort: int          # the first treated period (an index into `periods`)
    period: int
    estimate: float
    standard_error: float


@dataclass(frozen=True)
class Aggregate:
    estimate: float
    standard_error: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class CallawaySantAnna:
    method: str
    level: float
    group_time: tuple[GroupTimeEffect, ...]
    overall: Aggregate                       # "simple": every post-adoption ATT(g, t), weighted by cohort size
    event_time: dict[int, Aggregate]         # e = t - g, cohorts weighted by size
    post_average: Aggregate                  # the average of the event-time effects 0..lags
    pretrend_statistic: float                # Wald chi-square that every pre-adoption event-time effect is 0
    pretrend_p_value: float
    pretrend_df: int
    units: int
    treated_units: int
    never_treated_units: int
    clusters: int


def _aggregate(estimates: np.ndarray, influence: np.ndarray, cohort_of: np.ndarray, unit_cohorts: np.ndarray,
               keep: np.ndarray) -> tuple[float, np.ndarray]:
    """A cohort-size-weighted average of the kept ATT(g, t) and its influence function, including the
    influence of the estimated cohort shares (did::aggte's `wif`)."""
    shares = np.array([np.mean(unit_cohorts == g) for g in cohort_of])
    kept = np.flatnonzero(keep)
    total = shares[kept].sum()
    weights = shares[kept] / total
    estimate = float(weights @ estimates[kept])
    indicator = np.column_stack([(unit_cohorts == cohort_of[k]).astype(float) for k in kept])  # n x kept
    numerator = (indicator - shares[kept]) / total
    denominator = (indicator - shares[kept]).sum(axis=1, keepdims=True) * (shares[kept] / total**2)
    weight_influence = (numerator - denominator) @ estimates[kept]
    return estimate, influence[:, kept] @ weights + weight_influence


def _summary(estimate: float, influence: np.ndarray, clusters: np.ndarray, critical: float) -> Aggregate:
    se = _standard_error(influence, clusters)
    z = estimate / se if se > 0 else np.inf * np.sign(estimate)
    return Aggregate(estimate, se, estimate - critical * se, estimate + critical * se, float(2 * sps.norm.sf(abs(z))))


def _standard_error(influence: np.ndarray, clusters: np.ndarray) -> float:
    """sqrt(sum over clusters of (sum of the influence within the cluster)^2) / n; with one unit per
    cluster, sqrt(mean(psi^2) / n)."""
    n = len(influence)
    sums = np.bincount(clusters, weights=influence)
    return float(np.sqrt(np.sum(sums**2)) / n)


def callaway_santanna(outcomes: np.ndarray, cohorts: np.ndarray, clusters: np.ndarray | None = None,
                      leads: int = 4, lags: int = 4, alpha: float = 0.05) -> CallawaySantAnna:
    """`outcomes`: units x periods (balanced, no missing values); `cohorts`: each unit's first treated
    period as a column index, NaN for never treated; `clusters`: integer cluster codes per unit (default:
    each unit its own). Event-time effects from -leads to lags; the pre-trend test is the joint Wald test
    that the event-time effects -leads..-2 are zero (with the varying base, e = -1 compares g-1 with g-2)."""
    outcomes = np.asarray(outcomes, dtype=float)
    cohorts = np.asarray(cohorts, dtype=float)
    clusters = np.arange(len(cohorts)) if clusters is None else np.asarray(clusters)
    observed = np.isnan(cohorts) | (cohorts >= 1)  # units treated from the first period have no base period
    outcomes, cohorts, clusters = outcomes[observed], cohorts[observed], clusters[observed]
    n, periods = outcomes.shape
    clusters = np.unique(clusters, return_inverse=True)[1]
    cohorts = np.where(cohorts >= periods, np.nan, cohorts)  # adopting after the panel ends: never, here
    never = np.isnan(cohorts)
    if never.sum() < 2:
        raise ValueError("Callaway-Sant'Anna with never-treated comparison units needs at least 2 of them")
    unit_cohorts = np.where(never, -1, cohorts).astype(int)
    cells, columns = [], []
    for g in sorted({int(c) for c in cohorts[~never]}):
        members = unit_cohorts == g
        for t in range(1, periods):
            base = g - 1 if t >= g else t - 1
            change = outcomes[:, t] - outcomes[:, base]
            treated_mean, control_mean = change[members].mean(), change[never].mean()
            psi = np.zeros(n)
            psi[members] = n / members.sum() * (change[members] - treated_mean)
            psi[never] = -n / never.sum() * (change[never] - control_mean)
            cells.append((g, t, treated_mean - control_mean))
            columns.append(psi)
    if not cells:
        raise ValueError("no cohort adopts within the panel after its first period (units treated from the first "
                         "period have no base period; adoption after the last counts as never), so no group-time "
                         "effect is identified")
    influence = np.column_stack(columns)
    cohort_of = np.array([g for g, _, _ in cells])
    period_of = np.array([t for _, t, _ in cells])
    estimates = np.array([e for _, _, e in cells])
    critical = float(sps.norm.ppf(1 - alpha / 2))
    group_time = tuple(GroupTimeEffect(int(g), int(t), float(e), _standard_error(influence[:, k], clusters))
                       for k, (g, t, e) in enumerate(cells))
    overall = _summary(*_aggregate(estimates, influence, cohort_of, unit_cohorts, period_of >= cohort_of),
                       clusters, critical)
    event_time, event_influence = {}, {}
    for e in range(-leads, lags + 1):
        keep = period_of - cohort_of == e
        if keep.any():
            estimate, psi = _aggregate(estimates, influence, cohort_of, unit_cohorts, keep)
            event_time[e], event_influence[e] = _summary(estimate, psi, clusters, critical), (estimate, psi)
    post = [e for e in range(0, lags + 1) if e in event_influence]
    post_estimate = float(np.mean([event_influence[e][0] for e in post]))
    post_psi = np.mean([event_influence[e][1] for e in post], axis=0)
    pre = [e for e in range(-leads, -1) if e in event_influence]
    statistic, p_value = float("nan"), float("nan")  # no lead estimated: untested, not passed (it read p = 1.0)
    if pre:
        vector = np.array([event_influence[e][0] for e in pre])
        summed = np.column_stack([np.bincount(clusters, weights=event_influence[e][1]) for e in pre])
        covariance = summed.T @ summed / n**2
        statistic = float(vector @ np.linalg.pinv(covariance) @ vector)
        p_value = float(sps.chi2.sf(statistic, len(pre)))
    return CallawaySantAnna(
        "Callaway & Sant'Anna (2021) group-time ATTs, never-treated comparison, varying base period; "
        "influence-function standard errors" + (", clustered" if len(np.unique(clusters)) < n else ""),
        1 - alpha, group_time, overall, event_time, _summary(post_estimate, post_psi, clusters, critical),
        statistic, p_value, len(pre), n, int((~never).sum()), int(never.sum()), int(clusters.max()) + 1)
