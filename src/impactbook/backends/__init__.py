"""Narrow, swappable backends: where runs execute (executors), and later storage and the index store."""
