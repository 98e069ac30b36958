"""The control plane's composition root: builds its whole object graph from settings (the
services, the outputs reader, the consumers, the dispatcher). Nothing else wires the control
plane; the workers have their own root (`worker/bootstrap.py`).

Entry points (interfaces/) reach infrastructure only through this module: what they may use
of it is re-exported below (`__all__`). Nothing is registered globally: a command that wants
to say which database it uses passes `announce`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from uuid import UUID

from psycopg import Connection, ProgrammingError
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.dispatch import Dispatcher
from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.health import HealthService
from metrics_orchestrator.application.incidents import IncidentBook, IncidentQueries
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.notifier import NotificationService, Notifier
from metrics_orchestrator.application.outputs import OutputService
from metrics_orchestrator.application.ports import Clock
from metrics_orchestrator.application.ports.changes import (
    NOTIFICATION_QUEUED_CHANNEL,
    RUN_QUEUED_CHANNEL,
)
from metrics_orchestrator.application.queries import QueryService
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.application.run_logs import RunLogs
from metrics_orchestrator.application.runs import RunOperations, Sweeper
from metrics_orchestrator.domain.model import MetricRun
from metrics_orchestrator.infrastructure.aws.clients import (
    create_s3_client,
    s3_client_from,
    sns_client_from,
    sqs_client_from,
)
from metrics_orchestrator.infrastructure.aws.moto_server import start_moto_server
from metrics_orchestrator.infrastructure.aws.provisioning import provision, provision_worker
from metrics_orchestrator.infrastructure.aws.s3 import S3OutputReader
from metrics_orchestrator.infrastructure.aws.sending import (
    SendFailed,
    aws_failures,
    cli_aws_endpoint,
    projection_update_queue,
)
from metrics_orchestrator.infrastructure.aws.sns import SnsRunRequestPublisher
from metrics_orchestrator.infrastructure.aws.sqs import SqsConsumer
from metrics_orchestrator.infrastructure.clock import SystemClock
from metrics_orchestrator.infrastructure.embedded_postgres import (
    default_data_dir,
    start_embedded_postgres,
)
from metrics_orchestrator.infrastructure.http_sender import HttpNotificationSender
from metrics_orchestrator.infrastructure.local_state import (
    LocalServe,
    embedded_data_dir,
    find_local_serve,
    remove_local_serve,
    write_local_serve,
)
from metrics_orchestrator.infrastructure.logging import configure_logging
from metrics_orchestrator.infrastructure.parquet import PolarsParquetEncoder
from metrics_orchestrator.infrastructure.postgres.database import create_pool
from metrics_orchestrator.infrastructure.postgres.dispatch_repository import (
    PostgresRunQueuedListener,
)
from metrics_orchestrator.infrastructure.postgres.migrations import (
    MigrationError,
    PostgresSchemaProbe,
    migrate,
    rollback_last,
)
from metrics_orchestrator.infrastructure.postgres.unit_of_work import PostgresUnitOfWork
from metrics_orchestrator.infrastructure.prometheus import PrometheusTelemetry
from metrics_orchestrator.infrastructure.settings import (
    LogFormat,
    Settings,
    SettingsError,
    load_settings,
)

__all__ = [
    "Announce",
    "AwsWiring",
    "Container",
    "LogFormat",
    "MigrationError",
    "SendFailed",
    "Settings",
    "SettingsError",
    "UnitOfWorkFactory",
    "aws_failures",
    "bootstrap",
    "build_consumers",
    "build_dispatcher",
    "cli_aws_endpoint",
    "configure_logging",
    "create_s3_client",
    "dashboard_url",
    "default_data_dir",
    "describe_database",
    "find_local_serve",
    "load_settings",
    "migrate",
    "projection_update_queue",
    "record_local_serve",
    "resolve_aws",
    "resolve_database_url",
    "rollback_last",
    "sqs_client_from",
]


Announce = Callable[[str], None]
"""Told a description (no secrets) of the database a command uses (issue 13): the CLI's line."""


def resolve_database_url(
    settings: Settings,
    resources: ExitStack,
    *,
    auto_migrate: bool = True,
    announce: Announce | None = None,
) -> str:
    """The configured database, or the embedded one (started now, stopped with `resources`).

    The embedded database is migrated automatically: it exists for newcomers, who should
    not need to know about `migrate`. A configured database is migrated by its operator.
    """
    if announce is not None:
        announce(describe_database(settings))
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
    intake: IntakeService
    feedback: FeedbackService
    router: EventRouter
    runs: RunOperations
    sweeper: Sweeper
    queries: QueryService
    health: HealthService
    telemetry: PrometheusTelemetry
    outputs: OutputService
    run_logs: RunLogs
    # SPEC §9: incidents as people read them, channels, and the notifier's outbox delivery
    incidents: IncidentQueries
    notifications: NotificationService
    notifier: Notifier
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
    s3_endpoint: Callable[[], str | None],
    resources: ExitStack,
) -> Container:
    uow_factory = UnitOfWorkFactory(pool)
    queries = QueryService(uow_factory, clock)
    incidents = IncidentQueries(uow_factory, clock)
    telemetry = PrometheusTelemetry(gauges=queries.run_gauges, freshness=incidents.gauges)
    book = IncidentBook(public_url=dashboard_url(settings))
    intake = IntakeService(
        uow_factory, clock, settings.output_base_path, telemetry=telemetry, incidents=book
    )
    feedback = FeedbackService(uow_factory, clock, intake, telemetry=telemetry, incidents=book)
    runs = RunOperations(uow_factory, clock, telemetry)
    # Run outputs and logs, read from S3 (`GET /runs/{id}/output`, `/logs`) by a client that
    # is built, its endpoint found, on first use: most processes (CLI commands, tests) never
    # read one.
    reader = S3OutputReader(lambda: s3_client_from(settings, s3_endpoint()))

    def find_run(run_id: UUID) -> MetricRun:
        return runs.get_run(run_id).run

    sender = HttpNotificationSender()
    resources.callback(sender.close)
    return Container(
        settings=settings,
        database_url=url,
        pool=pool,
        uow_factory=uow_factory,
        clock=clock,
        catalog=CatalogService(
            uow_factory, clock, settings.default_required_days, telemetry, incidents=book
        ),
        intake=intake,
        feedback=feedback,
        router=EventRouter(
            uow_factory,
            clock,
            intake,
            feedback,
            telemetry=telemetry,
            max_clock_skew=settings.max_clock_skew,
            incidents=book,
        ),
        runs=runs,
        sweeper=Sweeper(
            uow_factory,
            clock,
            start_timeout=settings.run_start_timeout,
            heartbeat_timeout=settings.run_heartbeat_timeout,
            retry_base_delay=settings.retry_base_delay,
            telemetry=telemetry,
            incidents=book,
        ),
        queries=queries,
        health=HealthService(PostgresSchemaProbe(url)),
        telemetry=telemetry,
        outputs=OutputService(
            find_run, reader, settings.output_bucket, parquet=PolarsParquetEncoder()
        ),
        run_logs=RunLogs(find_run, reader),
        incidents=incidents,
        notifications=NotificationService(
            uow_factory, clock, sender, timeout=settings.notify_timeout
        ),
        notifier=Notifier(
            uow_factory,
            clock,
            sender,
            timeout=settings.notify_timeout,
            retry_base_delay=settings.notify_retry_base_delay,
            poll_interval=settings.sweep_interval,
            listener_factory=lambda: PostgresRunQueuedListener(url, NOTIFICATION_QUEUED_CHANNEL),
        ),
        resources=resources,
    )


def dashboard_url(settings: Settings) -> str:
    """Where people open the dashboard: PUBLIC_URL, else the address `serve` listens on."""
    if settings.public_url:
        return settings.public_url
    return f"http://{settings.http_host}:{settings.http_port}"


def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    database_url: str | None = None,
    aws: AwsWiring | None = None,
    announce: Announce | None = None,
) -> Container:
    """The control plane. `aws`: where `serve` talks to AWS (an embedded emulator's S3 holds
    the outputs); without it, where a CLI command talks to AWS (`cli_aws_endpoint`)."""
    resources = ExitStack()
    try:
        url = database_url or resolve_database_url(settings, resources, announce=announce)
        pool = create_pool(url, max_size=settings.database_pool_size)
        resources.callback(pool.close)
        endpoint = (lambda: aws.endpoint_url) if aws is not None else partial(_cli_s3, settings)
        return _assemble(settings, url, pool, clock or SystemClock(), endpoint, resources)
    except BaseException:
        resources.close()
        raise


def _cli_s3(settings: Settings) -> str | None:
    """Where a process other than `serve` reads S3 (run outputs and logs, `runs logs ID`): as a
    CLI command finds AWS; an unreadable record of the local `serve` means none runs."""
    try:
        return cli_aws_endpoint(settings)
    except SettingsError:
        return settings.aws_endpoint_url


# -- AWS and the long-running service ------------------------------------------------------


@dataclass(frozen=True)
class AwsWiring:
    """Where the service talks to AWS: configured, or an embedded emulator created now."""

    endpoint_url: str | None
    topic_arn: str | None
    projection_update_queue_url: str | None
    run_feedback_queue_urls: tuple[str, ...]
    embedded: bool
    worker_queue_url: str | None = None
    # Embedded mode: the topic the reference worker publishes feedback to (delivered to the
    # run-feedback queue) and the bucket it writes outputs to.
    feedback_topic_arn: str | None = None
    output_bucket: str | None = None
    # Long-poll wait of the consumers; it also bounds how long a stop waits for a receive.
    # The local emulator costs nothing per poll, so it gets short waits and snappy Ctrl-C.
    wait_seconds: int = 20


EMBEDDED_PREFIX = "metrics-orchestrator"
EMBEDDED_WAIT_SECONDS = 1


def resolve_aws(settings: Settings, resources: ExitStack) -> AwsWiring:
    if not settings.uses_embedded_aws:
        return AwsWiring(
            endpoint_url=settings.aws_endpoint_url,
            topic_arn=settings.sns_run_request_topic_arn,
            projection_update_queue_url=settings.sqs_projection_update_queue_url,
            run_feedback_queue_urls=settings.sqs_run_feedback_queue_urls,
            embedded=False,
            wait_seconds=settings.sqs_wait_seconds,
        )
    moto = start_moto_server()
    resources.callback(moto.stop)
    topology = provision(
        sns_client_from(settings, moto.endpoint_url),
        sqs_client_from(settings, moto.endpoint_url),
        prefix=EMBEDDED_PREFIX,
        fifo=False,
        raw_delivery=True,
    )
    worker = provision_worker(
        sns_client_from(settings, moto.endpoint_url),
        s3_client_from(settings, moto.endpoint_url),
        sqs_client_from(settings, moto.endpoint_url),
        topology,
        output_bucket=settings.output_bucket,
    )
    return AwsWiring(
        endpoint_url=moto.endpoint_url,
        topic_arn=topology.topic_arn,
        projection_update_queue_url=topology.projection_update_queue.url,
        run_feedback_queue_urls=(topology.run_feedback_queue.url,),
        embedded=True,
        worker_queue_url=topology.worker_queue.url,
        feedback_topic_arn=worker.feedback_topic_arn,
        output_bucket=worker.output_bucket,
        wait_seconds=min(settings.sqs_wait_seconds, EMBEDDED_WAIT_SECONDS),
    )


def build_dispatcher(container: Container, aws: AwsWiring) -> Dispatcher:
    if aws.topic_arn is None:
        raise SettingsError("SNS_RUN_REQUEST_TOPIC_ARN: required to run the dispatcher")
    settings = container.settings
    publisher = SnsRunRequestPublisher(sns_client_from(settings, aws.endpoint_url), aws.topic_arn)
    url = container.database_url
    return Dispatcher(
        container.uow_factory,
        publisher,
        container.clock,
        max_attempts=settings.dispatch_max_attempts,
        poll_interval=settings.dispatch_poll_interval,
        listener_factory=lambda: PostgresRunQueuedListener(url, RUN_QUEUED_CHANNEL),
        telemetry=container.telemetry,
        incidents=IncidentBook(public_url=dashboard_url(settings)),
    )


def build_consumers(container: Container, aws: AwsWiring) -> list[SqsConsumer]:
    settings = container.settings
    named_urls = [("projection-updates", aws.projection_update_queue_url)] + [
        (f"run-feedback-{n}", url) for n, url in enumerate(aws.run_feedback_queue_urls, 1)
    ]
    consumers = []
    for name, url in dict.fromkeys(named_urls):
        if url is None:
            continue
        source = f"sqs:{name}"

        def handle(messages: Sequence[tuple[str, str]], source: str = source) -> None:
            # one receive, one intake transaction (docs/messaging.md)
            container.router.handle_batch([body for body, _ in messages], source=source)

        consumers.append(
            SqsConsumer(
                sqs_client_from(settings, aws.endpoint_url),
                url,
                batch_handler=handle,
                wait_seconds=aws.wait_seconds,
                visibility_timeout=settings.sqs_visibility_timeout,
                name=name,
            )
        )
    return consumers


# -- The local serve, as the other CLI commands find it ------------------------------------


def record_local_serve(
    settings: Settings, aws: AwsWiring, resources: ExitStack, *, http: bool
) -> Path | None:
    """Write where this local serve listens (removed again with `resources`); None if not local."""
    if not aws.embedded or aws.endpoint_url is None:
        return None
    data_dir = embedded_data_dir(settings)
    state = LocalServe(
        pid=os.getpid(),
        aws_endpoint_url=aws.endpoint_url,
        topic_arn=aws.topic_arn,
        projection_update_queue_url=aws.projection_update_queue_url,
        run_feedback_queue_urls=aws.run_feedback_queue_urls,
        worker_queue_url=aws.worker_queue_url,
        http_url=f"http://{settings.http_host}:{settings.http_port}" if http else None,
    )
    path = write_local_serve(data_dir, state)
    resources.callback(remove_local_serve, data_dir)
    return path


# -- Which database a command uses, said once (issue 13) ----------------------------------


def describe_database(settings: Settings) -> str:
    if settings.database_url is None:
        return f"embedded PostgreSQL, data in {embedded_data_dir(settings)}"
    try:
        parts = conninfo_to_dict(settings.database_url.get_secret_value())
    except ProgrammingError:
        return "the DATABASE_URL database (unparsable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"PostgreSQL {user}{parts.get('host') or 'localhost'}{port}/{parts.get('dbname', '')}"
