"""The PostgreSQL unit of work: one pooled connection, one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Self

from psycopg import Connection, errors
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from metrics_orchestrator.application.ports import DataRefused, TransientDatabaseError
from metrics_orchestrator.application.ports.catalog import CatalogRepository
from metrics_orchestrator.application.ports.changes import (
    NOTIFICATION_QUEUED_CHANNEL,
    RUN_QUEUED_CHANNEL,
    RecordedChanges,
)
from metrics_orchestrator.application.ports.dispatch import DispatchRepository
from metrics_orchestrator.application.ports.events import EventLogRepository
from metrics_orchestrator.application.ports.incidents import (
    IncidentRepository,
    NotificationRepository,
)
from metrics_orchestrator.application.ports.intake import IntakeRepository
from metrics_orchestrator.application.ports.queries import QueryRepository
from metrics_orchestrator.application.ports.runs import RunRepository
from metrics_orchestrator.domain.errors import DomainError
from metrics_orchestrator.infrastructure.postgres.catalog_repository import (
    PostgresCatalogRepository,
)
from metrics_orchestrator.infrastructure.postgres.dispatch_repository import (
    PostgresDispatchRepository,
)
from metrics_orchestrator.infrastructure.postgres.event_log_repository import (
    PostgresEventLogRepository,
)
from metrics_orchestrator.infrastructure.postgres.incident_repository import (
    PostgresIncidentRepository,
    PostgresNotificationRepository,
)
from metrics_orchestrator.infrastructure.postgres.intake_repository import (
    PostgresIntakeRepository,
)
from metrics_orchestrator.infrastructure.postgres.named_queries import query
from metrics_orchestrator.infrastructure.postgres.query_repository import PostgresQueryRepository
from metrics_orchestrator.infrastructure.postgres.run_repository import PostgresRunRepository

_TRANSIENT = (errors.SerializationFailure, errors.DeadlockDetected)


class PostgresUnitOfWork:
    # Declared as the ports so mypy checks each adapter against its Protocol.
    connection: Connection[TupleRow]
    catalog: CatalogRepository
    intake: IntakeRepository
    runs: RunRepository
    events: EventLogRepository
    dispatch: DispatchRepository
    queries: QueryRepository
    incidents: IncidentRepository
    notifications: NotificationRepository
    changes: RecordedChanges

    def __init__(self, pool: ConnectionPool[Connection[TupleRow]]) -> None:
        self._pool = pool
        self._lease: AbstractContextManager[Connection[TupleRow]] | None = None

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        # Plain SQL rather than conn.transaction(): the transaction is always open here (the
        # work before took locks), so this is a savepoint and never a BEGIN/COMMIT. Not
        # released after success (one round trip less per use): a later ROLLBACK TO goes to
        # the newest savepoint of that name, this one.
        conn = self.connection
        conn.execute("SAVEPOINT work")
        try:
            yield
        except errors.UniqueViolation as exc:
            # a concurrent insert of the same row: decided again in a new transaction
            conn.execute("ROLLBACK TO SAVEPOINT work")
            raise TransientDatabaseError(str(exc)) from exc
        except (errors.DataError, errors.IntegrityError) as exc:
            conn.execute("ROLLBACK TO SAVEPOINT work")
            raise DataRefused(str(exc)) from exc
        except DomainError:
            conn.execute("ROLLBACK TO SAVEPOINT work")
            raise

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        # Statements are sent without waiting for each other's results; fetching a result (or
        # leaving the block) waits for everything sent before it. Errors surface there too.
        with self.connection.pipeline():
            yield

    def __enter__(self) -> Self:
        self._lease = self._pool.connection()
        conn = self._lease.__enter__()
        self.connection = conn
        self.changes = RecordedChanges()
        self.catalog = PostgresCatalogRepository(conn)
        self.intake = PostgresIntakeRepository(conn)
        self.runs = PostgresRunRepository(conn)
        self.events = PostgresEventLogRepository(conn)
        self.dispatch = PostgresDispatchRepository(conn)
        self.queries = PostgresQueryRepository(conn)
        self.incidents = PostgresIncidentRepository(conn)
        self.notifications = PostgresNotificationRepository(conn)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._lease is not None
        lease, self._lease = self._lease, None
        failed: BaseException | None = None
        if exc_type is None and (self.changes.queued_runs or self.changes.notifications):
            try:
                self._commit_and_notify()
            except BaseException as error:
                # the lease still ends (rolled back), then the caller sees why
                failed, exc_type, exc, tb = error, type(error), error, error.__traceback__
        try:
            # The pool commits when the block ended normally and rolls back otherwise.
            lease.__exit__(exc_type, exc, tb)
        except _TRANSIENT as commit_error:
            raise TransientDatabaseError(str(commit_error)) from commit_error
        if isinstance(exc, _TRANSIENT):
            raise TransientDatabaseError(str(exc)) from exc
        if failed is not None:
            raise failed

    def _commit_and_notify(self) -> None:
        # The NOTIFY of a transaction that queued runs (the dispatchers) or notifications (the
        # notifiers): PostgreSQL delivers it at the commit, and only if it commits. Sent with
        # the COMMIT, so it costs no round trip.
        conn, changes = self.connection, self.changes
        notify = query("runs.sql", "notify_runs_queued")
        with conn.pipeline():
            if changes.queued_runs:
                conn.execute(notify, {"channel": RUN_QUEUED_CHANNEL})
            if changes.notifications:
                conn.execute(notify, {"channel": NOTIFICATION_QUEUED_CHANNEL})
            conn.commit()
