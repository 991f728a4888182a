"""Observational estimators at scale (issue 11): a logit propensity score, Hajek IPW for the ATE and the
ATT and the doubly robust AIPW on 1M units x 20 covariates, with standard errors from the stacked
estimating equations. Target: <= 30 s. Reference: statsmodels' TreatmentEffect (ipw for both estimands,
aipw) on the same data, whose GMM covariance comes after a Nelder-Mead pass over every parameter; it is
timed on the first `--reference-rows` units (our estimators on the same units give the same-data ratio)
and, when that is smaller than `--rows`, extrapolated linearly in the units to the full size.

    python benchmarks/observational.py [--rows 1000000] [--covariates 20] [--reference-rows 100000]
                                       [--blas-threads N]

These are tall, skinny products (n x 21): on a loaded machine a multi-threaded OpenBLAS can spend more time
waiting for its threads than computing; `--blas-threads 1` (threadpoolctl) shows that, for both sides.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from impactbook.stats.observational import aipw, ipw, propensity_score


def data(rows: int, covariates: int, seed: int = 11):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, covariates))
    beta = rng.normal(0, 0.15, covariates)  # scores stay inside statsmodels' clip of [0.01, 0.99]
    treated = (rng.random(rows) < 1 / (1 + np.exp(-(x @ beta - 0.3)))).astype(float)
    outcome = 1.0 + 2.0 * treated + x @ rng.normal(0, 1, covariates) + rng.normal(size=rows)
    return x, treated, outcome


def ours(x, treated, outcome):
    start = time.perf_counter()
    score = propensity_score(treated, x)
    results = (ipw(outcome, score, "ATE"), ipw(outcome, score, "ATT"), aipw(outcome, score))
    return time.perf_counter() - start, results


def statsmodels_reference(x, treated, outcome):
    import statsmodels.api as sm
    from statsmodels.treatment.treatment_effects import TreatmentEffect

    start = time.perf_counter()
    design = sm.add_constant(x)
    effect = TreatmentEffect(sm.OLS(outcome, design), treated, results_select=sm.Logit(treated, design).fit(disp=0))
    results = (effect.ipw(), effect.ipw(effect_group=1), effect.aipw())
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--covariates", type=int, default=20)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--blas-threads", type=int, default=None, help="limit BLAS threads (default: OpenBLAS's own)")
    args = parser.parse_args()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    x, treated, outcome = data(args.rows, args.covariates)
    full_s, full = ours(x, treated, outcome)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    threads = args.blas_threads or "default"
    print(f"BLAS threads: {threads}. {args.rows:,} units x {args.covariates} covariates: score + IPW (ATE, ATT) + AIPW with their errors in "
          f"{full_s:.2f} s (target <= 30 s), peak RSS {peak:.2f} GiB; ATE {full[0].estimate:.4f} "
          f"(IPW) {full[2].estimate:.4f} (AIPW), ATT {full[1].estimate:.4f}, true 2")
    n = min(args.reference_rows, args.rows)
    subset = (x[:n], treated[:n], outcome[:n])
    small_s, small = ours(*subset)
    reference_s, reference = statsmodels_reference(*subset)
    print(f"same {n:,} units: ours {small_s:.2f} s, statsmodels TreatmentEffect {reference_s:.2f} s: "
          f"{reference_s / small_s:.1f}x faster")
    for name, a, b in zip(("IPW ATE", "IPW ATT", "AIPW ATE"), small, reference):
        print(f"  {name}: estimate {a.estimate:.8f} vs {b.effect[0]:.8f}, standard error {a.standard_error:.8f} vs "
              f"{b.sd[0]:.8f} (relative differences {abs(a.estimate / b.effect[0] - 1):.1e}, "
              f"{abs(a.standard_error / b.sd[0] - 1):.1e})")
    if n < args.rows:
        print(f"statsmodels extrapolated to {args.rows:,} units: {reference_s * args.rows / n:.0f} s "
              f"({reference_s * args.rows / n / full_s:.0f}x our full-size time)")


if __name__ == "__main__":
    main()
