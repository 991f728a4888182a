"""Each perturbation kind changes the data exactly as it declares, and nothing else (small frames)."""

import numpy as np
import pandas as pd
import pytest
from pipeline_toy_stages import frame

from impactbook.designs.pipeline_validation import perturb
from impactbook.designspecs.pipeline_validation import Corruption, MissingValues, Shift

COMMON = {"id": "p", "metric": "m", "tolerance": 0.1}


def unchanged_elsewhere(before, after, columns):
    others = [c for c in before if c not in columns]
    pd.testing.assert_frame_equal(before[others], after[others])


def test_missing_sets_exactly_the_declared_rate_in_named_columns():
    data = frame(units=20)
    out = perturb.apply(data, MissingValues(kind="missing", columns=["x"], magnitudes=[0.25], **COMMON), 0.25, seed=1)
    assert out.x.isna().sum() == 25 and data.x.notna().all()
    assert (out.x.dropna() == data.x[out.x.notna()]).all()
    unchanged_elsewhere(data, out, ["x"])


def test_noise_has_the_declared_scale_and_touches_the_declared_share():
    data = frame(units=2000)
    spec = Corruption(kind="corrupt", mode="noise", columns=["x"], rate=0.5, **COMMON)
    out = perturb.apply(data, spec, 0.5, seed=2)
    moved = out.x != data.x
    assert moved.sum() == len(data) // 2
    # noise sd = scale x column sd = 0.5 x ~2 (sampling tolerance of an sd over 5000 draws: ~2%)
    assert np.std(out.x[moved] - data.x[moved]) == pytest.approx(0.5 * data.x.std(ddof=0), rel=0.05)
    unchanged_elsewhere(data, out, ["x"])


def test_out_of_range_values_lie_beyond_the_observed_range():
    data = frame(units=50)
    spec = Corruption(kind="corrupt", mode="out_of_range", columns=["y"], rate=0.1, **COMMON)
    out = perturb.apply(data, spec, 1.0, seed=3)
    expected = data.y.max() + (data.y.max() - data.y.min())
    changed = out.y != data.y
    assert changed.sum() == 25 and np.allclose(out.y[changed], expected)


def test_type_flip_turns_the_declared_share_into_text():
    data = frame(units=20)
    out = perturb.apply(data, Corruption(kind="corrupt", mode="type_flip", columns=["x"], **COMMON), 0.1, seed=4)
    texts = out.x.map(lambda v: isinstance(v, str))
    assert texts.sum() == 10 and (out.x[texts].astype(float) == data.x[texts]).all()


def test_quantile_shift_moves_every_quantile_by_magnitude_times_iqr():
    data = frame(units=100)
    out = perturb.apply(data, Shift(kind="shift", column="x", **COMMON), 0.5, seed=5)
    iqr = np.subtract(*np.percentile(data.x, [75, 25]))
    assert np.allclose(np.percentile(out.x, [5, 50, 95]) - np.percentile(data.x, [5, 50, 95]), 0.5 * iqr)


def test_reweight_tilts_toward_the_upper_tail_and_keeps_each_units_rows():
    data = frame(units=400)
    out = perturb.apply(data, Shift(kind="shift", mode="reweight", column="x", **COMMON), 1.0, seed=6, unit="unit")
    assert out.groupby("unit").size().equals(data.groupby("unit").size())
    assert out.x.mean() > data.x.mean() + 0.5 * data.x.std()  # tilt by one sd moves the mean ~ +sd for a normal
    assert set(map(tuple, out[["unit", "x"]].to_numpy())) <= set(map(tuple, data[["unit", "x"]].to_numpy()))


def test_same_seed_same_perturbation():
    data = frame(units=30)
    spec = MissingValues(kind="missing", columns=["x", "y"], magnitudes=[0.3], **COMMON)
    pd.testing.assert_frame_equal(perturb.apply(data, spec, 0.3, 9), perturb.apply(data, spec, 0.3, 9))
