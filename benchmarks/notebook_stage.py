"""Cost of a notebook stage (issue 12): one call of a stage run as a notebook by Papermill (a fresh kernel,
the Parquet round trip, the harness's memory cells) against the same stage as a function, on the same
frame; the reference is the function call in the same run. The difference is what a notebook stage adds
per batch, nearly all kernel start-up.

    python benchmarks/notebook_stage.py [--rows 6000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "tests" / "designs" / "pipeline_validation"
sys.path.insert(0, str(HERE))

from pipeline_toy_stages import double, frame  # noqa: E402

from impactbook.designs.pipeline_validation.notebook_stage import NotebookStage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = frame(units=args.rows // 5)
    stage = NotebookStage("notebooks/double_stage.ipynb", HERE)
    by_notebook, by_function = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        stage(data)
        by_notebook.append(time.perf_counter() - start)
        start = time.perf_counter()
        double(data)
        by_function.append(time.perf_counter() - start)
    notebook_s, function_s = statistics.median(by_notebook), statistics.median(by_function)
    print(f"{len(data):,} rows: notebook stage median {notebook_s:.2f} s per call (kernel start-up included; kernel "
          f"resident rise {stage.last_peak_mb:.1f} MiB), the same function {function_s * 1000:.2f} ms; "
          f"a notebook stage adds {notebook_s - function_s:.2f} s per call")


if __name__ == "__main__":
    main()
