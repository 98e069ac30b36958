"""The composition root: builds the whole object graph from settings. Nothing else wires."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.intake import Orchestrator
from metrics_orchestrator.application.ports import Clock
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.application.runs import FeedbackService, RunOperations, Sweeper
from metrics_orchestrator.infrastructure.clock import SystemClock
from metrics_orchestrator.infrastructure.embedded_postgres import start_embedded_postgres
from metrics_orchestrator.infrastructure.postgres.database import create_pool
from metrics_orchestrator.infrastructure.postgres.migrations import migrate
from metrics_orchestrator.infrastructure.postgres.unit_of_work import PostgresUnitOfWork
from metrics_orchestrator.infrastructure.settings import Settings


def resolve_database_url(
    settings: Settings, resources: ExitStack, *, auto_migrate: bool = True
) -> str:
    """The configured database, or the embedded one (started now, stopped with `resources`).

    The embedded database is migrated automatically: it exists for newcomers, who should
    not need to know about `migrate`. A configured database is migrated by its operator.
    """
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    embedded = start_embedded_postgres(settings.embedded_data_dir)
    resources.callback(embedded.stop)
    if auto_migrate:
        migrate(embedded.url)
    return embedded.url


@dataclass
class UnitOfWorkFactory:
    pool: ConnectionPool[Connection[TupleRow]]

    def __call__(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool)


@dataclass
class Container:
    """Everything an entry point needs, built once. Close it to release resources."""

    settings: Settings
    database_url: str
    pool: ConnectionPool[Connection[TupleRow]]
    uow_factory: UnitOfWorkFactory
    clock: Clock
    catalog: CatalogService
    orchestrator: Orchestrator
    feedback: FeedbackService
    router: EventRouter
    runs: RunOperations
    sweeper: Sweeper
    resources: ExitStack = field(default_factory=ExitStack)

    def close(self) -> None:
        self.resources.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _assemble(
    settings: Settings,
    url: str,
    pool: ConnectionPool[Connection[TupleRow]],
    clock: Clock,
    resources: ExitStack,
) -> Container:
    uow_factory = UnitOfWorkFactory(pool)
    orchestrator = Orchestrator(uow_factory, clock, settings.output_base_path)
    feedback = FeedbackService(uow_factory, clock)
    return Container(
        settings=settings,
        database_url=url,
        pool=pool,
        uow_factory=uow_factory,
        clock=clock,
        catalog=CatalogService(uow_factory, clock, settings.default_required_days),
        orchestrator=orchestrator,
        feedback=feedback,
        router=EventRouter(uow_factory, clock, orchestrator, feedback),
        runs=RunOperations(uow_factory, clock),
        sweeper=Sweeper(
            uow_factory,
            clock,
            start_timeout=settings.run_start_timeout,
            heartbeat_timeout=settings.run_heartbeat_timeout,
            retry_base_delay=settings.retry_base_delay,
        ),
        resources=resources,
    )


def bootstrap(
    settings: Settings, *, clock: Clock | None = None, database_url: str | None = None
) -> Container:
    resources = ExitStack()
    try:
        url = database_url or resolve_database_url(settings, resources)
        pool = create_pool(url, max_size=settings.database_pool_size)
        resources.callback(pool.close)
        return _assemble(settings, url, pool, clock or SystemClock(), resources)
    except BaseException:
        resources.close()
        raise
