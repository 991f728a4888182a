"""Interrupted time series (issue 11 item 2): each estimator against the statsmodels call it is checked
against, on the same data in the same run, and the whole design (both estimators, placebos, one fit per
series, DuckDB aggregation) on the demo's daily series; then the aggregation of a row-level file (one row
per session) in DuckDB against pandas reading and grouping it.

- structural: impactbook.stats.interrupted_time_series.structural_counterfactual (standardize, fit, forecast,
  joint forecast covariance, Ljung-Box) vs statsmodels UnobservedComponents fit + get_forecast alone;
- segmented: segmented_regression (numpy least squares + Newey-West) vs statsmodels OLS
  .fit(cov_type="HAC") + t_test of the average effect.

    python benchmarks/its.py [--pre 728] [--post 28] [--repeat 5] [--rows 2000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # one BLAS thread for both sides: on a shared machine threads are noise

import numpy as np  # noqa: E402 (after the thread settings)
import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402

from impactbook.demo import generate_its_data
from impactbook.designs.interrupted_time_series import analyse_file, series_grouping, series_table
from impactbook.designs.quasi_experimental import aggregate_file
from impactbook.plan import load_plan
from impactbook.stats.interrupted_time_series import (fourier_terms, newey_west_lags, segmented_regression,
                                                      structural_counterfactual, structural_model)
from impactbook.yamlio import dump_yaml, load_yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "src/impactbook/scaffold/interrupted_time_series.yaml"
SEASONS = [7, 365.25]


def timed(function, repeat: int) -> float:
    """The median wall time of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def direct_structural(y: np.ndarray, spend: np.ndarray, pre: int):
    """The reference: statsmodels alone on the same standardized data (fit and forecast, nothing else)."""
    z = (y[:pre] - y[:pre].mean()) / y[:pre].std()
    x = (spend - spend[:pre].mean()) / spend[:pre].std()
    fitted = structural_model(z, SEASONS, 3, x[:pre], False, True).fit(maxiter=500, disp=False)
    return fitted.get_forecast(len(y) - pre, exog=x[pre:]).summary_frame()


def direct_segmented(y: np.ndarray, spend: np.ndarray, pre: int):
    t = np.arange(len(y), dtype=float)
    after = (t >= pre).astype(float)
    design = np.column_stack([np.ones_like(t), t, after, (t - pre) * after, fourier_terms(t, SEASONS, 3), spend])
    fit = sm.OLS(y, design).fit(cov_type="HAC", cov_kwds={"maxlags": newey_west_lags(len(y))}, use_t=True)
    contrast = np.zeros(design.shape[1])
    contrast[2], contrast[3] = 1, np.mean(t[pre:] - pre)
    return fit.t_test(contrast)


def session_rows(daily: Path, rows: int, target: Path) -> Path:
    """A row-level file (one row per session, converted 0/1) with the daily file's dates and regions."""
    frame = pd.read_csv(daily)
    rng = np.random.default_rng(7)
    picked = frame.iloc[rng.integers(0, len(frame), rows)]
    sessions = pd.DataFrame({"date": picked.date.to_numpy(), "region": picked.region.to_numpy(),
                             "conversion": (rng.random(rows) < picked.conversion.to_numpy()).astype(np.int8),
                             "revenue_per_session": np.round(picked.revenue_per_session.to_numpy(), 2),
                             "marketing_spend": picked.marketing_spend.to_numpy()})
    sessions.to_csv(target, index=False)
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pre", type=int, default=728)
    parser.add_argument("--post", type=int, default=28)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2_000_000, help="row-level file for the aggregation (0: skip)")
    args = parser.parse_args()
    start = dt.date(2026, 11, 30)
    folder = Path(tempfile.mkdtemp(prefix="its-bench-"))
    daily = generate_its_data(folder / "daily.csv", start, args.post, pre_days=args.pre)
    plan_data = load_yaml(EXAMPLE, RuntimeError, str(EXAMPLE))
    plan_data["window"]["end"] = start + dt.timedelta(days=args.post - 1)
    dump_yaml(plan_data, folder / "plan.yaml")
    plan = load_plan(folder / "plan.yaml")
    frame = pd.read_csv(daily).groupby("date")[["conversion", "marketing_spend"]].mean()
    y, spend = frame.conversion.to_numpy(), frame.marketing_spend.to_numpy()[:, None]
    pre = args.pre

    ours_structural = timed(lambda: structural_counterfactual(y, pre, SEASONS, 3, spend), args.repeat)
    reference_structural = timed(lambda: direct_structural(y, spend, pre), args.repeat)
    ours_segmented = timed(lambda: segmented_regression(y, pre, SEASONS, 3, spend), max(args.repeat, 20))
    reference_segmented = timed(lambda: direct_segmented(y, spend, pre), max(args.repeat, 20))
    design = timed(lambda: analyse_file(plan, daily, "csv"), 1)
    print(f"series: {pre} + {args.post} daily periods, 3 regions pooled, seasonality {SEASONS}, 1 regressor")
    print(f"structural counterfactual: {ours_structural:.3f} s vs statsmodels UnobservedComponents fit + forecast "
          f"{reference_structural:.3f} s (ratio {ours_structural / reference_structural:.2f})")
    print(f"segmented regression + HAC: {1000 * ours_segmented:.2f} ms vs statsmodels OLS HAC + t_test "
          f"{1000 * reference_segmented:.2f} ms (ratio {ours_segmented / reference_segmented:.2f})")
    print(f"the whole design (2 metrics x 2 estimators, {plan.design.placebos} placebos each, 3 series): {design:.1f} s")
    if args.rows:
        sessions = session_rows(daily, args.rows, folder / "sessions.csv")
        engine = timed(lambda: series_table(plan, aggregate_file(
            sessions, "csv", lambda kinds: series_grouping(plan, kinds))[0]), args.repeat)
        naive = timed(lambda: pd.read_csv(sessions).groupby(["region", "date"])[
            ["conversion", "revenue_per_session", "marketing_spend"]].agg(["sum", "count"]), args.repeat)
        print(f"aggregation of {args.rows:,} session rows to sums and counts per region and day: DuckDB "
              f"{engine:.2f} s vs pandas read_csv + groupby {naive:.2f} s (ratio {engine / naive:.2f})")


if __name__ == "__main__":
    main()
