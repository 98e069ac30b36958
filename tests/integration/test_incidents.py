"""Incidents and notifications end to end on real PostgreSQL with a real local HTTP receiver
(SPEC §9): opened and resolved by their causes, one per (kind, subject), one notification per
change and channel, signed, delivered at least once, retried, then undeliverable."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.incidents import IncidentBook, IncidentQueries
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.notifier import NotificationService, Notifier
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.ports.incidents import ChannelSettings
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.application.runs import Sweeper
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.incidents import ChannelFormat, IncidentKind
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.infrastructure.http_sender import HttpNotificationSender
from tests.factories import seed_run, seed_update
from tests.receiver import Receiver, running_receiver
from tests.support import MutableClock

PUBLIC_URL = "https://dash.example.test"
SECRET = "s3cr3t-for-tests"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as served:
        yield served


@pytest.fixture
def sender() -> Iterator[HttpNotificationSender]:
    client = HttpNotificationSender()
    yield client
    client.close()


class Plane:
    """The use cases wired as bootstrap wires them, on one database and one clock."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, clock: MutableClock, sender: HttpNotificationSender
    ) -> None:
        book = IncidentBook(public_url=PUBLIC_URL)
        self.clock = clock
        self.intake = IntakeService(
            uow_factory, clock, lambda code: f"s3://out/metrics/{code}/", incidents=book
        )
        self.feedback = FeedbackService(uow_factory, clock, self.intake, incidents=book)
        self.router = EventRouter(uow_factory, clock, self.intake, self.feedback, incidents=book)
        self.sweeper = Sweeper(
            uow_factory,
            clock,
            start_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(minutes=5),
            retry_base_delay=timedelta(seconds=30),
            incidents=book,
        )
        self.incidents = IncidentQueries(uow_factory, clock)
        self.notifications = NotificationService(
            uow_factory, clock, sender, timeout=timedelta(seconds=2)
        )
        self.notifier = Notifier(
            uow_factory,
            clock,
            sender,
            timeout=timedelta(seconds=2),
            retry_base_delay=timedelta(seconds=30),
            poll_interval=timedelta(seconds=1),
        )

    def complete(self, run_id: UUID, *, succeeded: bool, error: str = "boom") -> None:
        body: dict[str, Any] = {
            "type": "metric_run_completed",
            "runId": str(run_id),
            "status": "SUCCESS" if succeeded else "FAILURE",
        }
        if not succeeded:
            body["error"] = error
        self.router.handle(json.dumps(body), source="test")


@pytest.fixture
def plane(
    uow_factory: UnitOfWorkFactory, clock: MutableClock, sender: HttpNotificationSender
) -> Plane:
    return Plane(uow_factory, clock, sender)


def json_channel(receiver: Receiver, **overrides: Any) -> ChannelSettings:
    fields: dict[str, Any] = {
        "name": "ops",
        "url": receiver.url,
        "format": ChannelFormat.JSON,
        "secret": SECRET,
        "kinds": None,
        "metrics": None,
    }
    return ChannelSettings(**(fields | overrides))


def final_failure(conn: Connection[TupleRow], plane: Plane, *, max_attempts: int = 1) -> UUID:
    """A run of the seeded metric that fails on its first attempt, with `max_attempts`."""
    conn.execute("UPDATE metrics SET max_attempts = %s", (max_attempts,))
    run_id = seed_run(conn, status=RunStatus.RUNNING, now=plane.clock.now())
    plane.complete(run_id, succeeded=False)
    plane.sweeper.sweep_once()
    return run_id


def incidents(conn: Connection[TupleRow]) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT * FROM incidents ORDER BY id")
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def deliveries(conn: Connection[TupleRow]) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT channel, change, state FROM notification_deliveries ORDER BY created_at, id"
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


# --- opening, counting, resolving -----------------------------------------------------------


def test_a_final_failure_opens_one_incident_counted_and_a_success_resolves_it(
    conn: Connection[TupleRow], plane: Plane
) -> None:
    first = final_failure(conn, plane)
    second = final_failure(conn, plane)

    [incident] = incidents(conn)
    assert (incident["kind"], incident["subject"], incident["count"]) == (
        "run_failed",
        "ratio.a_to_b",
        2,
    )
    assert incident["resolved_at"] is None
    assert "failed on attempt 1, no attempt left: boom" in incident["summary"]
    linked = {r[0] for r in conn.execute("SELECT run_id FROM incident_occurrences").fetchall()}
    assert linked == {first, second}

    success = seed_run(conn, status=RunStatus.RUNNING, now=plane.clock.now())
    plane.complete(success, succeeded=True)

    [resolved] = incidents(conn)
    assert resolved["resolved_at"] is not None
    assert resolved["resolution"] == f"run {success} succeeded"
    # the next final failure is a new incident
    final_failure(conn, plane)
    assert [i["resolved_at"] is None for i in incidents(conn)] == [False, True]


def test_a_failure_with_attempts_left_opens_nothing(
    conn: Connection[TupleRow], plane: Plane
) -> None:
    final_failure(conn, plane, max_attempts=2)

    assert incidents(conn) == []


def test_a_rejected_event_opens_an_incident_and_dismissing_it_resolves_it(
    conn: Connection[TupleRow], plane: Plane
) -> None:
    routed = plane.router.handle("{not json", source="test")
    assert routed.event_key is not None
    plane.router.handle("{not json", source="test")  # the same body again: counted

    [incident] = incidents(conn)
    assert (incident["kind"], incident["subject"], incident["count"]) == (
        "event_rejected",
        routed.event_key,
        2,
    )
    plane.router.dismiss(routed.event_key, "garbage from a test")

    [resolved] = incidents(conn)
    assert resolved["resolution"] == "dismissed: garbage from a test"


def test_a_late_dataset_opens_on_the_sweep_and_resolves_when_its_data_arrives(
    conn: Connection[TupleRow], plane: Plane, clock: MutableClock
) -> None:
    seed_update(conn, "d1", received_at=clock.now() - timedelta(hours=3))
    conn.execute(
        "UPDATE datasets SET expected_every = interval '1 hour', grace = interval '30 minutes'"
        " WHERE id = 'd1'"
    )
    board = plane.incidents.freshness(datasets=["d1"])
    assert board.datasets["d1"].state == "late"

    plane.sweeper.sweep_once()
    plane.sweeper.sweep_once()  # evaluated again: still the one incident, not counted

    [incident] = incidents(conn)
    assert (incident["kind"], incident["subject"], incident["count"]) == ("dataset_late", "d1", 1)
    assert "expected every PT1H + grace PT30M" in incident["summary"]

    body = {
        "event": "projection_update",
        "dataset_id": "d1",
        "bucket": "ingestor-datasets",
        "version_manifest_path": "datasets/d1/versions/v9/manifest.json",
        "projections_path": "datasets/d1/projections",
    }
    plane.intake.ingest(decode_event(json.dumps(body)), source="test", received_at=clock.now())

    [resolved] = incidents(conn)
    assert resolved["resolved_at"] == clock.now()
    assert plane.incidents.freshness(datasets=["d1"]).datasets["d1"].state == "ok"


def test_an_overdue_metric_opens_and_a_fresh_success_resolves_it(
    conn: Connection[TupleRow], plane: Plane, clock: MutableClock
) -> None:
    conn.execute("UPDATE metrics SET max_data_age = interval '2 hours'")
    conn.execute("UPDATE metrics SET created_at = %s", (clock.now() - timedelta(days=1),))

    plane.sweeper.sweep_once()

    [incident] = incidents(conn)
    assert (incident["kind"], incident["subject"]) == ("metric_overdue", "ratio.a_to_b")
    assert "no successful run since registration" in incident["summary"]

    run_id = seed_run(conn, status=RunStatus.RUNNING, now=clock.now())
    plane.complete(run_id, succeeded=True)

    [resolved] = incidents(conn)
    assert resolved["resolved_at"] is not None


# --- notifications --------------------------------------------------------------------------


def test_opening_and_resolving_post_signed_json_to_the_receiver(
    conn: Connection[TupleRow], plane: Plane, receiver: Receiver
) -> None:
    plane.notifications.configure([json_channel(receiver)])
    final_failure(conn, plane)
    final_failure(conn, plane)  # counted: no new notification
    assert plane.notifier.deliver_once().delivered == 1
    success = seed_run(conn, status=RunStatus.RUNNING, now=plane.clock.now())
    plane.complete(success, succeeded=True)
    assert plane.notifier.deliver_once().delivered == 1

    opened, resolved = receiver.received
    for request in (opened, resolved):
        digest = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-signature-256"] == f"sha256={digest}"
        assert request.headers["content-type"] == "application/json"
    assert opened.document["type"] == "incident.opened"
    assert resolved.document["type"] == "incident.resolved"
    assert opened.document["id"] != resolved.document["id"]
    incident = resolved.document["incident"]
    assert set(incident) == {
        "id",
        "kind",
        "subject",
        "opened_at",
        "resolved_at",
        "count",
        "summary",
        "url",
    }
    assert (incident["kind"], incident["subject"], incident["count"]) == (
        "run_failed",
        "ratio.a_to_b",
        2,
    )
    assert incident["url"] == f"{PUBLIC_URL}/ui/incidents/{incident['id']}"
    assert opened.document["incident"]["resolved_at"] is None
    assert incident["resolved_at"] is not None
    # both rows were created at the same clock time: their order by id is random
    assert sorted(deliveries(conn)) == [
        ("ops", "incident.opened", "delivered"),
        ("ops", "incident.resolved", "delivered"),
    ]


def test_slack_channels_get_a_text_and_filters_choose_the_channels(
    conn: Connection[TupleRow], plane: Plane, receiver: Receiver
) -> None:
    plane.notifications.configure(
        [
            json_channel(receiver, name="slack", format=ChannelFormat.SLACK, secret=None),
            json_channel(receiver, name="other-team", metrics=("sales.*",)),
            json_channel(receiver, name="events-only", kinds=(IncidentKind.EVENT_REJECTED,)),
        ]
    )
    final_failure(conn, plane)
    plane.notifier.deliver_once()

    [posted] = receiver.received
    assert "x-signature-256" not in posted.headers
    text = posted.document["text"]
    assert set(posted.document) == {"text"}
    assert "run_failed ratio.a_to_b" in text
    assert f"<{PUBLIC_URL}/ui/incidents/" in text


def test_a_receiver_answering_500_is_retried_with_backoff_then_delivered(
    conn: Connection[TupleRow], plane: Plane, receiver: Receiver, clock: MutableClock
) -> None:
    plane.notifications.configure([json_channel(receiver)])
    receiver.status = 500
    final_failure(conn, plane)

    assert plane.notifier.deliver_once().failed == 1
    assert plane.notifier.deliver_once().claimed == 0  # not due before its backoff
    clock.advance(timedelta(seconds=31))
    assert plane.notifier.deliver_once().failed == 1
    clock.advance(timedelta(seconds=31))
    assert plane.notifier.deliver_once().claimed == 0  # the second wait is 60 s
    receiver.status = 200
    clock.advance(timedelta(seconds=30))
    assert plane.notifier.deliver_once().delivered == 1

    ids = {r.document["id"] for r in receiver.received}
    assert len(receiver.received) == 3
    assert len(ids) == 1  # the delivery id is stable across tries
    [(state, attempts, result)] = conn.execute(
        "SELECT state, attempts, last_result FROM notification_deliveries"
    ).fetchall()
    assert (state, attempts, result) == ("delivered", 3, "HTTP 200: ok")


def test_a_receiver_down_for_a_day_makes_the_delivery_undeliverable(
    conn: Connection[TupleRow], plane: Plane, clock: MutableClock
) -> None:
    with running_receiver() as gone:
        url = gone.url
    plane.notifications.configure(
        [ChannelSettings("down", url, ChannelFormat.JSON, None, None, None)]
    )
    final_failure(conn, plane)

    tries = 0
    while deliveries(conn)[0][2] == "pending":
        report = plane.notifier.deliver_once()
        tries += report.claimed
        clock.advance(timedelta(hours=1))
        assert tries < 40
    assert deliveries(conn)[0][2] == "undeliverable"
    # doubling from 30 s, at most 1 h apart, within 24 h: 8 tries to reach 1 h, then hourly
    assert 20 <= tries <= 30
    [channel] = plane.notifications.channels()
    assert (channel.undeliverable, channel.last_state) == (1, "undeliverable")


def test_notify_test_posts_at_once_and_records_the_result(
    conn: Connection[TupleRow], plane: Plane, receiver: Receiver
) -> None:
    plane.notifications.configure([json_channel(receiver)])

    result = plane.notifications.test("ops")

    assert result.ok
    [posted] = receiver.received
    assert posted.document["type"] == "test"
    assert posted.headers["x-signature-256"].startswith("sha256=")
    assert deliveries(conn) == [("ops", "test", "delivered")]
    [view] = plane.notifications.channels()
    assert view.has_secret
    assert SECRET not in repr(view)


# --- replicas side by side, and a receiver that hangs --------------------------------------


def test_notifiers_side_by_side_post_each_notification_once(
    conn: Connection[TupleRow],
    uow_factory: UnitOfWorkFactory,
    plane: Plane,
    receiver: Receiver,
    sender: HttpNotificationSender,
) -> None:
    plane.notifications.configure([json_channel(receiver)])
    for n in range(12):
        plane.router.handle(f"{{broken {n}", source="test")  # 12 incidents, 12 notifications
    replicas = [Plane(uow_factory, plane.clock, sender).notifier for _ in range(3)]
    barrier = threading.Barrier(len(replicas))

    def drain(notifier: Notifier) -> None:
        barrier.wait()
        while notifier.deliver_once().claimed:
            pass

    threads = [threading.Thread(target=drain, args=(n,)) for n in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    per_delivery = Counter(r.document["id"] for r in receiver.received)
    assert len(per_delivery) == 12
    assert set(per_delivery.values()) == {1}
    assert {state for _, _, state in deliveries(conn)} == {"delivered"}


def test_sweepers_side_by_side_open_one_incident_and_one_notification(
    conn: Connection[TupleRow],
    uow_factory: UnitOfWorkFactory,
    plane: Plane,
    receiver: Receiver,
    sender: HttpNotificationSender,
    clock: MutableClock,
) -> None:
    plane.notifications.configure([json_channel(receiver)])
    conn.execute("UPDATE datasets SET expected_every = interval '1 hour'")
    conn.execute("UPDATE datasets SET created_at = %s", (clock.now() - timedelta(days=1),))
    sweepers = [Plane(uow_factory, clock, sender).sweeper for _ in range(4)]
    barrier = threading.Barrier(len(sweepers))

    def sweep(sweeper: Sweeper) -> None:
        barrier.wait()
        for _ in range(3):
            sweeper.sweep_once()

    threads = [threading.Thread(target=sweep, args=(s,)) for s in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    opened = [(i["kind"], i["subject"]) for i in incidents(conn)]
    assert sorted(opened) == [("dataset_late", "d1"), ("dataset_late", "d2")]
    assert Counter(change for _, change, _ in deliveries(conn)) == {"incident.opened": 2}


def test_intake_keeps_going_while_the_receiver_hangs(
    conn: Connection[TupleRow], plane: Plane, receiver: Receiver, clock: MutableClock
) -> None:
    plane.notifications.configure([json_channel(receiver)])
    receiver.hang.set()
    plane.router.handle("{broken", source="test")
    stop = threading.Event()
    notifier = threading.Thread(target=plane.notifier.run, args=(stop,))
    notifier.start()
    try:
        assert receiver.hanging.wait(10), "the notifier never reached the receiver"
        for n in range(20):
            body = {
                "event": "projection_update",
                "dataset_id": "d1",
                "bucket": "ingestor-datasets",
                "version_manifest_path": f"datasets/d1/versions/v{n}/manifest.json",
                "projections_path": "datasets/d1/projections",
            }
            plane.router.handle(json.dumps(body), source="test")
            final_failure(conn, plane)
        # every update was taken while the one post is still held by the receiver
        assert receiver.hanging.is_set()
        assert not receiver.received
        processed = conn.execute(
            "SELECT count(*) FROM event_log WHERE event_type = 'projection_update'"
            " AND status = 'processed'"
        ).fetchone()
        assert processed == (20,)
    finally:
        receiver.release()
        stop.set()
        notifier.join(30)
    assert receiver.received  # delivered once the receiver answered
