"""Errors the domain raises. Interfaces map them to exit codes and HTTP statuses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class DomainError(Exception):
    """Base class of every error that is the caller's fault, not the system's."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one input field, located by its JSON path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(DomainError):
    """Input failed validation; carries every problem found, not only the first."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid input")


class IllegalTransition(DomainError):
    """A run was asked to move to a status the lifecycle table does not allow."""


class NotFound(DomainError):
    """The named entity does not exist."""


class Conflict(DomainError):
    """The request is valid but conflicts with the current state."""


class NotLatestAttempt(Conflict):
    """A manual retry named an attempt whose chain already has a newer one (SPEC §5.6)."""

    def __init__(self, run_id: object, attempt: int, latest_id: object, latest_attempt: int):
        self.latest_id = latest_id
        self.latest_attempt = latest_attempt
        super().__init__(
            f"run {run_id} is attempt {attempt}, but its chain already has attempt "
            f"{latest_attempt} ({latest_id}); retry the latest attempt, {latest_id}, instead"
        )


class StaleRun(Exception):
    """A status write found a run no longer in the status it was decided for (SPEC §5.5).

    Raised inside a transaction, it rolls it back; `in_transaction` then runs the work again
    from fresh facts, so the outcome is that of one of the two racing changes, never a mix.
    """
