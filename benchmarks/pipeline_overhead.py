"""Overhead of the pipeline_validation harness over running the bare stages directly (issue 12).

Both contenders do the same work on the shipped ranking example: baseline and candidate unperturbed and
every declared perturbation at every magnitude, seed and replicate, scoring the downstream metric. The bare
loop does only that; the harness adds boundary contracts at every stage, paired bootstraps, attribution and
its bookkeeping. Latency/memory measurement and drift are left out of the ratio (they are extra measured
work by design, timed separately). Alternated, median of `--repeats`. Target: ratio <= 1.2.

    python benchmarks/pipeline_overhead.py [--repeats 5] [--queries 300] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread for the model's predict: less noise on a shared machine

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from impactbook.designs.pipeline_validation import perturb, validate
from impactbook.designs.pipeline_validation.harness import Pipeline, _replacement
from impactbook.designs.pipeline_validation.stages import PipelineRun
from impactbook.designspecs.pipeline_validation import PipelineValidationDesign
from impactbook.examples import ranking_pipeline as example

PLAN = Path(__file__).resolve().parents[1] / "src/impactbook/scaffold/pipeline_validation.yaml"


def bare(design: PipelineValidationDesign, frame: pd.DataFrame) -> None:
    """The stages called directly, in a plain loop: what a script without the harness would run."""
    pipeline = Pipeline(design)

    def run(data, functions):
        for stage in design.stages:
            data = functions[stage.name](data)
        return data

    outputs = {"baseline": run(frame, pipeline.functions(swapped=set())), "candidate": run(frame, pipeline.functions())}
    for metric in pipeline.metrics.values():
        metric(outputs["baseline"]), metric(outputs["candidate"])
    candidate = PipelineRun(outputs["candidate"], {s.name: None for s in design.stages}, {})
    for spec in design.perturbations:
        replace = _replacement(pipeline, spec, candidate) if spec.kind != "ablation" or spec.replacement != "mean" else {}
        for magnitude in spec.magnitudes:
            for seed in spec.seeds:
                for replicate in range(spec.replicates):
                    data = perturb.apply(frame, spec, magnitude, seed * 1000 + replicate, design.unit)
                    pipeline.metrics[spec.metric](run(data, pipeline.functions(replace=replace)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = yaml.safe_load(PLAN.read_text())
    data["drift"] = []
    design = PipelineValidationDesign.model_validate(data)
    frame = example.generate(queries=args.queries)
    bare(design, frame)  # train both models once, warm caches for both contenders
    times = {"bare": [], "harness": []}
    for _ in range(args.repeats):
        for name, work in (("bare", lambda: bare(design, frame)),
                           ("harness", lambda: validate(design, frame, measure_costs=False))):
            start = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - start)
    start = time.perf_counter()
    validate(design, frame)
    with_costs = time.perf_counter() - start
    ratios = [h / b for h, b in zip(times["harness"], times["bare"])]
    report = {"rows": len(frame), "repeats": args.repeats, "bare_s": times["bare"], "harness_s": times["harness"],
              "median_ratio": statistics.median(ratios),
              "ratio_of_medians": statistics.median(times["harness"]) / statistics.median(times["bare"]),
              "harness_with_costs_s": with_costs, "python": platform.python_version()}
    print(json.dumps(report, indent=1) if args.json else
          f"{len(frame):,} rows; bare median {statistics.median(times['bare']):.2f} s, harness median "
          f"{statistics.median(times['harness']):.2f} s; median ratio {report['median_ratio']:.3f}, ratio of medians "
          f"{report['ratio_of_medians']:.3f} (target <= 1.2); harness with latency/memory measurement {with_costs:.2f} s")


if __name__ == "__main__":
    main()
