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


def event_study(outcome: np.ndarray, unit: np.ndarray, period: np.ndarray, adoption: np.ndarray,
                cluster: np.ndarray, leads: int, lags: int, alpha: float = 0.05,
                bootstrap_draws: int | None = None, seed: int = 0) -> EventStudy:
    """Fit the event study. `unit`, `period` and `cluster` are integer codes per observation; `period` and
    `adoption` share one integer period scale (adoption NaN: never treated). With `bootstrap_draws`, the
    average effect's p-value comes from the wild cluster restricted bootstrap (for few clusters; see
    impactbook.stats.wild_bootstrap) and the interval stays cluster-robust."""
    import statsmodels.api as sm
    from scipy import stats

    outcome = np.asarray(outcome, dtype=float)
    relative = relative_periods(np.asarray(period), np.asarray(adoption, dtype=float), leads, lags)
    kept = [k for k in range(-leads, lags + 1) if k != -1]
    event = np.column_stack([(relative == k).astype(float) for k in kept])
    units, unit_codes = np.unique(unit, return_inverse=True)
    periods, period_codes = np.unique(period, return_inverse=True)
    fixed = np.column_stack([np.ones(len(outcome)),
                             np.eye(len(units))[unit_codes][:, 1:], np.eye(len(periods))[period_codes][:, 1:]])
    design = np.column_stack([event, fixed])
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
    if bootstrap_draws is not None:
        from .wild_bootstrap import wild_cluster_bootstrap

        bootstrap = wild_cluster_bootstrap(design, outcome, clusters, post, bootstrap_draws, seed)
        average_p_value = bootstrap.p_value
        method += f"; average effect's p-value by {bootstrap.method}"
    treated_post = (~np.isnan(relative)) & (relative >= 0)
    counterfactual = float(outcome[treated_post].mean() - average) if treated_post.any() else None
    return EventStudy(
        method=method,
        level=1 - alpha, effects=effects, average_effect=average, average_standard_error=average_se,
        average_low=average - critical * average_se, average_high=average + critical * average_se,
        average_p_value=average_p_value, counterfactual_level=counterfactual,
        pretrend_statistic=float(wald.statistic), pretrend_p_value=float(wald.pvalue), clusters=groups,
        units=len(units), treated_units=len(np.unique(np.asarray(unit)[~np.isnan(np.asarray(adoption, dtype=float))])),
        periods=len(periods), observations=len(outcome), t_df=groups - 1)
