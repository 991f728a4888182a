"""Narrow, swappable backends, each behind a small registry passed in: executors (where runs execute) and
index stores (where the run index lives)."""
