"""Stage 1 of a validation run: the data perturbations a plan declares, each a pure function of a frame,
a magnitude and a seeded generator, changing exactly what it declares and nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...designspecs.pipeline_validation import Corruption, MissingValues, Shift


def _rows(frame: pd.DataFrame, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round(rate * n) row positions, drawn without replacement."""
    return rng.choice(len(frame), size=int(round(rate * len(frame))), replace=False)


def missing(frame: pd.DataFrame, spec: MissingValues, rate: float, rng: np.random.Generator) -> pd.DataFrame:
    out = frame.copy()
    for column in spec.columns:
        out.iloc[_rows(out, rate, rng), out.columns.get_loc(column)] = np.nan
    return out


def corrupt(frame: pd.DataFrame, spec: Corruption, scale: float, rng: np.random.Generator) -> pd.DataFrame:
    """noise: + N(0, (scale x sd)^2) on a `spec.rate` share of rows; out_of_range: max + scale x range on
    that share; type_flip: a `scale` share of values become their text."""
    out = frame.copy()
    for column in spec.columns:
        values = out[column]
        if spec.mode == "type_flip":
            rows = _rows(out, scale, rng)
            flipped = values.astype(object)
            flipped.iloc[rows] = values.iloc[rows].astype(str)
            out[column] = flipped
            continue
        rows = _rows(out, spec.rate, rng)
        changed = values.astype(float).to_numpy(copy=True)
        if spec.mode == "noise":
            changed[rows] += rng.normal(0.0, scale * float(np.nanstd(values)), size=len(rows))
        else:
            changed[rows] = float(np.nanmax(values)) + scale * float(np.nanmax(values) - np.nanmin(values))
        out[column] = changed
    return out


def _target_bins(values: pd.Series, spec: Shift) -> tuple[np.ndarray, np.ndarray]:
    """Each row's bin of the declared target (-1: null) and the target's share per bin."""
    target, field = spec.target, "target"
    nulls = values.isna().to_numpy()
    if target.edges is None:
        names = list(target.proportions)
        text = values.astype(str).to_numpy()
        unknown = sorted(set(text[~nulls]) - set(names))
        if unknown:
            raise ValueError(f"{field}.proportions: column {spec.column!r} holds values the target does not name: "
                             f"{unknown[:5]} (give them a share, 0 to drop them)")
        bins = np.where(nulls, -1, pd.Index(names).get_indexer(text))
        shares = np.array([target.proportions[n] for n in names])
    else:
        numbers = values.astype(float).to_numpy()
        edges = np.asarray(target.edges)
        outside = ~nulls & ((numbers < edges[0]) | (numbers > edges[-1]))
        if outside.any():
            raise ValueError(f"{field}.edges: {int(outside.sum())} values of {spec.column!r} lie outside "
                             f"[{edges[0]}, {edges[-1]}] (e.g. {numbers[outside][:3].tolist()}; use -.inf / .inf)")
        bins = np.where(nulls, -1, np.clip(np.searchsorted(edges, numbers, side="left") - 1, 0, len(edges) - 2))
        shares = np.asarray(target.proportions, dtype=float)
    return bins, shares


def target_weights(frame: pd.DataFrame, spec: Shift, magnitude: float) -> np.ndarray:
    """Row weights (mean 1) under which the column's non-null distribution is (1 - m) x observed + m x the
    declared target exactly: w = wanted share / observed share of the row's bin, nulls keeping weight 1
    (post-stratification weights; Lohr 2021, *Sampling: Design and Analysis*, §4.4). A bin the target
    gives a share but the data leave empty cannot be reached by any weighting: that is an error."""
    bins, shares = _target_bins(frame[spec.column], spec)
    counted = bins[bins >= 0]
    observed = np.bincount(counted, minlength=len(shares)).astype(float)
    if not counted.size:
        raise ValueError(f"target: column {spec.column!r} has no non-null value to reweight")
    empty = (observed == 0) & (shares > 0)
    if empty.any():
        labels = list(spec.target.proportions) if spec.target.edges is None else \
            [f"({a}, {b}]" for a, b in zip(spec.target.edges, spec.target.edges[1:])]
        raise ValueError(f"target.proportions: {[labels[i] for i in np.flatnonzero(empty)][:5]} hold no row of "
                         f"column {spec.column!r}, so no reweighting reaches the target")
    wanted = (1 - magnitude) * observed / counted.size + magnitude * shares
    per_bin = np.divide(wanted * counted.size, observed, out=np.zeros_like(wanted), where=observed > 0)
    return np.where(bins >= 0, per_bin[np.maximum(bins, 0)], 1.0)


def shift(frame: pd.DataFrame, spec: Shift, magnitude: float, rng: np.random.Generator,
          unit: str | None = None) -> pd.DataFrame:
    """quantile: every value + magnitude x IQR (each quantile moves by the same amount); reweight: rows
    resampled (within each unit, so units stay paired) with weights exp(magnitude x z-score), tilting the
    column toward its upper tail (an exponential tilt; Owen 2013, *Monte Carlo theory*, §9.4); target: the
    `target_weights` written as a column (exact), or n rows drawn with replacement in proportion to them
    (the target in expectation; across all rows, since a unit's rows alone may not reach it)."""
    if spec.mode == "target":
        weights = target_weights(frame, spec, magnitude)
        if spec.method == "weight":
            if spec.weight_column in frame:
                raise ValueError(f"weight_column: {spec.weight_column!r} is already a column of the data")
            return frame.assign(**{spec.weight_column: weights})
        picked = rng.choice(len(frame), size=len(frame), replace=True, p=weights / weights.sum())
        return frame.iloc[np.sort(picked)].reset_index(drop=True)
    values = frame[spec.column].astype(float)
    if spec.mode == "quantile":
        q1, q3 = np.nanpercentile(values, [25, 75])
        return frame.assign(**{spec.column: values + magnitude * (q3 - q1)})
    z = ((values - values.mean()) / (values.std() or 1.0)).fillna(0.0).to_numpy()
    weights = np.exp(magnitude * z)
    groups = [np.arange(len(frame))] if unit is None else list(frame.groupby(unit, sort=False).indices.values())
    picked = np.concatenate([rng.choice(g, size=len(g), replace=True, p=weights[g] / weights[g].sum()) for g in groups])
    return frame.iloc[np.sort(picked)].reset_index(drop=True)


def apply(frame: pd.DataFrame, spec, magnitude: float, seed: int, unit: str | None = None) -> pd.DataFrame:
    """The perturbed input for one (magnitude, seed); stage perturbations leave the data as it is."""
    rng = np.random.default_rng(seed)
    if isinstance(spec, MissingValues):
        return missing(frame, spec, magnitude, rng)
    if isinstance(spec, Corruption):
        return corrupt(frame, spec, magnitude, rng)
    if isinstance(spec, Shift):
        return shift(frame, spec, magnitude, rng, unit)
    return frame
