"""Nearest-neighbour matching on the propensity score for the effect on the treated (ATT), with a caliper
and the Abadie-Imbens standard error.

Method: matching with replacement on the logit of the score, each treated unit to its `matches` nearest
untreated units within a caliper of `caliper` standard deviations of the logit (Austin 2011, "Optimal
caliper widths for propensity-score matching", recommends 0.2); treated units with no untreated unit
inside the caliper are dropped, so the estimand is the ATT on the matched treated. Variance: Abadie &
Imbens (2006, Econometrica 74(1), §4, the population ATT variance with the conditional variances
estimated by matching within each arm, `variance_matches` neighbours). The score is treated as known:
the Abadie & Imbens (2016) correction for an estimated score is not applied (for the ATT it may make the
error larger or smaller).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from .observational import EffectEstimate, normal_inference


@dataclass(frozen=True)
class MatchedEstimate(EffectEstimate):
    matched_treated: int
    unmatched_treated: int
    distinct_controls: int
    caliper: float  # in units of the logit score
    control_weights: np.ndarray  # per untreated unit: how often it stands in for a treated unit (sum 1/M_i)
    treated_kept: np.ndarray  # per treated unit: matched within the caliper
    pair_differences: np.ndarray  # each matched treated unit minus its nearest match (Rosenbaum bounds)

    def unit_weights(self, treated: np.ndarray) -> np.ndarray:
        """Per unit, in the data's order: 1 for a matched treated unit, K_j for an untreated one (balance)."""
        d = np.asarray(treated).astype(bool)
        weights = np.zeros(len(d))
        weights[np.flatnonzero(d)[self.treated_kept]] = 1.0
        weights[~d] = self.control_weights
        return weights


def nearest(reference: np.ndarray, queries: np.ndarray, count: int, exclude: np.ndarray | None = None):
    """Indices into `reference` (sorted ascending) of the `count` nearest values to each query, and their
    distances, in order; `exclude[i]` is a reference index query i may not use (itself), or -1."""
    n = len(reference)
    position = np.searchsorted(reference, queries)
    extra = 1 if exclude is not None else 0
    offsets = np.arange(-(count + extra), count + extra)
    candidates = position[:, None] + offsets[None, :]
    valid = (candidates >= 0) & (candidates < n)
    clipped = np.clip(candidates, 0, n - 1)
    distance = np.where(valid, np.abs(reference[clipped] - queries[:, None]), np.inf)
    if exclude is not None:
        distance = np.where(clipped == exclude[:, None], np.inf, distance)
    order = np.argsort(distance, axis=1, kind="stable")[:, :count]
    return np.take_along_axis(clipped, order, axis=1), np.take_along_axis(distance, order, axis=1)


def _within_arm_variance(values: np.ndarray, score: np.ndarray, neighbours: int) -> np.ndarray:
    """sigma^2(x_i) = J/(J+1) (y_i - mean of its J nearest same-arm neighbours)^2 (Abadie & Imbens 2006, eq. 14)."""
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    index, _ = nearest(sorted_score, sorted_score, neighbours, exclude=np.arange(len(score)))
    means = values[order][index].mean(axis=1)
    variance = np.empty(len(values))
    variance[order] = neighbours / (neighbours + 1) * (values[order] - means) ** 2
    return variance


def match_att(outcome: np.ndarray, treated: np.ndarray, logit_score: np.ndarray, caliper: float | None = 0.2,
              matches: int = 1, variance_matches: int = 1, alpha: float = 0.05) -> MatchedEstimate:
    """ATT by nearest-neighbour matching on the logit score (see the module docstring)."""
    y = np.asarray(outcome, dtype=float)
    d = np.asarray(treated).astype(bool)
    score = np.asarray(logit_score, dtype=float)
    controls = np.flatnonzero(~d)
    treated_index = np.flatnonzero(d)
    if len(controls) < max(matches, variance_matches + 1) or len(treated_index) < variance_matches + 1:
        raise ValueError("too few units in an arm to match")
    width = np.inf if caliper is None else caliper * float(np.std(score, ddof=1))
    order = np.argsort(score[controls], kind="stable")
    sorted_controls = controls[order]
    index, distance = nearest(score[sorted_controls], score[treated_index], matches)
    inside = distance <= width
    kept = inside[:, 0]
    per_treated = inside.sum(axis=1)
    share = np.where(inside, 1.0 / np.maximum(per_treated, 1)[:, None], 0.0)
    matched_mean = (share * y[sorted_controls][index]).sum(axis=1)
    t_y = y[treated_index][kept]
    n1 = int(kept.sum())
    if n1 == 0:
        raise ValueError("no treated unit has an untreated unit within the caliper")
    estimate = float(np.mean(t_y - matched_mean[kept]))
    weight = np.zeros(len(y))  # K_j = sum of 1/M_i, and sum of 1/M_i^2, per untreated unit
    squared = np.zeros(len(y))
    np.add.at(weight, sorted_controls[index[inside]], share[inside])
    np.add.at(squared, sorted_controls[index[inside]], share[inside] ** 2)
    sigma2 = np.zeros(len(y))
    sigma2[controls] = _within_arm_variance(y[controls], score[controls], variance_matches)
    variance = (np.sum((t_y - matched_mean[kept] - estimate) ** 2)
                + np.sum((weight ** 2 - squared) * sigma2)) / n1 ** 2
    standard_error = float(np.sqrt(variance))
    caliper_text = "no caliper" if caliper is None else f"caliper {caliper:g} SD of the logit score"
    return MatchedEstimate(
        f"nearest-neighbour matching on the logit propensity score ({matches}:1, with replacement, {caliper_text}), "
        "ATT, Abadie-Imbens (2006) standard error", "ATT", 1 - alpha, estimate, standard_error,
        *normal_inference(estimate, standard_error, alpha), float(t_y.mean()), float(matched_mean[kept].mean()), n1, int((~kept).sum()), int((weight > 0).sum()), float(width), weight[controls], kept,
        t_y - y[sorted_controls][index[kept, 0]])
