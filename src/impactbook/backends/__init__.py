"""Backends: storage, index store, executor; one narrow interface each, chosen by configuration."""
