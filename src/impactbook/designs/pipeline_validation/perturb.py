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


def shift(frame: pd.DataFrame, spec: Shift, magnitude: float, rng: np.random.Generator,
          unit: str | None = None) -> pd.DataFrame:
    """quantile: every value + magnitude x IQR (each quantile moves by the same amount); reweight: rows
    resampled (within each unit, so units stay paired) with weights exp(magnitude x z-score), tilting the
    column toward its upper tail (an exponential tilt; Owen 2013, *Monte Carlo theory*, §9.4)."""
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
