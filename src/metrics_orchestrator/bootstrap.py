"""The composition root: builds the whole object graph from settings. Nothing else wires.

Entry points (interfaces/) reach infrastructure only through this module: what they may use
of it is re-exported below (`__all__`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.dispatch import RUN_QUEUED_CHANNEL, Dispatcher
from metrics_orchestrator.application.health import HealthService
from metrics_orchestrator.application.intake import Orchestrator
from metrics_orchestrator.application.outputs import OutputService
from metrics_orchestrator.application.ports import Clock
from metrics_orchestrator.application.queries import QueryService
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.application.runs import FeedbackService, RunOperations, Sweeper
from metrics_orchestrator.infrastructure.aws.clients import (
    create_s3_client,
    s3_client_from,
    sns_client_from,
    sqs_client_from,
)
from metrics_orchestrator.infrastructure.aws.moto_server import start_moto_server
from metrics_orchestrator.infrastructure.aws.provisioning import provision, provision_worker
from metrics_orchestrator.infrastructure.aws.s3 import S3OutputReader
from metrics_orchestrator.infrastructure.aws.sns import SnsRunRequestPublisher
from metrics_orchestrator.infrastructure.aws.sqs import SqsConsumer
from metrics_orchestrator.infrastructure.clock import SystemClock
from metrics_orchestrator.infrastructure.embedded_postgres import (
    default_data_dir,
    start_embedded_postgres,
)
from metrics_orchestrator.infrastructure.logging import configure_logging
from metrics_orchestrator.infrastructure.postgres.database import create_pool
from metrics_orchestrator.infrastructure.postgres.dispatch_repository import (
    PostgresRunQueuedListener,
)
from metrics_orchestrator.infrastructure.postgres.migrations import (
    MigrationError,
    PostgresSchemaProbe,
    migrate,
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
    "AwsWiring",
    "Container",
    "LogFormat",
    "MigrationError",
    "Settings",
    "SettingsError",
    "UnitOfWorkFactory",
    "bootstrap",
    "build_consumers",
    "build_dispatcher",
    "configure_logging",
    "create_s3_client",
    "default_data_dir",
    "load_settings",
    "migrate",
    "projection_update_sender",
    "resolve_aws",
    "resolve_database_url",
    "sqs_client_from",
]


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
    queries: QueryService
    health: HealthService
    telemetry: PrometheusTelemetry
    outputs: OutputService
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
    queries = QueryService(uow_factory, clock)
    telemetry = PrometheusTelemetry(gauges=queries.run_gauges)
    orchestrator = Orchestrator(uow_factory, clock, settings.output_base_path, telemetry=telemetry)
    feedback = FeedbackService(uow_factory, clock, telemetry=telemetry)
    runs = RunOperations(uow_factory, clock)
    return Container(
        settings=settings,
        database_url=url,
        pool=pool,
        uow_factory=uow_factory,
        clock=clock,
        catalog=CatalogService(uow_factory, clock, settings.default_required_days),
        orchestrator=orchestrator,
        feedback=feedback,
        router=EventRouter(uow_factory, clock, orchestrator, feedback, telemetry=telemetry),
        runs=runs,
        sweeper=Sweeper(
            uow_factory,
            clock,
            start_timeout=settings.run_start_timeout,
            heartbeat_timeout=settings.run_heartbeat_timeout,
            retry_base_delay=settings.retry_base_delay,
            telemetry=telemetry,
        ),
        queries=queries,
        health=HealthService(PostgresSchemaProbe(url)),
        telemetry=telemetry,
        outputs=build_output_service(settings, runs, settings.aws_endpoint_url),
        resources=resources,
    )


def build_output_service(
    settings: Settings, runs: RunOperations, endpoint_url: str | None
) -> OutputService:
    """Reads run outputs from S3 (`GET /runs/{id}/output`); the client connects on first use."""
    reader = S3OutputReader(lambda: s3_client_from(settings, endpoint_url))
    return OutputService(lambda run_id: runs.get_run(run_id).run, reader, settings.output_bucket)


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

        def handle(body: str, _message_id: str, source: str = source) -> None:
            container.router.handle(body, source=source)

        consumers.append(
            SqsConsumer(
                sqs_client_from(settings, aws.endpoint_url),
                url,
                handle,
                wait_seconds=aws.wait_seconds,
                visibility_timeout=settings.sqs_visibility_timeout,
                name=name,
            )
        )
    return consumers


def projection_update_sender(settings: Settings) -> Callable[[str], str]:
    """Send one raw body to the configured projection-update queue; returns the message id."""
    url = settings.sqs_projection_update_queue_url
    if url is None:
        raise SettingsError("SQS_PROJECTION_UPDATE_QUEUE_URL: not set")
    client = sqs_client_from(settings, settings.aws_endpoint_url)

    def send(body: str) -> str:
        return client.send_message(QueueUrl=url, MessageBody=body)["MessageId"]

    return send
