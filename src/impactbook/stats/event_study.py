"""Event-study difference-in-differences on a unit x period panel: two-way fixed effects with one
indicator per period relative to adoption (reference period -1, end points binned), cluster-robust
standard errors, a joint Wald test of the leads (pre-trends), and the average post-adoption effect.

Method: the dynamic two-way fixed-effects specification (Angrist & Pischke 2009, Mostly Harmless
Econometrics, §5.2; Freyaldenhoven, Hansen & Shapiro 2019), cluster-robust variance with the usual
small-sample factor G/(G-1)·(N-1)/(N-K) and t inference on G-1 degrees of freedom (Cameron & Miller
2015, "A Practitioner's Guide to Cluster-Robust Inference", §2.3, §4.3). Under staggered adoption with
effects that differ across cohorts or grow with time, this estimator is biased (Goodman-Bacon 2021;
Sun & Abraham 2021): the plan must assume homogeneous effects, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EventTimeEffect:
    relative_period: int
    estimate: float
    standard_error: float
    low: float
    high: float


@dataclass(frozen=True)
class EventStudy:
    """Coefficients per relative period, the average post-adoption effect (periods 0..lags) and the
    pre-trend test, with the panel's size. `level` is the intervals' confidence level."""

    method: str
    level: float
    effects: tuple[EventTimeEffect, ...]
    average_effect: float
    average_standard_error: float
    average_low: float
    average_high: float
    average_p_value: float
    counterfactual_level: float | None
    pretrend_statistic: float
    pretrend_p_value: float
    clusters: int
    units: int
    treated_units: int
    periods: int
    observations: int
    t_df: int | None = None  # the t reference's degrees of freedom; None: the normal distribution

    @property
    def relative_effect(self) -> float | None:
        """The average effect over the treated units' counterfactual level in the post periods."""
        level = self.counterfactual_level
        return self.average_effect / level if level not in (None, 0) else None


def relative_periods(period: np.ndarray, adoption: np.ndarray, leads: int, lags: int) -> np.ndarray:
    """Period minus adoption period, binned into [-leads, lags]; NaN for units that never adopt."""
    relative = period.astype(float) - adoption.astype(float)
    return np.clip(relative, -leads, lags)


def two_way_design(unit: np.ndarray, period: np.ndarray) -> np.ndarray:
    """An intercept and unit and period dummies (the first of each dropped): the two-way fixed effects."""
    units, unit_codes = np.unique(unit, return_inverse=True)
    periods, period_codes = np.unique(period, return_inverse=True)
    return np.column_stack([np.ones(len(unit_codes)), np.eye(len(units))[unit_codes][:, 1:],
                            np.eye(len(periods))[period_codes][:, 1:]])


def _with_covariates(design: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    return design if covariates is None or np.size(covariates) == 0 else \
        np.column_stack([design, np.asarray(covariates, dtype=float)])


@dataclass(frozen=True)
class StaticEffect:
    """One post-adoption effect from D_it = 1{unit adopted by period t}: with one adoption period on a
    balanced panel, the 2x2 difference in differences of means (Angrist & Pischke 2009, §5.2.1)."""

    method: str
    estimate: float
    standard_error: float
    low: float
    high: float
    p_value: float
    t_df: int


def static_did(outcome: np.ndarray, unit: np.ndarray, period: np.ndarray, adoption: np.ndarray,
               cluster: np.ndarray, alpha: float = 0.05, covariates: np.ndarray | None = None,
               bootstrap_draws: int | None = None, seed: int = 0) -> StaticEffect:
    """y_it = a_i + g_t + tau D_it (+ x_it'b) + e_it by OLS, CR1 cluster-robust errors, t on G-1 df (or the
    wild cluster restricted bootstrap p-value, as in `event_study`)."""
    import statsmodels.api as sm
    from scipy import stats

    outcome = np.asarray(outcome, dtype=float)
    adoption = np.asarray(adoption, dtype=float)
    treated = (~np.isnan(adoption)) & (np.asarray(period, dtype=float) >= np.nan_to_num(adoption, nan=np.inf))
    design = _with_covariates(np.column_stack([treated.astype(float), two_way_design(unit, period)]), covariates)
    clusters = np.unique(cluster, return_inverse=True)[1]
    groups = int(clusters.max()) + 1
    fit = sm.OLS(outcome, design).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    estimate, se = float(fit.params[0]), float(np.sqrt(fit.cov_params()[0, 0]))
    critical = stats.t.ppf(1 - alpha / 2, groups - 1)
    p_value = float(2 * stats.t.sf(abs(estimate / se), groups - 1)) if se > 0 else 0.0
    method = "difference in differences (two-way fixed effects, one post-adoption indicator), CR1 errors, t on G-1 df"
    if bootstrap_draws is not None:
        from .wild_bootstrap import wild_cluster_bootstrap, wild_cluster_interval

        restriction = np.zeros(design.shape[1])
        restriction[0] = 1.0
        bootstrap = wild_cluster_bootstrap(design, outcome, clusters, restriction, bootstrap_draws, seed)
        p_value = bootstrap.p_value
        low, high = wild_cluster_interval(design, outcome, clusters, restriction, 1 - alpha, bootstrap_draws, seed)
        method += f"; p-value and interval by {bootstrap.method} (the interval by inverting it)"
        return StaticEffect(method, estimate, se, low, high, p_value, groups - 1)
    return StaticEffect(method, estimate, se, estimate - critical * se, estimate + critical * se, p_value, groups - 1)


def event_study(outcome: np.ndarray, unit: np.ndarray, period: np.ndarray, adoption: np.ndarray,
                cluster: np.ndarray, leads: int, lags: int, alpha: float = 0.05,
                bootstrap_draws: int | None = None, seed: int = 0, covariates: np.ndarray | None = None) -> EventStudy:
    """Fit the event study. `unit`, `period` and `cluster` are integer codes per observation; `period` and
    `adoption` share one integer period scale (adoption NaN: never treated). With `bootstrap_draws`, the
    average effect's p-value and interval come from the wild cluster restricted bootstrap (for few clusters;
    the interval by inverting the test; see impactbook.stats.wild_bootstrap); event-time intervals stay
    cluster-robust. `covariates` (observations x k)
    enter linearly beside the fixed effects."""
    import statsmodels.api as sm
    from scipy import stats

    outcome = np.asarray(outcome, dtype=float)
    relative = relative_periods(np.asarray(period), np.asarray(adoption, dtype=float), leads, lags)
    kept = [k for k in range(-leads, lags + 1) if k != -1]
    event = np.column_stack([(relative == k).astype(float) for k in kept])
    units, periods = np.unique(unit), np.unique(period)
    design = _with_covariates(np.column_stack([event, two_way_design(unit, period)]), covariates)
    clusters = np.unique(cluster, return_inverse=True)[1]
    groups = int(clusters.max()) + 1
    fit = sm.OLS(outcome, design).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    beta, covariance = np.asarray(fit.params), np.asarray(fit.cov_params())
    critical = stats.t.ppf(1 - alpha / 2, groups - 1)
    effects = tuple(EventTimeEffect(k, float(beta[i]), float(np.sqrt(covariance[i, i])),
                                    float(beta[i] - critical * np.sqrt(covariance[i, i])),
                                    float(beta[i] + critical * np.sqrt(covariance[i, i])))
                    for i, k in enumerate(kept))
    post = np.zeros(len(beta))
    post[[kept.index(k) for k in range(0, lags + 1)]] = 1 / (lags + 1)
    average = float(post @ beta)
    average_se = float(np.sqrt(post @ covariance @ post))
    t_value = average / average_se if average_se > 0 else np.inf * np.sign(average)
    pre = [kept.index(k) for k in range(-leads, -1)]
    restriction = np.zeros((len(pre), len(beta)))
    restriction[np.arange(len(pre)), pre] = 1
    wald = fit.wald_test(restriction, use_f=True, scalar=True)
    method = "event study: two-way fixed effects, cluster-robust (CR1) errors, t on G-1 df"
    average_p_value = float(2 * stats.t.sf(abs(t_value), groups - 1))
    average_low, average_high = average - critical * average_se, average + critical * average_se
    if bootstrap_draws is not None:
        from .wild_bootstrap import wild_cluster_bootstrap, wild_cluster_interval

        bootstrap = wild_cluster_bootstrap(design, outcome, clusters, post, bootstrap_draws, seed)
        average_p_value = bootstrap.p_value
        average_low, average_high = wild_cluster_interval(design, outcome, clusters, post, 1 - alpha,
                                                          bootstrap_draws, seed)
        method += f"; average effect's p-value and interval by {bootstrap.method} (the interval by inverting it)"
    treated_post = (~np.isnan(relative)) & (relative >= 0)
    counterfactual = float(outcome[treated_post].mean() - average) if treated_post.any() else None
    return EventStudy(
        method=method,
        level=1 - alpha, effects=effects, average_effect=average, average_standard_error=average_se,
        average_low=average_low, average_high=average_high,
        average_p_value=average_p_value, counterfactual_level=counterfactual,
        pretrend_statistic=float(wald.statistic), pretrend_p_value=float(wald.pvalue), clusters=groups,
        units=len(units), treated_units=len(np.unique(np.asarray(unit)[~np.isnan(np.asarray(adoption, dtype=float))])),
        periods=len(periods), observations=len(outcome), t_df=groups - 1)
