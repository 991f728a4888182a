"""The error hierarchy: every failure a user can act on names the file, the field and the fix.

The CLI turns these into one line and a distinct exit code; tracebacks only with --debug.
"""

from __future__ import annotations


class ImpactbookError(Exception):
    """Base class. `where` is a file (optionally with :line), `field` a dotted path into it."""

    exit_code = 1
    located = False  # True when the message already names its file and field (each of several errors, per line)

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None,
                 hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.field = field
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.where, self.field) if p and not self.located]
        text = ": ".join([*parts, self.message])
        return f"{text} ({self.hint})" if self.hint else text


class ProjectError(ImpactbookError):
    """No impactbook project here, or its layout is broken."""


class PlanError(ImpactbookError):
    """A plan file is malformed or violates the plan schema."""


class PlanNotFrozenError(PlanError):
    """A run was asked for a plan that has never been frozen."""


class PlanChangedError(PlanError):
    """The plan on disk differs from its latest frozen version."""


class CatalogError(ImpactbookError):
    """catalog.yaml is malformed or lacks an entry."""


class InputError(ImpactbookError):
    """A pinned input is missing, unreadable or does not match its pin."""


class LedgerError(ImpactbookError):
    """The ledger is unreadable or its hash chain is broken."""


class RunNotFoundError(ImpactbookError):
    """No run with the given id."""


class StorageError(ImpactbookError):
    """The file system refused: no space left, permission denied, read-only. Nothing is half-written;
    the next command finishes or recovers whatever was interrupted."""


class VerifyError(ImpactbookError):
    """Artifacts or ledger entries do not match their recorded hashes."""

    exit_code = 3
