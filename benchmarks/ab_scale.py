"""A/B analysis at scale: the DuckDB-pushdown engine against the naive approach (pandas loads every
row, then scipy/statsmodels), each in its own process, timing wall clock and peak memory (max RSS).

    python benchmarks/ab_scale.py [--rows 100000000] [--naive-rows 10000000] [--json]

Generates (once, cached in benchmarks/out/) a Parquet exposure table with unit id, variant,
platform, date, pre-period revenue, revenue and a conversion flag, then runs the whole analysis:
SRM, three metrics (conversion, revenue per user with CUPED on pre-period revenue, revenue per
converting user as a ratio metric), overall and for the three platform segments.
Targets (issue 3, 2 cores): 100M rows in <= 15 s and <= 1.5 GiB; at 10M rows >= 3x faster and
>= 5x less peak memory than the naive approach.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def generate(rows: int) -> Path:
    """The cached table, generated in a child process: this parent must stay small, because Linux
    carries a parent's peak RSS over into the children it forks (ru_maxrss survives fork + exec)."""
    path = OUT / f"exposures_{rows}.parquet"
    if not path.exists():
        subprocess.run([sys.executable, __file__, "--child", "generate", str(rows)], check=True)
    return path


def write_table(rows: int) -> Path:
    """Deterministic (hash-based) synthetic exposures, written by DuckDB straight to Parquet."""
    import duckdb

    path = OUT / f"exposures_{rows}.parquet"
    OUT.mkdir(parents=True, exist_ok=True)
    u = lambda salt: f"((hash(i, {salt}) % 1000003) / 1000003.0)"
    treated = "(hash(i, 1) % 2)"
    duckdb.sql(f"""
        COPY (
          SELECT i AS user_id,
                 CASE WHEN {treated} = 1 THEN 'treatment' ELSE 'control' END AS variant,
                 ['ios', 'android', 'web'][1 + CAST(hash(i, 2) % 3 AS INTEGER)] AS platform,
                 DATE '2026-11-23' + CAST(hash(i, 3) % 14 AS INTEGER) AS date,
                 round(40 * {u(4)} * {u(5)}, 2) AS pre_revenue,
                 CAST({u(6)} < 0.10 + 0.006 * {treated} AS INTEGER) AS converted
          FROM range({rows}) t(i)
        ) TO '{path}.tmp' (FORMAT parquet, ROW_GROUP_SIZE 1048576)""")
    duckdb.sql(f"""
        COPY (SELECT *, round(converted * (20 + 60 * {u(7).replace('i,', 'user_id,')}) + 0.8 * pre_revenue *
                              2 * {u(8).replace('i,', 'user_id,')}, 2) AS revenue
              FROM read_parquet('{path}.tmp'))
        TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1048576)""")
    Path(f"{path}.tmp").unlink()
    return path


def plan():
    from impactbook.plan import Plan

    return Plan.model_validate({
        "id": "scale", "title": "scale benchmark", "hypothesis": "h",
        "model_change": {"baseline": "a", "candidate": "b"}, "template": "ab_test", "inputs": {"experiment": "x"},
        "design": {"unit": "user_id", "variant_column": "variant", "expected_split": {"control": 0.5, "treatment": 0.5}},
        "window": {"start": "2026-11-23", "end": "2026-12-06", "time_column": "date"}, "alpha": 0.05, "seed": 1,
        "metrics": [
            {"id": "conversion", "column": "converted", "kind": "proportion", "role": "primary", "direction": "increase"},
            {"id": "revenue_per_user", "column": "revenue", "kind": "mean", "covariate": "pre_revenue",
             "role": "guardrail", "direction": "increase", "margin": -0.02},
            {"id": "revenue_per_converter", "numerator": "revenue", "denominator": "converted", "kind": "ratio",
             "role": "secondary", "direction": "increase"}],
        "segments": {"columns": ["platform"]}})


def engine(path: str) -> dict:
    from impactbook.designs.randomized import analyse_file

    analysis = analyse_file(plan(), Path(path), "parquet")
    return {r.metric: r.effect.difference for r in analysis.results}


def naive(path: str) -> dict:
    """What an analyst does without the engine: load all rows, then scipy/statsmodels per scope."""
    import numpy as np
    import pandas as pd
    import statsmodels.api as sm
    from scipy import stats as sps
    from statsmodels.stats.proportion import test_proportions_2indep

    frame = pd.read_parquet(path)
    out = {}
    scopes = [("overall", frame)] + [(f"platform={p}", g) for p, g in frame.groupby("platform")]
    for scope, data in scopes:
        sps.chisquare(data.variant.value_counts().to_numpy())
        c, t = data[data.variant == "control"], data[data.variant == "treatment"]
        test_proportions_2indep(t.converted.sum(), len(t), c.converted.sum(), len(c), method="wald")
        treated = (data.variant == "treatment").to_numpy(dtype=float)
        x = data.pre_revenue.to_numpy() - data.pre_revenue.mean()
        ols = sm.OLS(data.revenue.to_numpy(), sm.add_constant(np.column_stack([treated, x]))).fit(cov_type="HC0")
        r_c = c.revenue.sum() / c.converted.sum()
        r_t = t.revenue.sum() / t.converted.sum()
        lin_c = (c.revenue - r_c * c.converted) / c.converted.mean()
        lin_t = (t.revenue - r_t * t.converted) / t.converted.mean()
        se = np.sqrt(lin_c.var() / len(c) + lin_t.var() / len(t))
        if scope == "overall":
            out = {"conversion": t.converted.mean() - c.converted.mean(), "revenue_per_user": float(ols.params[1]),
                   "revenue_per_converter": r_t - r_c, "ratio_se": float(se)}
    return out


def measure(kind: str, path: Path) -> dict:
    """Run one approach in a fresh process; wall time and that process's peak RSS."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--child", kind, str(path)], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    output = process.stdout.read()
    if status != 0:
        raise SystemExit(f"{kind} failed on {path.name}")
    return {"kind": kind, "rows": int(path.stem.split("_")[1]), "wall_s": round(wall, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "result": json.loads(output)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--naive-rows", type=int, default=10_000_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.child:
        kind, argument = args.child
        if kind == "generate":
            write_table(int(argument))
        else:
            print(json.dumps(engine(argument) if kind == "engine" else naive(argument)))
        return
    rows = []
    small = generate(args.naive_rows)
    rows += [measure("engine", small), measure("naive", small)]
    if args.rows != args.naive_rows:
        rows.append(measure("engine", generate(args.rows)))
    engine_small, naive_small = rows[0], rows[1]
    for metric in ("conversion", "revenue_per_user", "revenue_per_converter"):
        a, b = engine_small["result"][metric], naive_small["result"][metric]
        assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), f"{metric}: engine {a} != naive {b}"
    summary = {"rows": rows, "speedup_at_naive_rows": round(naive_small["wall_s"] / engine_small["wall_s"], 2),
               "memory_ratio_at_naive_rows": round(naive_small["peak_rss_mib"] / engine_small["peak_rss_mib"], 2),
               "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    for row in rows:
        print(f"{row['kind']:>6} {row['rows']:>11,} rows: {row['wall_s']:6.2f} s, peak {row['peak_rss_mib']:8.1f} MiB")
    print(f"at {args.naive_rows:,} rows: engine {summary['speedup_at_naive_rows']}x faster, "
          f"{summary['memory_ratio_at_naive_rows']}x less peak memory; same effects to 1e-9")


if __name__ == "__main__":
    main()
