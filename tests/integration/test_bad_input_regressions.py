"""Issue 10, "What escapes today": one named regression test per class, through the real
queue on the moto server, the real router and a real PostgreSQL (SPEC §5.8).

Each body must end as exactly one `event_log` row and be deleted from the queue; the
rejection names the offending field and keeps the raw body.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest
from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.infrastructure.aws.sqs import SqsConsumer
from tests.factories import event_rows, run_row, seed_run
from tests.integration.intake_helpers import update_body
from tests.integration.messaging_helpers import queue_depth
from tests.support import MutableClock

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

OUTPUT = "s3://metrics-output/metrics/{code}/"


@pytest.fixture
def router(uow_factory: UnitOfWorkFactory, clock: MutableClock) -> EventRouter:
    intake = IntakeService(uow_factory, clock, lambda code: OUTPUT.format(code=code))
    return EventRouter(uow_factory, clock, intake, FeedbackService(uow_factory, clock, intake))


@pytest.fixture
def queue_url(sqs_client: SQSClient, aws_prefix: str) -> str:
    return sqs_client.create_queue(QueueName=f"{aws_prefix}-bad-input")["QueueUrl"]


class Queue:
    """Sends one body and consumes it with the service's consumer and router."""

    def __init__(self, sqs: SQSClient, url: str, router: EventRouter, conn: Connection[Any]):
        self.sqs, self.url, self.router, self.conn = sqs, url, router, conn
        self.outcomes: list[EventStatus] = []

    def deliver(self, body: str) -> dict[str, Any]:
        """The event_log row the body left; asserts it left exactly one and was deleted."""
        before = len(event_rows(self.conn))
        self.sqs.send_message(QueueUrl=self.url, MessageBody=body)

        def handle(message_body: str, _message_id: str) -> None:
            self.outcomes.append(self.router.handle(message_body, source="sqs:test").status)

        consumer = SqsConsumer(self.sqs, self.url, handle, wait_seconds=1, visibility_timeout=1)
        assert consumer.poll_once() == 1
        assert queue_depth(self.sqs, self.url) == (0, 0), "the message was not deleted"
        rows = event_rows(self.conn)
        assert len(rows) == before + 1, "not exactly one event_log row"
        newest: dict[str, Any] = max(rows, key=lambda r: r["id"])
        assert newest["raw_body"] is None or isinstance(newest["raw_body"], str)
        return newest


@pytest.fixture
def queue(
    sqs_client: SQSClient, queue_url: str, router: EventRouter, conn: Connection[TupleRow]
) -> Queue:
    return Queue(sqs_client, queue_url, router, conn)


def _rejected(row: dict[str, Any], *fragments: str) -> None:
    assert row["status"] == "rejected", row
    for fragment in fragments:
        assert fragment in row["error"], row["error"]


def _running_run(conn: Connection[TupleRow]) -> UUID:
    return seed_run(conn, status=RunStatus.RUNNING, now=datetime(2025, 11, 11, 11, 58, tzinfo=UTC))


def test_non_finite_numbers_are_rejected_and_recorded(
    queue: Queue, conn: Connection[TupleRow]
) -> None:
    run_id = _running_run(conn)
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = (
            f'{{"type": "metric_run_heartbeat", "runId": "{run_id}", "progress": {literal}, '
            '"ts": "2025-11-11T12:00:00Z"}'
        )
        row = queue.deliver(body)
        _rejected(row, "$.progress", "non-finite number")
        assert row["event_type"] == "metric_run_heartbeat"
        assert row["payload"] is None
        assert row["raw_body"] == body
    assert run_row(conn, run_id)["progress"] is None


def test_a_reason_quoting_a_key_that_holds_nul_is_recorded(queue: Queue) -> None:
    # The reason names the JSON path through that key; PostgreSQL text cannot hold NUL.
    body = '{"event": "projection_update", "dataset_id": "d1", "k": {"\\u0000": Infinity}}'
    row = queue.deliver(body)
    assert row["status"] == "rejected"
    assert "key contains a NUL character" in row["error"]
    assert "non-finite number" in row["error"]
    assert "\x00" not in row["error"]
    assert row["raw_body"] == body


def test_an_integer_literal_of_thousands_of_digits_is_rejected(queue: Queue) -> None:
    body = '{"event": "projection_update", "dataset_id": "d1", "n": ' + "9" * 5000 + "}"
    _rejected(queue.deliver(body), "$.n", "integer out of the signed 64-bit range")


def test_a_row_count_beyond_bigint_is_rejected_and_the_run_is_unchanged(
    queue: Queue, conn: Connection[TupleRow]
) -> None:
    run_id = _running_run(conn)
    completed = {
        "type": "metric_run_completed",
        "runId": str(run_id),
        "status": "SUCCESS",
        "rowCount": 100000000000000000000,
    }
    _rejected(queue.deliver(json.dumps(completed)), "rowCount")
    # the largest bigint is accepted
    completed["rowCount"] = 2**63 - 1
    assert queue.deliver(json.dumps(completed))["status"] == "processed"
    assert run_row(conn, run_id)["row_count"] == 2**63 - 1


@pytest.mark.parametrize("field", ["dataset_id", "version_manifest_path"])
def test_a_ten_thousand_character_identifier_or_path_is_rejected(queue: Queue, field: str) -> None:
    body = json.loads(update_body("d1", "v1"))
    body[field] = "x" * 10_000
    row = queue.deliver(json.dumps(body))
    _rejected(row, field)
    # the key is the body's digest: a 10,000-character key would not fit its index
    assert row["event_key"].startswith("projection_update:")


@pytest.mark.parametrize(
    "occurred_at", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "1969-12-31T23:59Z"]
)
def test_an_occurred_at_outside_1970_9999_in_utc_is_rejected(
    queue: Queue, occurred_at: str
) -> None:
    row = queue.deliver(_update_occurring_at(occurred_at))
    _rejected(row, "occurred_at: must be between 1970-01-01 and 9999-12-31 in UTC")


def test_a_heartbeat_ts_beyond_year_9999_in_utc_is_rejected(
    queue: Queue, conn: Connection[TupleRow]
) -> None:
    run_id = _running_run(conn)
    beat = {"type": "metric_run_heartbeat", "runId": str(run_id), "ts": "9999-12-31T23:59:59-23:59"}
    _rejected(queue.deliver(json.dumps(beat)), "ts: must be between")
    assert run_row(conn, run_id)["last_heartbeat_at"] is None


def test_an_occurred_at_in_the_far_future_is_rejected(queue: Queue) -> None:
    row = queue.deliver(update_body("d1", "v1", occurred_at=datetime(9999, 12, 30, tzinfo=UTC)))
    _rejected(row, "occurred_at: is in the future")
    assert row["event_key"] == "d1:datasets/d1/versions/v1/manifest.json"


def test_json_nested_900_levels_is_rejected(queue: Queue) -> None:
    body = '{"event": "projection_update", "x": ' + "[" * 900 + "]" * 900 + "}"
    _rejected(queue.deliver(body), "nested deeper than 64 levels")


def test_an_update_with_an_ambiguous_key_is_rejected_naming_the_dataset_id(queue: Queue) -> None:
    first = json.loads(update_body("d1", "v1"))
    first["version_manifest_path"] = "v1:manifest.json"
    second = {**first, "dataset_id": "d1:v1", "version_manifest_path": "manifest.json"}

    assert queue.deliver(json.dumps(first))["status"] == "processed"
    row = queue.deliver(json.dumps(second))
    _rejected(row, "dataset_id", "A-Z a-z 0-9 _ . -")


def test_an_occurred_at_a_year_ahead_is_rejected_and_replays_once_its_time_came(
    queue: Queue, router: EventRouter, clock: MutableClock
) -> None:
    """Issue 15, fault 4: a producer clock ahead must not make its version freshest for good."""
    ahead = clock.now() + timedelta(days=365)
    row = queue.deliver(update_body("d1", "v1", occurred_at=ahead))
    _rejected(row, "occurred_at: is in the future")
    # within MAX_CLOCK_SKEW (default 5 minutes) is accepted
    near = queue.deliver(update_body("d1", "v2", occurred_at=clock.now() + timedelta(minutes=4)))
    assert near["status"] == "processed"

    clock.set(ahead)
    assert router.replay(row["event_key"]).status is EventStatus.PROCESSED


def _update_occurring_at(text: str) -> str:
    document = json.loads(update_body("d1", "v1"))
    document["occurred_at"] = text
    return json.dumps(document)
