"""designs/aggregate.py: the compiled SQL, run by DuckDB, gives the same sufficient statistics as pandas."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from impactbook.designs.aggregate import aggregate, aggregate_source, statistics_sql
from impactbook.sqlengine import source_sql
from impactbook.plan import Plan, load_plan
from impactbook.stats import RatioStatistic, RegressionStatistic, SampleMean
from conftest import PLAN


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(12)
    n = 3000
    frame = pd.DataFrame({
        "user_id": np.arange(n), "variant": rng.choice(["control", "treatment"], n),
        "platform": rng.choice(["ios", "android", "web"], n),
        "date": pd.Timestamp("2026-11-23") + pd.to_timedelta(rng.integers(0, 5, n), unit="D"),
        "pre_revenue": rng.gamma(2, 5, n).round(2), "converted": (rng.random(n) < 0.1).astype(int),
        "sessions": 1 + rng.poisson(2, n)})
    frame["revenue"] = (frame.pre_revenue * rng.gamma(4, 0.25, n) + frame.converted * 40).round(2)
    path = tmp_path / "small.csv"
    frame.assign(date=frame.date.dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return frame, path


def _plan(project, **changes) -> Plan:
    plan = load_plan(project.root / PLAN)
    window = plan.window.model_copy(update={"start": dt.date(2026, 11, 23), "end": dt.date(2026, 11, 27)})
    return plan.model_copy(update={"window": window, **changes})


def _expected(frame: pd.DataFrame, cap: float | None):
    revenue = frame.revenue.clip(upper=cap) if cap is not None else frame.revenue
    return {
        "conversion": SampleMean(len(frame), float(frame.converted.sum()), float((frame.converted ** 2).sum())),
        "revenue_per_user": RegressionStatistic(
            SampleMean(len(frame), float(revenue.sum()), float((revenue ** 2).sum())),
            SampleMean(len(frame), float(frame.pre_revenue.sum()), float((frame.pre_revenue ** 2).sum())),
            float((revenue * frame.pre_revenue).sum())),
        "revenue_per_session": RatioStatistic(
            SampleMean(len(frame), float(frame.revenue.sum()), float((frame.revenue ** 2).sum())),
            SampleMean(len(frame), float(frame.sessions.sum()), float((frame.sessions ** 2).sum())),
            float((frame.revenue * frame.sessions).sum())),
    }


def _assert_close(found, expected):
    for name in expected:
        a, b = found[name], expected[name]
        assert type(a) is type(b), name
        flat = lambda s: np.array([v for v in _numbers(s)])
        np.testing.assert_allclose(flat(a), flat(b), rtol=1e-12, err_msg=name)


def _numbers(statistic):
    for value in vars(statistic).values():
        if isinstance(value, (int, float)):
            yield float(value)
        else:
            yield from _numbers(value)


def test_pushdown_equals_pandas_overall_per_segment_and_per_day(project, small):
    frame, path = small
    plan = _plan(project)
    result = aggregate(plan, path)
    cap = float(np.percentile(frame[frame.variant == "control"].revenue, 99.9))  # PERCENTILE_CONT = linear
    assert result.caps["revenue_per_user"] == pytest.approx(cap, rel=1e-12)
    for arm, rows in frame.groupby("variant"):
        assert result.units[arm] == len(rows)
        _assert_close(result.overall[arm], _expected(rows, cap))
    for (platform, arm), rows in frame.groupby(["platform", "variant"]):
        assert result.segment_units[("platform", platform)][arm] == len(rows)
        _assert_close(result.segments[("platform", platform)][arm], _expected(rows, cap))
    for (day, arm), rows in frame.groupby([frame.date.dt.strftime("%Y-%m-%d"), "variant"]):
        _assert_close(result.daily[day][arm], _expected(rows, cap))


def test_metric_filter_and_pooled_cap(project, small):
    frame, path = small
    plan = _plan(project)
    metrics = [m.model_copy(update={"filter": "platform = 'ios'"}) if m.id == "conversion" else
               m.model_copy(update={"cap": m.cap.model_copy(update={"basis": "pooled", "quantile": 0.95})})
               if m.cap else m for m in plan.metrics]
    result = aggregate(plan.model_copy(update={"metrics": metrics}), path)
    assert result.caps["revenue_per_user"] == pytest.approx(float(np.percentile(frame.revenue, 95)), rel=1e-12)
    ios = frame[(frame.platform == "ios") & (frame.variant == "control")]
    found = result.overall["control"]["conversion"]
    assert (found.n, found.sum) == (len(ios), float(ios.converted.sum()))


def test_sql_is_plain_grouping_sets(project):
    sql = statistics_sql(_plan(project), "exposures")
    assert "GROUPING SETS" in sql and "FROM exposures" in sql and "read_csv" not in sql


def test_rows_outside_the_window_or_without_an_arm_are_excluded_and_counted(project, small):
    frame, path = small
    text = path.read_text().splitlines()
    text[1] = text[1].replace(",control,", ",,").replace(",treatment,", ",,")  # no variant
    text[2] = text[2].replace(",control,", ",holdout,").replace(",treatment,", ",holdout,")
    path.write_text("\n".join(text) + "\n")
    plan = _plan(project)
    plan = plan.model_copy(update={"window": plan.window.model_copy(update={"end": dt.date(2026, 11, 26)})})
    result = aggregate(plan, path)
    outside = int((frame.date > "2026-11-26").sum())
    assert result.rows == len(frame)
    assert result.excluded["outside_window"] == outside
    assert result.excluded["no_variant"] + result.excluded["variant_not_in_the_plan"] == \
        2 - int((frame.date.iloc[[0, 1]] > "2026-11-26").sum())
    assert sum(result.units[a] for a in ("control", "treatment")) == len(frame) - sum(result.excluded.values())
    quality = result.data_quality(plan)
    row = next(r for r in quality["metrics"] if r["metric"] == "conversion" and r["arm"] == "control")
    assert row["n"] == row["units"] and row["missing_outcome"] == 0 and row["filtered_out"] == 0


def test_a_parquet_file_of_many_row_groups_gives_the_csv_statistics(project, small):
    """Over Parquet the exclusion counts are pushed into the scan (sqlengine.count_where); each excluded
    row sits in its own row group here, and everything must match the same rows read from CSV."""
    import duckdb

    frame, path = small
    text = path.read_text().splitlines()
    text[1] = text[1].replace(",control,", ",,").replace(",treatment,", ",,")  # no variant
    text[1500] = text[1500].replace(",control,", ",holdout,").replace(",treatment,", ",holdout,")
    path.write_text("\n".join(text) + "\n")
    parquet = path.with_suffix(".parquet")
    duckdb.execute(f"COPY (SELECT * FROM read_csv('{path}')) TO '{parquet}' (FORMAT parquet, ROW_GROUP_SIZE 500)")
    plan = _plan(project)
    plan = plan.model_copy(update={"window": plan.window.model_copy(update={"end": dt.date(2026, 11, 26)})})
    from_csv, from_parquet = aggregate(plan, path), aggregate(plan, parquet, "parquet")
    assert from_parquet.excluded == from_csv.excluded and from_parquet.rows == from_csv.rows == len(frame)
    assert from_csv.excluded["outside_window"] == int((frame.date > "2026-11-26").sum()) > 0
    assert from_parquet.units == from_csv.units and from_parquet.segment_units == from_csv.segment_units
    for arm, metrics in from_csv.overall.items():
        for metric, statistic in metrics.items():
            expected = pd.json_normalize(dataclasses.asdict(statistic)).iloc[0].to_dict()
            found = pd.json_normalize(dataclasses.asdict(from_parquet.overall[arm][metric])).iloc[0].to_dict()
            assert found == pytest.approx(expected, rel=1e-12), (arm, metric)


def test_a_parquet_file_gives_the_same_numbers_to_the_last_bit_run_after_run(project, tmp_path, monkeypatch):
    """Slices of rows, each summed by one thread, added in slice order: threads finishing in another order
    cannot change a bit (an unordered parallel sum did, and `impactbook reproduce` reported it)."""
    import duckdb

    from impactbook.designs import aggregate as module

    path = tmp_path / "large.parquet"
    rng = np.random.default_rng(3)
    n = 400_000
    frame = pd.DataFrame({"user_id": np.arange(n), "variant": rng.choice(["control", "treatment"], n),
                          "platform": rng.choice(["ios", "android", "web"], n),
                          "date": pd.Timestamp("2026-11-23") + pd.to_timedelta(rng.integers(0, 5, n), unit="D"),
                          "pre_revenue": rng.gamma(2, 5, n), "converted": (rng.random(n) < 0.1).astype(int),
                          "sessions": 1 + rng.poisson(2, n)})
    frame["revenue"] = frame.pre_revenue * rng.gamma(4, 0.25, n) + frame.converted * 40
    duckdb.execute(f"COPY (SELECT * FROM frame) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 10000)")
    monkeypatch.setattr(module, "SLICE_ROWS", 30_000)  # 14 slices
    plan = _plan(project)
    results = {repr(dataclasses.astuple(aggregate(plan, path, "parquet"))[:6]) for _ in range(12)}
    assert len(results) == 1
    unsliced = aggregate_source(plan, source_sql(path, "parquet"), duckdb.connect(), pruned=True)  # threads sum freely
    sliced = aggregate(plan, path, "parquet")
    assert sliced.units == unsliced.units and sliced.rows == n
    expected = pd.json_normalize(dataclasses.asdict(unsliced.overall["treatment"]["revenue_per_user"])).iloc[0]
    found = pd.json_normalize(dataclasses.asdict(sliced.overall["treatment"]["revenue_per_user"])).iloc[0]
    assert found.to_dict() == pytest.approx(expected.to_dict(), rel=1e-12)


def test_a_capped_metric_leaves_a_missing_outcome_missing(project, small):
    """LEAST(NULL, cap) is the cap in DuckDB and PostgreSQL: 2,000 blank revenues in the control arm of a
    capped metric were counted as that many units at the cap (no missing outcome), and a +0.14 effect
    read -30.8, REFUTED."""
    frame, path = small
    blank = frame.index[frame.variant == "control"][:200]
    rows = frame.assign(revenue=frame.revenue.astype(object))
    rows.loc[blank, "revenue"] = ""
    rows.assign(date=rows.date.dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    plan = _plan(project)
    result = aggregate(plan, path)
    present = frame.drop(index=blank)
    cap = float(np.percentile(present[present.variant == "control"].revenue, 99.9))
    assert result.caps["revenue_per_user"] == pytest.approx(cap, rel=1e-12)
    for arm, arm_rows in present.groupby("variant"):
        expected = _expected(arm_rows, cap)
        _assert_close({name: result.overall[arm][name] for name in ("revenue_per_user", "revenue_per_session")},
                      {name: expected[name] for name in ("revenue_per_user", "revenue_per_session")})
    quality = {(r["metric"], r["arm"]): r for r in result.data_quality(plan)["metrics"]}
    assert quality[("revenue_per_user", "control")]["missing_outcome"] == len(blank)
    assert quality[("revenue_per_user", "treatment")]["missing_outcome"] == 0


def test_a_timestamp_with_an_offset_falls_on_its_utc_date(project, small):
    """As the README says: days are UTC days on every machine; 23:30 at UTC-5 on the window's last day is
    the next UTC day, outside the window."""
    frame, path = small
    text = frame.assign(date=frame.date.dt.strftime("%Y-%m-%dT12:00:00+00:00"))
    last = text.index[frame.date == frame.date.max()][:3]
    text.loc[last, "date"] = frame.date.max().strftime("%Y-%m-%dT23:30:00-05:00")
    text.to_csv(path, index=False)
    result = aggregate(_plan(project), path)
    assert result.excluded["outside_window"] == 3 and result.rows == len(frame)
