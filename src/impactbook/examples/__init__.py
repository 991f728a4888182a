"""Shipped examples the demo runs and the docs point to."""
