"""Ports: what the application needs from the outside world, as Protocols.

Infrastructure implements them (PostgreSQL, AWS); unit tests may use fakes. Repositories are
reached through a unit of work, which is one database transaction. Each repository Protocol
and the data it reads and writes live in a module of this package; the use cases import
them from here and nothing here imports a use case.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

from metrics_orchestrator.application.ports.changes import RecordedChanges, TransitionCounter
from metrics_orchestrator.domain.clock import Clock as Clock
from metrics_orchestrator.domain.errors import StaleRun

if TYPE_CHECKING:
    from metrics_orchestrator.application.ports.catalog import CatalogRepository
    from metrics_orchestrator.application.ports.dispatch import DispatchRepository
    from metrics_orchestrator.application.ports.events import EventLogRepository
    from metrics_orchestrator.application.ports.incidents import (
        IncidentRepository,
        NotificationRepository,
    )
    from metrics_orchestrator.application.ports.intake import IntakeRepository
    from metrics_orchestrator.application.ports.queries import QueryRepository
    from metrics_orchestrator.application.ports.runs import RunRepository

T = TypeVar("T")


class TransientDatabaseError(Exception):
    """A conflict between concurrent transactions (deadlock, serialization): safe to retry."""


class DataRefused(Exception):
    """The database refused what a write would store (its data, not a conflict): retrying
    cannot help; inside a savepoint, only that savepoint's work is lost."""


class UnitOfWork(Protocol):
    """One transaction: commits when the block ends normally, rolls back on an exception.

    `changes` records what the transaction changed; committing a transaction that queued runs
    wakes the dispatcher (one NOTIFY, sent by the unit of work, never by a use case).
    """

    changes: RecordedChanges
    catalog: CatalogRepository
    intake: IntakeRepository
    runs: RunRepository
    events: EventLogRepository
    dispatch: DispatchRepository
    queries: QueryRepository
    incidents: IncidentRepository
    notifications: NotificationRepository

    def savepoint(self) -> AbstractContextManager[None]:
        """Work inside is rolled back alone if it fails: a refusal of the data is raised as
        DataRefused, a conflict as TransientDatabaseError, a DomainError as itself."""
        ...

    def pipelined(self) -> AbstractContextManager[None]:
        """Writes inside may be sent together, without waiting for each other's results."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


def in_transaction(
    uow_factory: UnitOfWorkFactory,
    work: Callable[[UnitOfWork], T],
    *,
    attempts: int = 5,
    on_retry: Callable[[int, Exception], None] | None = None,
    telemetry: TransitionCounter | None = None,
) -> T:
    """Run `work` in one transaction, retrying a bounded number of times on transient conflicts.

    Concurrent intake of overlapping events can deadlock or fail serialization in rare
    interleavings; such an event must not fail permanently (SPEC §5.3.5), so it is retried
    from scratch in a new transaction with a short, growing pause. So is work whose status
    write found a run moved on meanwhile (StaleRun): decided again on the new facts.
    After the commit, the run transitions the transaction recorded go to `telemetry`.
    """
    for attempt in range(1, attempts + 1):
        try:
            with uow_factory() as uow:
                result = work(uow)
        except (TransientDatabaseError, StaleRun) as exc:
            if attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            time.sleep(0.005 * 2**attempt)
        else:
            if telemetry is not None:
                uow.changes.publish(telemetry)
            for effect in uow.changes.after_commit:
                effect()
            return result
    raise AssertionError("unreachable")  # pragma: no cover
