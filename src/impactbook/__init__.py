"""impactbook: reproducible, auditable impact assessments of model changes."""

__version__ = "0.1.0"
