"""Interrupted time series: the counterfactual of one series after an intervention, by two estimators
that must agree before anyone should trust either.

- Segmented regression (Bernal, Cummins & Gasparrini 2017, "Interrupted time series regression for the
  evaluation of public health interventions: a tutorial", Int J Epidemiol 46:348-355): the whole series
  regressed on a trend, a level change and a slope change at the intervention, Fourier seasonality and
  control regressors; Newey-West HAC errors (Newey & West 1987, Econometrica 55:703-708; the lag rule of
  Newey & West 1994, Rev Econ Stud 61:631-653) with t on n - k degrees of freedom.
- A structural time-series counterfactual (Harvey 1989, "Forecasting, Structural Time Series Models and
  the Kalman Filter"; Durbin & Koopman 2012, "Time Series Analysis by State Space Methods", ch. 3-4), as in
  CausalImpact (Brodersen, Gallusser, Koehler, Remy & Scott 2015, Ann Appl Stat 9:247-274) but fitted by
  maximum likelihood: local level (or trend) + deterministic Fourier seasonality + regressors, fitted on
  the pre-period only and forecast over the post-period; effects are observed minus forecast, with
  intervals from the joint Gaussian forecast distribution (parameter uncertainty ignored).

Inputs are arrays on a regular grid of periods (NaN for a missing value); positions count periods from the
first. Placebo interventions in the pre-period give the estimator's empirical false-positive rate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


class NotEstimable(ValueError):
    """The series cannot carry the model (too few periods, nothing after the intervention)."""


@dataclass(frozen=True)
class InterruptedTimeSeries:
    """One estimator's counterfactual over every period (pre: fitted, post: predicted), the pointwise and
    running cumulative effects over the post-period, and the average effect tested by the verdict.
    `degrees_of_freedom` is None where inference is normal. `level` is every interval's level."""

    method: str
    level: float
    intervention: int
    observed: np.ndarray
    counterfactual: np.ndarray
    counterfactual_low: np.ndarray
    counterfactual_high: np.ndarray
    effect: np.ndarray
    effect_low: np.ndarray
    effect_high: np.ndarray
    cumulative: np.ndarray
    cumulative_low: np.ndarray
    cumulative_high: np.ndarray
    average_effect: float
    average_standard_error: float
    average_low: float
    average_high: float
    average_p_value: float
    degrees_of_freedom: float | None
    counterfactual_level: float
    pre_residuals: np.ndarray
    pre_mape: float | None
    ljung_box_lags: int
    ljung_box_statistic: float
    ljung_box_p_value: float
    converged: bool = True
    parameters: np.ndarray | None = None

    @property
    def relative_effect(self) -> float | None:
        """Cumulative effect over the cumulative counterfactual (= average effect over its mean level)."""
        return self.average_effect / self.counterfactual_level if self.counterfactual_level else None

    @property
    def pre_periods(self) -> int:
        return self.intervention

    @property
    def post_periods(self) -> int:
        return len(self.observed) - self.intervention


@dataclass(frozen=True)
class Placebo:
    intervention: int
    average_effect: float
    p_value: float
    rejected: bool


@dataclass(frozen=True)
class PlaceboSummary:
    """Placebo interventions in the pre-period, each tested like the real one (Bernal et al. 2017, "other
    checks"; Abadie 2021, J Econ Lit 59:391-425, sec. 7 for in-time placebos): the share rejected at alpha
    estimates the estimator's false-positive rate on this series."""

    method: str
    alpha: float
    post_periods: int
    placebos: tuple[Placebo, ...]

    @property
    def false_positive_rate(self) -> float | None:
        return sum(p.rejected for p in self.placebos) / len(self.placebos) if self.placebos else None


def fourier_terms(positions: np.ndarray, periods: Sequence[float], harmonics: int) -> np.ndarray:
    """sin and cos of 2 pi j t / s for j = 1..min(harmonics, floor(s/2)) per season length s (Harvey 1989,
    sec. 2.3.4). A period of exactly 2j has a zero sine column, which is left out."""
    columns = []
    for period in periods:
        for j in range(1, min(harmonics, int(period // 2)) + 1):
            angle = 2 * np.pi * j * np.asarray(positions, float) / period
            columns.append(np.cos(angle))
            if abs(2 * j - period) > 1e-9:
                columns.append(np.sin(angle))
    return np.column_stack(columns) if columns else np.empty((len(positions), 0))


def newey_west_lags(observations: int) -> int:
    """floor(4 (n/100)^(2/9)): Newey & West (1994)'s rule of thumb for the Bartlett kernel."""
    return int(np.floor(4 * (observations / 100.0) ** (2.0 / 9.0)))


def hac_covariance(design: np.ndarray, residuals: np.ndarray, lags: int) -> np.ndarray:
    """(X'X)^-1 S (X'X)^-1 with S = sum over |l| <= L of Bartlett weights (1 - l/(L+1)) times the lag-l
    autocovariance of x_t u_t (Newey & West 1987, eq. 2); no small-sample factor."""
    scores = design * residuals[:, None]
    inner = scores.T @ scores
    for lag in range(1, lags + 1):
        cross = scores[lag:].T @ scores[:-lag]
        inner += (1 - lag / (lags + 1)) * (cross + cross.T)
    bread = np.linalg.inv(design.T @ design)
    return bread @ inner @ bread


def ljung_box(residuals: np.ndarray, lags: int) -> tuple[float, float]:
    """Ljung & Box (1978, Biometrika 65:297-303): Q = n(n+2) sum_k r_k^2/(n-k) over the residuals present,
    chi-square on `lags` df."""
    from scipy import special

    values = residuals[~np.isnan(residuals)]
    n = len(values)
    if lags >= n:
        raise NotEstimable(f"{n} residuals cannot carry a Ljung-Box test over {lags} lags")
    centred = values - values.mean()
    autocorrelation = np.array([centred[k:] @ centred[:-k] for k in range(1, lags + 1)]) / (centred @ centred)
    statistic = float(n * (n + 2) * np.sum(autocorrelation ** 2 / (n - np.arange(1, lags + 1))))
    return statistic, float(special.chdtrc(lags, statistic))


def _tail(value: float, degrees_of_freedom: float | None) -> float:
    """Upper tail of t on `degrees_of_freedom`, or of the normal when None (scipy.special: the functions
    behind scipy.stats.t and norm, without their per-call argument handling)."""
    from scipy import special

    return float(special.ndtr(-value) if degrees_of_freedom is None else special.stdtr(degrees_of_freedom, -value))


def _critical(alpha: float, degrees_of_freedom: float | None) -> float:
    """The two-sided critical value at alpha."""
    from scipy import special

    quantile = 1 - alpha / 2
    return float(special.ndtri(quantile) if degrees_of_freedom is None else special.stdtrit(degrees_of_freedom, quantile))


def mape(observed: np.ndarray, predicted: np.ndarray) -> float | None:
    """Mean absolute percentage error over the periods with a non-zero observation (None if none)."""
    kept = ~np.isnan(observed) & ~np.isnan(predicted) & (observed != 0)
    return float(np.mean(np.abs((observed[kept] - predicted[kept]) / observed[kept]))) if kept.any() else None


def _checked(outcome: np.ndarray, intervention: int, regressors: np.ndarray | None, minimum_pre: int):
    outcome = np.asarray(outcome, float)
    if not 0 < intervention < len(outcome):
        raise NotEstimable(f"the intervention ({intervention}) must fall inside the series (0..{len(outcome) - 1})")
    if np.sum(~np.isnan(outcome[:intervention])) < minimum_pre:
        raise NotEstimable(f"{np.sum(~np.isnan(outcome[:intervention]))} pre-period values; the model needs at "
                           f"least {minimum_pre}")
    if np.isnan(outcome[intervention:]).all():
        raise NotEstimable("no observation after the intervention")
    if regressors is not None:
        regressors = np.asarray(regressors, float).reshape(len(outcome), -1)
        if np.isnan(regressors).any():
            raise NotEstimable("a control regressor is missing in some period; regressors must be complete")
    return outcome, regressors


def _quadratic_forms(rows: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """a_i' C a_i for every row a_i (the variance of each linear combination), through one matrix product."""
    return np.sum((rows @ covariance) * rows, axis=1)


def _running(effect: np.ndarray, covariance: np.ndarray, critical: float):
    """Running sums of the pointwise effects (NaN ones skipped) and their intervals from the covariance."""
    present = (~np.isnan(effect)).astype(float)
    cumulative = np.cumsum(np.nan_to_num(effect))
    weights = np.tril(np.ones((len(effect), len(effect)))) * present
    spread = np.sqrt(np.maximum(_quadratic_forms(weights, covariance), 0))
    return cumulative, cumulative - critical * spread, cumulative + critical * spread


def _summary(effect: np.ndarray, covariance: np.ndarray, counterfactual: np.ndarray, degrees_of_freedom: float | None):
    """The average post-period effect (over the periods with an observation), its error and p-value."""
    present = ~np.isnan(effect)
    weights = present / present.sum()
    average = float(np.nansum(effect) / present.sum())
    error = float(np.sqrt(max(weights @ covariance @ weights, 0.0)))
    p_value = 2 * _tail(abs(average) / error, degrees_of_freedom) if error > 0 else float(average == 0)
    return average, error, p_value, float(np.mean(counterfactual[present]))


def segmented_regression(outcome: np.ndarray, intervention: int, seasonal_periods: Sequence[float] = (),
                         harmonics: int = 3, regressors: np.ndarray | None = None, hac_lags: int | None = None,
                         alpha: float = 0.05, ljung_box_lags: int = 10) -> InterruptedTimeSeries:
    """y_t = b0 + b1 t + b2 D_t + b3 (t - T0) D_t + Fourier(t) + x_t g + e_t, D_t = [t >= T0], fitted by OLS on
    every period with a value (Bernal et al. 2017, eq. 1 with seasonality and covariates). The pointwise
    effect b2 + b3 (t - T0) has a HAC interval (lag `hac_lags`, default the Newey-West rule); the
    counterfactual is the fit with b2 = b3 = 0."""
    outcome, regressors = _checked(outcome, intervention, regressors, minimum_pre=8)
    positions = np.arange(len(outcome), dtype=float)
    after = (positions >= intervention).astype(float)
    covariates = [np.ones_like(positions), positions, after, (positions - intervention) * after,
                  fourier_terms(positions, seasonal_periods, harmonics)]
    design = np.column_stack(covariates + ([regressors] if regressors is not None else []))
    kept = ~np.isnan(outcome)
    lags = newey_west_lags(int(kept.sum())) if hac_lags is None else hac_lags
    beta, *_ = np.linalg.lstsq(design[kept], outcome[kept], rcond=None)
    residuals = outcome[kept] - design[kept] @ beta
    covariance = hac_covariance(design[kept], residuals, lags)
    df = int(kept.sum()) - design.shape[1]
    if df < 1:
        raise NotEstimable(f"{int(kept.sum())} periods for {design.shape[1]} coefficients")
    critical = _critical(alpha, df)
    contrast = np.zeros((len(outcome) - intervention, design.shape[1]))  # effect at each post period
    contrast[:, 2] = 1
    contrast[:, 3] = positions[intervention:] - intervention
    effect_covariance = contrast @ covariance @ contrast.T
    effect = contrast @ beta
    effect_error = np.sqrt(np.diag(effect_covariance))
    without = design.copy()
    without[:, 2:4] = 0
    counterfactual = without @ beta
    counterfactual_error = np.sqrt(np.maximum(_quadratic_forms(without, covariance), 0))
    observed_effect = np.where(np.isnan(outcome[intervention:]), np.nan, effect)
    cumulative = _running(observed_effect, effect_covariance, critical)
    average, error, p_value, level = _summary(observed_effect, effect_covariance, counterfactual[intervention:],
                                              float(df))
    pre = kept[:intervention]
    pre_residuals = (outcome - design @ beta)[:intervention][pre]
    statistic, lb_p = ljung_box(pre_residuals, ljung_box_lags)
    return InterruptedTimeSeries(
        method=f"segmented regression (level and slope change, Fourier seasonality), Newey-West HAC errors "
               f"(Bartlett, {lags} lags), t on {df} df",
        level=1 - alpha, intervention=intervention, observed=outcome, counterfactual=counterfactual,
        counterfactual_low=counterfactual - critical * counterfactual_error,
        counterfactual_high=counterfactual + critical * counterfactual_error,
        effect=effect, effect_low=effect - critical * effect_error, effect_high=effect + critical * effect_error,
        cumulative=cumulative[0], cumulative_low=cumulative[1], cumulative_high=cumulative[2],
        average_effect=average, average_standard_error=error, average_low=average - critical * error,
        average_high=average + critical * error, average_p_value=p_value, degrees_of_freedom=float(df),
        counterfactual_level=level, pre_residuals=pre_residuals,
        pre_mape=mape(outcome[:intervention], (design @ beta)[:intervention]),
        ljung_box_lags=ljung_box_lags, ljung_box_statistic=statistic, ljung_box_p_value=lb_p, parameters=beta)


def forecast_covariance(results, steps: int) -> np.ndarray:
    """The joint covariance of the next `steps` observations of a fitted time-invariant state-space model
    (Durbin & Koopman 2012, sec. 4.11): Cov(y_i, y_j) = Z T^(j-i) P_i Z' (+ H on the diagonal), with
    P_(i+1) = T P_i T' + R Q R' from the last predicted state covariance."""
    ssm = results.filter_results
    design, transition = ssm.design[:, :, -1], ssm.transition[:, :, -1]
    selection, state_cov, obs_cov = ssm.selection[:, :, -1], ssm.state_cov[:, :, -1], ssm.obs_cov[0, 0, -1]
    shock = selection @ state_cov @ selection.T
    predicted = ssm.predicted_state_cov[:, :, -1]
    covariance = np.empty((steps, steps))
    for i in range(steps):
        column = predicted @ design[0]
        for j in range(i, steps):
            covariance[i, j] = covariance[j, i] = design[0] @ column
            column = transition @ column
        covariance[i, i] += obs_cov
        predicted = transition @ predicted @ transition.T + shock
    return covariance


def _standardizer(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pre-period mean and standard deviation (1 where a column is constant), NaN ignored."""
    center, scale = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    return center, np.where(scale > 0, scale, 1.0)


def structural_model(outcome: np.ndarray, seasonal_periods: Sequence[float], harmonics: int,
                     regressors: np.ndarray | None, trend: bool, autoregressive: bool):
    """The statsmodels UnobservedComponents model (Harvey 1989, ch. 2): local level or local linear
    trend, deterministic trigonometric seasonality per period, an optional AR(1) component for
    short-run persistence (without it a random-walk level absorbs the persistence and the forecast
    intervals balloon), regressors with fixed coefficients."""
    import statsmodels.api as sm

    seasons = [{"period": float(p), "harmonics": min(harmonics, int(p // 2))} for p in seasonal_periods]
    return sm.tsa.UnobservedComponents(outcome, exog=regressors, level="lltrend" if trend else "llevel",
                                       autoregressive=1 if autoregressive else None,
                                       freq_seasonal=seasons or None,
                                       stochastic_freq_seasonal=[False] * len(seasons) or None)


def structural_counterfactual(outcome: np.ndarray, intervention: int, seasonal_periods: Sequence[float] = (),
                              harmonics: int = 3, regressors: np.ndarray | None = None, trend: bool = False,
                              autoregressive: bool = True, alpha: float = 0.05, ljung_box_lags: int = 10,
                              start_params: np.ndarray | None = None) -> InterruptedTimeSeries:
    """Fit the structural model by maximum likelihood on the pre-period, forecast the post-period with its
    regressors (Brodersen et al. 2015, sec. 2-3), and take observed minus forecast. Pre-period
    counterfactuals are the one-step-ahead predictions; residual checks use the standardized one-step
    errors after the diffuse burn-in (Durbin & Koopman 2012, sec. 2.12). The model is fitted to the
    outcome and regressors standardized by their pre-period mean and standard deviation (as CausalImpact
    does): the likelihood is the same up to scale, and the optimizer no longer stalls on variances of
    1e-6 (a conversion rate's). L-BFGS runs up to 500 iterations; `start_params` starts it (placebos
    start from the full fit's estimates)."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    outcome, regressors = _checked(outcome, intervention, regressors, minimum_pre=16)
    center, scale = _standardizer(outcome[:intervention])
    if regressors is not None:
        regressors = (regressors - regressors[:intervention].mean(axis=0)) / _standardizer(regressors[:intervention])[1]
    model = structural_model((outcome[:intervention] - center) / scale, seasonal_periods, harmonics,
                             None if regressors is None else regressors[:intervention], trend, autoregressive)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fitted = model.fit(start_params=start_params, maxiter=500, disp=False)
    converged = bool(fitted.mle_retvals.get("converged", True)) and not any(
        issubclass(w.category, ConvergenceWarning) for w in caught)
    steps = len(outcome) - intervention
    forecast = fitted.get_forecast(steps, exog=None if regressors is None else regressors[intervention:])
    predicted = center + scale * np.asarray(forecast.predicted_mean, float)
    covariance = scale ** 2 * forecast_covariance(fitted, steps)
    critical = _critical(alpha, None)
    error = np.sqrt(np.diag(covariance))
    burn = fitted.loglikelihood_burn
    one_step = center + scale * np.asarray(fitted.fittedvalues, float)
    one_step_error = scale * np.sqrt(np.asarray(fitted.filter_results.forecasts_error_cov[0, 0], float))
    one_step[:burn], one_step_error[:burn] = np.nan, np.nan
    counterfactual = np.concatenate([one_step, predicted])
    spread = np.concatenate([one_step_error, error])
    effect = outcome[intervention:] - predicted
    cumulative = _running(effect, covariance, critical)
    average, average_error, p_value, level = _summary(effect, covariance, predicted, None)
    pre_residuals = np.asarray(fitted.filter_results.standardized_forecasts_error[0], float)[burn:]
    statistic, lb_p = ljung_box(pre_residuals, ljung_box_lags)
    return InterruptedTimeSeries(
        method=f"structural time series ({'local linear trend' if trend else 'local level'}"
               f"{' + AR(1)' if autoregressive else ''} + Fourier seasonality + regressors, MLE on the "
               "pre-period), forecast counterfactual, normal intervals",
        level=1 - alpha, intervention=intervention, observed=outcome, counterfactual=counterfactual,
        counterfactual_low=counterfactual - critical * spread, counterfactual_high=counterfactual + critical * spread,
        effect=effect, effect_low=effect - critical * error, effect_high=effect + critical * error,
        cumulative=cumulative[0], cumulative_low=cumulative[1], cumulative_high=cumulative[2],
        average_effect=average, average_standard_error=average_error, average_low=average - critical * average_error,
        average_high=average + critical * average_error, average_p_value=p_value, degrees_of_freedom=None,
        counterfactual_level=level, pre_residuals=pre_residuals,
        pre_mape=mape(outcome[:intervention], one_step), ljung_box_lags=ljung_box_lags,
        ljung_box_statistic=statistic, ljung_box_p_value=lb_p, converged=converged,
        parameters=np.asarray(fitted.params, float))


Estimator = Callable[..., InterruptedTimeSeries]


def placebo_interventions(estimator: Estimator, outcome: np.ndarray, intervention: int, count: int,
                          regressors: np.ndarray | None = None, alpha: float = 0.05, **options) -> PlaceboSummary:
    """`count` placebo interventions evenly spread over the second half of the pre-period, each with a
    post-period as long as the real one (at most a quarter of the pre-period), estimated on the pre-period
    alone; a placebo is a false positive when its average effect is significant at alpha."""
    outcome = np.asarray(outcome, float)
    length = min(len(outcome) - intervention, intervention // 4)
    first, last = intervention // 2, intervention - length
    positions = sorted({int(round(p)) for p in np.linspace(first, last, count)}) if count and length > 0 else []
    placebos = []
    for position in positions:
        end = position + length
        fit = estimator(outcome[:end], position, regressors=None if regressors is None else regressors[:end],
                        alpha=alpha, **options)
        placebos.append(Placebo(position, fit.average_effect, fit.average_p_value, fit.average_p_value < alpha))
    return PlaceboSummary(estimator.__name__, alpha, length, tuple(placebos))
