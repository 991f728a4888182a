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


def target_shift(target, magnitude=1.0, **extra):
    return Shift(kind="shift", mode="target", magnitudes=[magnitude], target=target, **{**COMMON, **extra})


CATEGORY_TARGET = {"proportions": {"0": 0.6, "1": 0.3, "2": 0.1}}
NUMERIC_TARGET = {"edges": [float("-inf"), 8.0, 10.0, 12.0, float("inf")], "proportions": [0.1, 0.2, 0.3, 0.4]}


def shares(values, weights, categories):
    return np.array([weights[values == c].sum() for c in categories]) / weights.sum()


def test_weights_give_the_declared_categorical_target_exactly():
    data = frame(units=100)  # label: 0/1/2 about a third each
    out = perturb.apply(data, target_shift(CATEGORY_TARGET, column="label", method="weight"), 1.0, seed=1)
    assert np.allclose(shares(out.label.to_numpy(), out.weight.to_numpy(), ["0", "1", "2"]), [0.6, 0.3, 0.1], rtol=0, atol=1e-12)
    assert out.weight.mean() == pytest.approx(1.0, abs=1e-12)
    unchanged_elsewhere(data, out.drop(columns="weight"), [])


def test_weights_give_the_declared_numeric_bins_exactly_and_magnitude_mixes_toward_them():
    data = frame(units=200)
    bins = pd.cut(data.x, NUMERIC_TARGET["edges"], right=True, include_lowest=True, labels=False).to_numpy()
    observed = np.bincount(bins, minlength=4) / len(data)
    for magnitude in (0.25, 1.0):
        out = perturb.apply(data, target_shift(NUMERIC_TARGET, magnitude, column="x", method="weight"), magnitude, seed=2)
        wanted = (1 - magnitude) * observed + magnitude * np.array(NUMERIC_TARGET["proportions"])
        assert np.allclose(shares(bins, out.weight.to_numpy(), range(4)), wanted, rtol=0, atol=1e-12)


def test_nulls_keep_their_share_and_the_rest_meets_the_target():
    data = frame(units=100).assign(x=lambda f: f.x.where(np.arange(len(f)) % 10 != 0))  # 10% null
    out = perturb.apply(data, target_shift(NUMERIC_TARGET, column="x", method="weight"), 1.0, seed=3)
    assert out.weight[out.x.isna()].eq(1.0).all()
    present = out.x.notna()
    bins = pd.cut(out.x[present], NUMERIC_TARGET["edges"], labels=False).to_numpy()
    assert np.allclose(shares(bins, out.weight[present].to_numpy(), range(4)), NUMERIC_TARGET["proportions"], atol=1e-12)


def test_resampling_meets_the_target_within_its_sampling_error_by_simulation():
    # 400 seeds of n = 1000 draws: each share's mean is the target within 4 standard errors of the mean, and
    # its spread is the multinomial sd sqrt(p (1 - p) / n) within 15% (400 draws: sd estimate +-3.5% se)
    data = frame(units=200)
    spec = target_shift(CATEGORY_TARGET, column="label")
    draws = np.array([pd.Series(perturb.apply(data, spec, 1.0, seed=s).label).value_counts(normalize=True)
                      .reindex(["0", "1", "2"], fill_value=0).to_numpy() for s in range(400)])
    target = np.array([0.6, 0.3, 0.1])
    sd = np.sqrt(target * (1 - target) / len(data))
    assert np.all(np.abs(draws.mean(axis=0) - target) < 4 * sd / np.sqrt(len(draws)))
    assert np.allclose(draws.std(axis=0, ddof=1), sd, rtol=0.15)
    assert len(perturb.apply(data, spec, 1.0, seed=0)) == len(data)


def test_resampling_is_deterministic_in_the_seed():
    data = frame(units=50)
    spec = target_shift(NUMERIC_TARGET, column="x")
    pd.testing.assert_frame_equal(perturb.apply(data, spec, 1.0, 7), perturb.apply(data, spec, 1.0, 7))
    assert not perturb.apply(data, spec, 1.0, 7).equals(perturb.apply(data, spec, 1.0, 8))


@pytest.mark.parametrize("target, message", [
    ({"proportions": {"0": 0.5, "1": 0.3}}, "must sum to 1 (got 0.8)"),
    ({"edges": [0, 1, 2], "proportions": [0.5, 0.6]}, "must sum to 1"),
    ({"edges": [0, 1], "proportions": [0.5, 0.5]}, "2 proportions need 3 edges"),
    ({"edges": [0, 2, 1], "proportions": [0.5, 0.5]}, "must increase strictly"),
    ({"proportions": [0.5, 0.5]}, "needs `edges`"),
    ({"proportions": {"a": -0.5, "b": 1.5}}, "non-negative"),
])
def test_plan_rejects_malformed_targets_naming_the_field(target, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="target") as caught:
        target_shift(target, column="x")
    assert message in str(caught.value)


def test_target_naming_a_value_absent_from_the_data_is_an_error():
    data = frame(units=20)
    with pytest.raises(ValueError, match=r"target.proportions: \['3'\] hold no row of column 'label'"):
        perturb.apply(data, target_shift({"proportions": {"0": 0.4, "1": 0.3, "2": 0.2, "3": 0.1}}, column="label"), 1.0, 1)
    with pytest.raises(ValueError, match="holds values the target does not name: \\['2'\\]"):
        perturb.apply(data, target_shift({"proportions": {"0": 0.5, "1": 0.5}}, column="label"), 1.0, 1)
    with pytest.raises(ValueError, match="target.edges: .* lie outside \\[0.0, 10.0\\]"):
        perturb.apply(data, target_shift({"edges": [0, 5, 10], "proportions": [0.5, 0.5]}, column="x"), 1.0, 1)


def test_magnitudes_of_a_target_shift_are_shares():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="magnitudes: a move toward a target is a share in"):
        target_shift(CATEGORY_TARGET, 1.5, column="label")
