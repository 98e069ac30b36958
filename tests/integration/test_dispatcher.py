"""The dispatcher (SPEC §5.4) on real PostgreSQL, publishing to the moto server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Self
from uuid import UUID

import psycopg
import pytest
from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from metrics_orchestrator.application.dispatch import (
    Dispatcher,
    DispatchReport,
    dispatch_backoff,
)
from metrics_orchestrator.application.ports.changes import RUN_QUEUED_CHANNEL
from metrics_orchestrator.application.ports.dispatch import (
    PublishOutcome,
    RunRequestMessage,
    RunRequestPublisher,
)
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.infrastructure.aws.provisioning import Topology
from metrics_orchestrator.infrastructure.aws.sns import SnsRunRequestPublisher
from metrics_orchestrator.infrastructure.postgres.dispatch_repository import (
    PostgresRunQueuedListener,
)
from metrics_orchestrator.infrastructure.postgres.unit_of_work import PostgresUnitOfWork
from tests.aws_fixtures import receive_messages
from tests.conftest import PostgresUnitOfWorkFactory
from tests.support import MutableClock

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

Pool = ConnectionPool[Connection[TupleRow]]


# --- seeding ------------------------------------------------------------------------------


def seed_metric(pool: Pool, code: str = "ratio.a_to_b") -> str:
    metric_id = f"metric-{uuid.uuid4().hex[:8]}"
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO metrics (id, code, expression_type, expression_json, required_days)"
            " VALUES (%s, %s, 'window_op', %s, 7)",
            (metric_id, code, Jsonb({"op": "sma", "series": {"series_code": "A"}, "window": 3})),
        )
    return metric_id


def seed_queued_run(
    pool: Pool,
    metric_id: str,
    metric_code: str,
    *,
    queued_at: datetime,
    not_before: datetime | None = None,
) -> UUID:
    run_id = uuid.uuid4()
    payload = {
        "type": "metric_run_requested",
        "schema": "1",
        "runId": str(run_id),
        "attempt": 1,
        "requestedAt": queued_at.isoformat(),
        "metricCode": metric_code,
        "inputs": [{"datasetId": "d1", "seriesCode": "A"}],
        "catalog": {"datasets": {"d1": {"manifestPath": "m.json", "updateId": str(uuid.uuid4())}}},
    }
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, inputs_fingerprint,"
            " request_payload, not_before, created_at, queued_at, updated_at)"
            " VALUES (%s, %s, 'queued', 'automatic', 1, %s, %s, %s, %s, %s, %s)",
            (
                run_id,
                metric_id,
                uuid.uuid4().hex,
                Jsonb(payload),
                not_before or queued_at,
                queued_at,
                queued_at,
                queued_at,
            ),
        )
    return run_id


def run_row(pool: Pool, run_id: UUID) -> dict[str, Any]:
    with pool.connection() as conn:
        cursor = conn.execute("SELECT * FROM metric_runs WHERE id = %s", (run_id,))
        row = cursor.fetchone()
        assert row is not None
        names = [column.name for column in cursor.description or []]
        return dict(zip(names, row, strict=True))


def statuses(pool: Pool, run_ids: Sequence[UUID]) -> list[str]:
    return [run_row(pool, run_id)["status"] for run_id in run_ids]


# --- fakes and helpers --------------------------------------------------------------------


class RecordingPublisher:
    """Delegates to a real publisher and remembers what it published (optionally slowly)."""

    def __init__(self, inner: RunRequestPublisher, delay: float = 0.0) -> None:
        self._inner = inner
        self._delay = delay
        self._lock = threading.Lock()
        self.published: list[RunRequestMessage] = []

    def publish_batch(self, messages: Sequence[RunRequestMessage]) -> list[PublishOutcome]:
        outcomes = self._inner.publish_batch(messages)
        time.sleep(self._delay)
        with self._lock:
            ok = {o.run_id for o in outcomes if o.ok}
            self.published.extend(m for m in messages if m.run_id in ok)
        return outcomes


class ExplodingPublisher:
    def publish_batch(self, messages: Sequence[RunRequestMessage]) -> list[PublishOutcome]:
        raise ConnectionError("network unreachable")


class SimulatedCrash(Exception):
    pass


class CrashBeforeCommit(PostgresUnitOfWork):
    """A unit of work whose `mark_dispatched` dies: publish happened, the commit never does."""

    def __enter__(self) -> Self:
        super().__enter__()

        def crash(*args: Any, **kwargs: Any) -> int:
            raise SimulatedCrash("process died after publishing")

        self.dispatch.mark_dispatched = crash  # type: ignore[method-assign]
        return self


class FlakyDatabase:
    """A uow factory whose first `failures` units of work cannot connect."""

    def __init__(self, inner: PostgresUnitOfWorkFactory, failures: int) -> None:
        self._inner = inner
        self.remaining = failures

    def __call__(self) -> PostgresUnitOfWork:
        if self.remaining > 0:
            self.remaining -= 1
            raise psycopg.OperationalError("connection refused")
        return self._inner()


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def publisher(sns_client: SNSClient, topology: Topology) -> SnsRunRequestPublisher:
    return SnsRunRequestPublisher(sns_client, topology.topic_arn)


def received_bodies(sqs: SQSClient, topology: Topology, count: int) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in receive_messages(sqs, topology.worker_queue.url, count)]


# --- tests --------------------------------------------------------------------------------


def test_publishes_stored_payloads_and_marks_runs_dispatched(
    pool: Pool,
    uow_factory: PostgresUnitOfWorkFactory,
    publisher: SnsRunRequestPublisher,
    sqs_client: SQSClient,
    topology: Topology,
    clock: MutableClock,
) -> None:
    metric_id = seed_metric(pool, "ratio.dispatch")
    queued_at = clock.now() - timedelta(minutes=1)
    run_ids = [
        seed_queued_run(pool, metric_id, "ratio.dispatch", queued_at=queued_at) for _ in "abc"
    ]
    dispatcher = Dispatcher(uow_factory, publisher, clock, max_attempts=3)

    report = dispatcher.dispatch_once()

    assert report == DispatchReport(published=3)
    stored = {str(r): run_row(pool, r)["request_payload"] for r in run_ids}
    bodies = received_bodies(sqs_client, topology, 3)
    assert {b["runId"]: b for b in bodies} == stored
    for run_id in run_ids:
        row = run_row(pool, run_id)
        assert row["status"] == "dispatched"
        assert row["dispatched_at"] == clock.now()
        assert row["updated_at"] == clock.now()
        assert row["dispatch_attempts"] == 1
    assert dispatcher.dispatch_once() == DispatchReport()


def test_claims_the_oldest_due_runs_first_up_to_the_batch_size(
    pool: Pool, uow_factory: PostgresUnitOfWorkFactory, clock: MutableClock
) -> None:
    metric_id = seed_metric(pool)
    base = clock.now() - timedelta(hours=1)
    newest = seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=base + timedelta(minutes=3))
    oldest = seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=base)
    # A retry that became due before the others were queued goes first.
    due_retry = seed_queued_run(
        pool,
        metric_id,
        "ratio.a_to_b",
        queued_at=base + timedelta(minutes=5),
        not_before=base - timedelta(minutes=1),
    )
    publisher = RecordingPublisher(AlwaysOk())

    report = Dispatcher(uow_factory, publisher, clock, max_attempts=3, batch_size=2).dispatch_once()

    assert report.published == 2
    assert [m.run_id for m in publisher.published] == [due_retry, oldest]
    assert statuses(pool, [due_retry, oldest, newest]) == ["dispatched", "dispatched", "queued"]


class AlwaysOk:
    def publish_batch(self, messages: Sequence[RunRequestMessage]) -> list[PublishOutcome]:
        return [PublishOutcome(m.run_id, ok=True) for m in messages]


def test_a_run_is_not_published_before_its_not_before(
    pool: Pool, uow_factory: PostgresUnitOfWorkFactory, clock: MutableClock
) -> None:
    metric_id = seed_metric(pool)
    run_id = seed_queued_run(
        pool,
        metric_id,
        "ratio.a_to_b",
        queued_at=clock.now(),
        not_before=clock.now() + timedelta(seconds=30),
    )
    publisher = RecordingPublisher(AlwaysOk())
    dispatcher = Dispatcher(uow_factory, publisher, clock, max_attempts=3)

    assert dispatcher.dispatch_once() == DispatchReport()
    assert statuses(pool, [run_id]) == ["queued"]

    clock.advance(timedelta(seconds=30))
    assert dispatcher.dispatch_once() == DispatchReport(published=1)
    assert [m.run_id for m in publisher.published] == [run_id]


def test_publish_failures_back_off_then_give_up(
    pool: Pool,
    uow_factory: PostgresUnitOfWorkFactory,
    sns_client: SNSClient,
    topology: Topology,
    clock: MutableClock,
) -> None:
    metric_id = seed_metric(pool)
    run_id = seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=clock.now())
    missing_topic = SnsRunRequestPublisher(sns_client, topology.topic_arn + "-gone")
    dispatcher = Dispatcher(
        uow_factory,
        missing_topic,
        clock,
        max_attempts=3,
        backoff_base=timedelta(seconds=2),
        backoff_max=timedelta(seconds=3),
    )

    assert dispatcher.dispatch_once() == DispatchReport(failed=1)
    row = run_row(pool, run_id)
    assert (row["status"], row["dispatch_attempts"]) == ("queued", 1)
    assert "NotFound" in row["last_dispatch_error"]
    assert row["not_before"] == clock.now() + timedelta(seconds=2)
    assert dispatcher.dispatch_once() == DispatchReport()  # not due yet

    clock.advance(timedelta(seconds=2))
    assert dispatcher.dispatch_once() == DispatchReport(failed=1)
    row = run_row(pool, run_id)
    assert row["dispatch_attempts"] == 2
    assert row["not_before"] == clock.now() + timedelta(seconds=3)  # capped

    clock.advance(timedelta(seconds=3))
    assert dispatcher.dispatch_once() == DispatchReport(given_up=1)
    row = run_row(pool, run_id)
    assert row["status"] == "failed"
    assert row["dispatch_attempts"] == 3
    assert row["completed_at"] == clock.now()
    assert row["error"].startswith("dispatch gave up after 3 attempt(s)")
    assert "NotFound" in row["error"]
    assert dispatcher.dispatch_once() == DispatchReport()


def test_a_publisher_that_raises_counts_as_a_failed_attempt(
    pool: Pool, uow_factory: PostgresUnitOfWorkFactory, clock: MutableClock
) -> None:
    metric_id = seed_metric(pool)
    run_id = seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=clock.now())

    report = Dispatcher(uow_factory, ExplodingPublisher(), clock, max_attempts=1).dispatch_once()

    assert report == DispatchReport(given_up=1)
    row = run_row(pool, run_id)
    assert row["status"] == "failed"
    assert "ConnectionError: network unreachable" in row["error"]


def test_concurrent_dispatchers_never_publish_a_run_twice(
    pool: Pool,
    uow_factory: PostgresUnitOfWorkFactory,
    publisher: SnsRunRequestPublisher,
    sqs_client: SQSClient,
    topology: Topology,
    clock: MutableClock,
) -> None:
    metric_id = seed_metric(pool)
    run_ids = [
        seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=clock.now()) for _ in range(30)
    ]
    recorders = [RecordingPublisher(publisher, delay=0.05) for _ in range(2)]
    dispatchers = [
        Dispatcher(uow_factory, recorder, clock, max_attempts=3, batch_size=4)
        for recorder in recorders
    ]
    start = threading.Barrier(2)

    def drain(dispatcher: Dispatcher) -> None:
        start.wait()
        while dispatcher.dispatch_once().claimed:
            pass

    threads = [threading.Thread(target=drain, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    published = Counter(m.run_id for r in recorders for m in r.published)
    assert published == Counter(run_ids)
    assert all(r.published for r in recorders), "both dispatchers should have taken part"
    assert set(statuses(pool, run_ids)) == {"dispatched"}
    bodies = received_bodies(sqs_client, topology, 30)
    assert Counter(b["runId"] for b in bodies) == Counter(str(r) for r in run_ids)


def test_crash_after_publish_republishes_the_same_run_and_attempt(
    pool: Pool,
    uow_factory: PostgresUnitOfWorkFactory,
    publisher: SnsRunRequestPublisher,
    sqs_client: SQSClient,
    topology: Topology,
    clock: MutableClock,
) -> None:
    metric_id = seed_metric(pool)
    run_id = seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=clock.now())
    crashing = Dispatcher(
        lambda: CrashBeforeCommit(uow_factory.pool), publisher, clock, max_attempts=3
    )

    with pytest.raises(SimulatedCrash):
        crashing.dispatch_once()

    row = run_row(pool, run_id)
    assert (row["status"], row["dispatch_attempts"]) == ("queued", 0)
    first = received_bodies(sqs_client, topology, 1)

    assert Dispatcher(uow_factory, publisher, clock, max_attempts=3).dispatch_once().published == 1

    second = received_bodies(sqs_client, topology, 1)
    assert first == second
    assert (first[0]["runId"], first[0]["attempt"]) == (str(run_id), 1)
    assert statuses(pool, [run_id]) == ["dispatched"]


def test_notify_wakes_an_idle_dispatcher_at_once(
    pool: Pool,
    database_url: str,
    uow_factory: PostgresUnitOfWorkFactory,
    clock: MutableClock,
) -> None:
    metric_id = seed_metric(pool)
    publisher = RecordingPublisher(AlwaysOk())
    dispatcher = Dispatcher(
        uow_factory,
        publisher,
        clock,
        max_attempts=3,
        listener_factory=lambda: PostgresRunQueuedListener(database_url, RUN_QUEUED_CHANNEL),
        poll_interval=timedelta(seconds=60),
    )
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,))
    thread.start()
    try:
        assert dispatcher.idle.wait(timeout=5)
        run_id = seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=clock.now())
        time.sleep(0.3)
        assert publisher.published == []  # without a notification it would wait a minute
        started = time.monotonic()
        with uow_factory() as uow:
            uow.changes.created(RunStatus.QUEUED)  # committed, it wakes the dispatcher

        assert wait_until(lambda: statuses(pool, [run_id]) == ["dispatched"], timeout=3)
        assert time.monotonic() - started < 2
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_without_listen_the_dispatcher_polls(
    pool: Pool, uow_factory: PostgresUnitOfWorkFactory, clock: MutableClock
) -> None:
    metric_id = seed_metric(pool)
    dispatcher = Dispatcher(
        uow_factory, AlwaysOk(), clock, max_attempts=3, poll_interval=timedelta(seconds=0.2)
    )
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,))
    thread.start()
    try:
        assert dispatcher.idle.wait(timeout=5)
        run_id = seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=clock.now())
        assert wait_until(lambda: statuses(pool, [run_id]) == ["dispatched"], timeout=3)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_run_survives_database_errors(
    pool: Pool, uow_factory: PostgresUnitOfWorkFactory, clock: MutableClock
) -> None:
    metric_id = seed_metric(pool)
    run_id = seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=clock.now())
    flaky = FlakyDatabase(uow_factory, failures=2)
    dispatcher = Dispatcher(
        flaky, AlwaysOk(), clock, max_attempts=3, poll_interval=timedelta(seconds=0.2)
    )
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,))
    thread.start()
    try:
        assert wait_until(lambda: statuses(pool, [run_id]) == ["dispatched"], timeout=5)
        assert flaky.remaining == 0
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_run_survives_an_unreachable_listen_database(
    pool: Pool, uow_factory: PostgresUnitOfWorkFactory, clock: MutableClock
) -> None:
    metric_id = seed_metric(pool)
    dispatcher = Dispatcher(
        uow_factory,
        AlwaysOk(),
        clock,
        max_attempts=3,
        listener_factory=lambda: PostgresRunQueuedListener(
            "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", RUN_QUEUED_CHANNEL
        ),
        poll_interval=timedelta(seconds=0.2),
    )
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,))
    thread.start()
    try:
        run_id = seed_queued_run(pool, metric_id, "ratio.a_to_b", queued_at=clock.now())
        assert wait_until(lambda: statuses(pool, [run_id]) == ["dispatched"], timeout=5)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (1, timedelta(seconds=2)),
        (2, timedelta(seconds=4)),
        (4, timedelta(seconds=16)),
        (30, timedelta(minutes=5)),
        (10_000, timedelta(minutes=5)),
    ],
)
def test_dispatch_backoff_doubles_up_to_the_cap(failures: int, expected: timedelta) -> None:
    assert dispatch_backoff(failures, timedelta(seconds=2), timedelta(minutes=5)) == expected
