"""The `pipeline_validation` design: run a multi-stage pipeline's baseline and candidate, unperturbed and
under preregistered perturbations; check every boundary contract, latency and memory budget, downstream
tolerance and drift threshold; end each check in a verdict and a standard `results` row.

Data flow, one module each: perturb -> stages (run + boundaries; notebook_stage: a notebook run by
Papermill) -> budgets (timing, memory) -> metrics (paired bootstrap) -> attribution -> drift_tables (sorted
samples; DuckDB for categories) -> checks (verdicts, rows) -> harness.
"""

from .harness import Validation, validate

__all__ = ["Validation", "validate"]
