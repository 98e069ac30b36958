"""Worker feedback events against a real database (SPEC §4.2, §5.1, §5.5, §5.8)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg import Connection
from psycopg.rows import TupleRow
from structlog.testing import capture_logs

from metrics_orchestrator.application.feedback import FeedbackOutcome, FeedbackService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.model import RunStatus, RunTrigger
from tests.factories import event_rows, run_row, seed_run
from tests.support import MutableClock, feedback_service

S = RunStatus

STARTED = "started"
HEARTBEAT = "heartbeat"
SUCCESS = "success"
FAILURE = "failure"

# SPEC §5.5, written out independently of the domain's table: (status, event) -> new status.
ACCEPTED: dict[tuple[RunStatus, str], RunStatus] = {
    (S.DISPATCHED, STARTED): S.RUNNING,
    (S.DISPATCHED, HEARTBEAT): S.RUNNING,
    (S.RUNNING, STARTED): S.RUNNING,
    (S.RUNNING, HEARTBEAT): S.RUNNING,
    (S.DISPATCHED, SUCCESS): S.SUCCEEDED,
    (S.DISPATCHED, FAILURE): S.FAILED,
    (S.RUNNING, SUCCESS): S.SUCCEEDED,
    (S.RUNNING, FAILURE): S.FAILED,
    (S.TIMED_OUT, SUCCESS): S.SUCCEEDED,
    (S.TIMED_OUT, FAILURE): S.FAILED,
}
ALL_CASES = [
    (status, kind) for status in RunStatus for kind in (STARTED, HEARTBEAT, SUCCESS, FAILURE)
]
REFUSED = [case for case in ALL_CASES if case not in ACCEPTED]


@pytest.fixture
def service(uow_factory: UnitOfWorkFactory, clock: MutableClock) -> FeedbackService:
    return feedback_service(uow_factory, clock)


def event(kind: str, run_id: UUID, **fields: Any) -> dict[str, Any]:
    if kind == STARTED:
        return {"type": "metric_run_started", "runId": str(run_id), **fields}
    if kind == HEARTBEAT:
        return {"type": "metric_run_heartbeat", "runId": str(run_id), "ts": _ts(), **fields}
    status = "SUCCESS" if kind == SUCCESS else "FAILURE"
    return {"type": "metric_run_completed", "runId": str(run_id), "status": status, **fields}


def _ts() -> str:
    return "2025-11-11T12:00:00+00:00"


def send(
    service: FeedbackService, clock: MutableClock, body: dict[str, Any] | str
) -> FeedbackOutcome:
    raw = body if isinstance(body, str) else json.dumps(body)
    return service.handle(decode_event(raw), source="test", received_at=clock.now())


# --- the transition table ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), list(ACCEPTED))
def test_allowed_transition_is_applied(
    conn: Connection[TupleRow],
    service: FeedbackService,
    clock: MutableClock,
    status: RunStatus,
    kind: str,
) -> None:
    run_id = seed_run(conn, status=status, now=clock.now() - timedelta(minutes=1))

    outcome = send(service, clock, event(kind, run_id))

    assert outcome.status is EventStatus.PROCESSED, outcome.reason
    assert outcome.previous_status is status
    assert outcome.run_status is ACCEPTED[status, kind]
    assert run_row(conn, run_id)["status"] == ACCEPTED[status, kind]
    [logged] = event_rows(conn)
    assert (logged["status"], logged["error"]) == ("processed", None)


@pytest.mark.parametrize(("status", "kind"), REFUSED)
def test_refused_transition_is_rejected_and_run_unchanged(
    conn: Connection[TupleRow],
    service: FeedbackService,
    clock: MutableClock,
    status: RunStatus,
    kind: str,
) -> None:
    run_id = seed_run(conn, status=status, now=clock.now() - timedelta(minutes=1))
    before = run_row(conn, run_id)

    outcome = send(service, clock, event(kind, run_id, progress=0.5))

    assert outcome.status is EventStatus.REJECTED
    assert outcome.reason is not None
    assert f"cannot move from {status}" in outcome.reason
    assert run_row(conn, run_id) == before
    [logged] = event_rows(conn)
    assert logged["status"] == "rejected"
    assert logged["error"] == outcome.reason
    assert logged["raw_body"] is not None


# --- started and heartbeat --------------------------------------------------------------


def test_started_uses_reported_start_or_receipt_time(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    reported = seed_run(conn, status=S.DISPATCHED, now=clock.now())
    unreported = seed_run(conn, status=S.DISPATCHED, now=clock.now())
    clock.advance(timedelta(seconds=30))

    send(service, clock, event(STARTED, reported, startedAt="2025-11-11T12:00:10Z"))
    send(service, clock, event(STARTED, unreported))

    assert run_row(conn, reported)["started_at"] == clock.now() - timedelta(seconds=20)
    assert run_row(conn, unreported)["started_at"] == clock.now()


def test_heartbeat_after_later_heartbeat_never_moves_time_backwards(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.RUNNING, now=clock.now())
    t0 = clock.now()

    send(service, clock, event(HEARTBEAT, run_id, ts=_iso(t0 + timedelta(minutes=3)), progress=0.6))
    late = send(
        service, clock, event(HEARTBEAT, run_id, ts=_iso(t0 + timedelta(minutes=1)), progress=0.4)
    )

    row = run_row(conn, run_id)
    assert late.status is EventStatus.PROCESSED
    assert row["last_heartbeat_at"] == t0 + timedelta(minutes=3)
    assert row["progress"] == 0.6  # the stale heartbeat's progress is ignored too


def test_newest_heartbeat_sets_progress_even_when_lower(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.RUNNING, now=clock.now())
    t0 = clock.now()

    send(service, clock, event(HEARTBEAT, run_id, ts=_iso(t0 + timedelta(minutes=1)), progress=0.6))
    send(service, clock, event(HEARTBEAT, run_id, ts=_iso(t0 + timedelta(minutes=2)), progress=0.3))
    send(service, clock, event(HEARTBEAT, run_id, ts=_iso(t0 + timedelta(minutes=3))))

    row = run_row(conn, run_id)
    assert row["last_heartbeat_at"] == t0 + timedelta(minutes=3)
    assert row["progress"] == 0.3


@pytest.mark.parametrize(
    ("reported", "stored"), [(0, 0.0), (0.25, 0.25), (1, 1.0), (1.5, 0.015), (50, 0.5), (100, 1.0)]
)
def test_heartbeat_progress_is_normalised(
    conn: Connection[TupleRow],
    service: FeedbackService,
    clock: MutableClock,
    reported: float,
    stored: float,
) -> None:
    run_id = seed_run(conn, status=S.RUNNING, now=clock.now())

    send(service, clock, event(HEARTBEAT, run_id, progress=reported))

    assert run_row(conn, run_id)["progress"] == pytest.approx(stored)


def test_heartbeat_starts_a_dispatched_run_at_its_timestamp(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.DISPATCHED, now=clock.now())
    ts = clock.now() + timedelta(seconds=5)
    clock.advance(timedelta(seconds=20))

    send(service, clock, event(HEARTBEAT, run_id, ts=_iso(ts), progress=0.1))

    row = run_row(conn, run_id)
    assert (row["status"], row["started_at"], row["last_heartbeat_at"]) == ("running", ts, ts)
    assert row["progress"] == 0.1


# --- completed --------------------------------------------------------------------------


def test_completed_records_the_outcome(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.RUNNING, now=clock.now())
    clock.advance(timedelta(minutes=2))

    outcome = send(
        service,
        clock,
        event(
            SUCCESS,
            run_id,
            metricCode="ratio.a_to_b",
            versionTs="2025-11-11T01-43-05",
            outputManifest="metrics/ratio.a_to_b/2025-11-11T01-43-05/manifest.json",
            rowCount=5421,
        ),
    )

    row = run_row(conn, run_id)
    assert outcome.status is EventStatus.PROCESSED
    assert row["status"] == "succeeded"
    assert row["completed_at"] == clock.now()
    assert row["version_ts"] == "2025-11-11T01-43-05"
    assert row["output_manifest"] == "metrics/ratio.a_to_b/2025-11-11T01-43-05/manifest.json"
    assert (row["row_count"], row["progress"], row["error"]) == (5421, 1.0, None)


def test_failure_keeps_the_workers_error(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.RUNNING, now=clock.now())

    send(service, clock, event(FAILURE, run_id, error="division by zero"))

    row = run_row(conn, run_id)
    assert (row["status"], row["error"], row["status_reason"]) == (
        "failed",
        "division by zero",
        "worker_failure",
    )


def test_completed_before_started_then_started_is_rejected(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.DISPATCHED, now=clock.now())

    completed = send(service, clock, event(SUCCESS, run_id, rowCount=1))
    started = send(service, clock, event(STARTED, run_id))
    heartbeat = send(service, clock, event(HEARTBEAT, run_id))

    assert completed.status is EventStatus.PROCESSED
    assert (started.status, heartbeat.status) == (EventStatus.REJECTED, EventStatus.REJECTED)
    row = run_row(conn, run_id)
    assert (row["status"], row["started_at"], row["row_count"]) == ("succeeded", None, 1)


def test_heartbeat_before_started_keeps_earliest_start(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.DISPATCHED, now=clock.now())
    t0 = clock.now()

    send(service, clock, event(HEARTBEAT, run_id, ts=_iso(t0 + timedelta(seconds=30))))
    started = send(
        service, clock, event(STARTED, run_id, startedAt=_iso(t0 + timedelta(seconds=10)))
    )

    row = run_row(conn, run_id)
    assert started.status is EventStatus.PROCESSED
    assert (row["status"], row["started_at"]) == ("running", t0 + timedelta(seconds=10))
    assert row["last_heartbeat_at"] == t0 + timedelta(seconds=30)


def _timed_out_with_retry(
    conn: Connection[TupleRow], clock: MutableClock, retry_status: RunStatus
) -> tuple[UUID, UUID]:
    timed_out = seed_run(
        conn, status=S.TIMED_OUT, now=clock.now(), status_reason="heartbeat_timeout", error="x"
    )
    retry = seed_run(
        conn,
        status=retry_status,
        now=clock.now(),
        trigger=RunTrigger.RETRY,
        attempt=2,
        retry_of=timed_out,
    )
    return timed_out, retry


def test_late_success_after_timeout_records_outcome_and_supersedes_queued_retry(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    """SPEC §5.5: the undispatched retry is canceled, so the metric is not computed twice."""
    timed_out, retry = _timed_out_with_retry(conn, clock, S.QUEUED)
    clock.advance(timedelta(minutes=1))

    outcome = send(service, clock, event(SUCCESS, timed_out, rowCount=7))

    row = run_row(conn, timed_out)
    assert outcome.status is EventStatus.PROCESSED
    assert outcome.superseded_retry == retry
    assert (row["status"], row["status_reason"], row["error"]) == (
        "succeeded",
        "completed_after_timeout",
        None,
    )
    assert row["completed_at"] == clock.now()
    canceled = run_row(conn, retry)
    assert (canceled["status"], canceled["status_reason"]) == (
        "canceled",
        "superseded: attempt 1 succeeded late",
    )


@pytest.mark.parametrize("retry_status", [S.DISPATCHED, S.RUNNING])
def test_late_success_leaves_a_retry_that_was_already_dispatched(
    conn: Connection[TupleRow],
    service: FeedbackService,
    clock: MutableClock,
    retry_status: RunStatus,
) -> None:
    timed_out, retry = _timed_out_with_retry(conn, clock, retry_status)
    retry_before = run_row(conn, retry)

    outcome = send(service, clock, event(SUCCESS, timed_out, rowCount=7))

    assert run_row(conn, timed_out)["status"] == "succeeded"
    assert outcome.superseded_retry is None
    assert run_row(conn, retry) == retry_before


def test_late_failure_after_timeout_leaves_the_retry_alone(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    timed_out, retry = _timed_out_with_retry(conn, clock, S.QUEUED)
    retry_before = run_row(conn, retry)

    send(service, clock, event(FAILURE, timed_out, error="boom"))

    assert run_row(conn, timed_out)["status"] == "failed"
    assert run_row(conn, retry) == retry_before


def test_completion_naming_another_metric_is_rejected(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.RUNNING, now=clock.now())
    before = run_row(conn, run_id)

    outcome = send(service, clock, event(SUCCESS, run_id, metricCode="some.other_metric"))

    assert outcome.status is EventStatus.REJECTED
    assert "some.other_metric" in (outcome.reason or "")
    assert run_row(conn, run_id) == before


# --- unknown, duplicate, malformed ------------------------------------------------------


def test_unknown_run_is_rejected(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    missing = uuid4()

    outcome = send(service, clock, event(STARTED, missing))

    assert outcome.status is EventStatus.REJECTED
    assert outcome.reason == f"unknown run {missing}"
    [logged] = event_rows(conn)
    assert (logged["status"], logged["error"], logged["event_type"]) == (
        "rejected",
        f"unknown run {missing}",
        "metric_run_started",
    )


def test_same_body_twice_is_a_duplicate(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.RUNNING, now=clock.now())
    body = json.dumps(event(SUCCESS, run_id, rowCount=3))

    first = send(service, clock, body)
    after_first = run_row(conn, run_id)
    clock.advance(timedelta(minutes=1))
    second = send(service, clock, body)

    assert (first.status, second.status) == (EventStatus.PROCESSED, EventStatus.DUPLICATE)
    assert first.event_key == second.event_key
    assert first.event_key.startswith("metric_run_completed:")
    assert run_row(conn, run_id) == after_first
    assert [r["status"] for r in event_rows(conn)] == ["processed", "duplicate"]


def test_same_body_from_two_replicas_at_once_is_processed_once(
    conn: Connection[TupleRow], uow_factory: UnitOfWorkFactory, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.DISPATCHED, now=clock.now())
    body = json.dumps(event(STARTED, run_id))
    barrier = threading.Barrier(4)
    outcomes: list[FeedbackOutcome] = []

    def replica() -> None:
        service = feedback_service(uow_factory, clock)
        barrier.wait()
        outcomes.append(send(service, clock, body))

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(o.status for o in outcomes) == ["duplicate"] * 3 + ["processed"]
    assert run_row(conn, run_id)["status"] == "running"


def test_malformed_fields_are_all_named(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    body = {"type": "metric_run_heartbeat", "runId": "not-a-uuid", "progress": 150, "ts": "noon"}

    outcome = send(service, clock, body)

    assert outcome.status is EventStatus.REJECTED
    reason = outcome.reason or ""
    assert "runId: must be a UUID" in reason
    assert "progress: must be" in reason
    assert "ts: must be an ISO-8601 timestamp" in reason
    [logged] = event_rows(conn)
    assert logged["status"] == "rejected"
    assert logged["raw_body"] == json.dumps(body)


def test_malformed_completion_names_status_and_row_count(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.RUNNING, now=clock.now())
    before = run_row(conn, run_id)
    body = {"type": "metric_run_completed", "runId": str(run_id), "status": "DONE", "rowCount": -1}

    outcome = send(service, clock, body)

    assert outcome.status is EventStatus.REJECTED
    assert "status: must be 'SUCCESS' or 'FAILURE'" in (outcome.reason or "")
    assert "rowCount: must be a non-negative integer" in (outcome.reason or "")
    assert run_row(conn, run_id) == before


def test_rejected_body_redelivered_is_evaluated_again(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.QUEUED, now=clock.now())
    body = json.dumps(event(STARTED, run_id))

    first = send(service, clock, body)
    conn.execute(
        "UPDATE metric_runs SET status = 'dispatched', dispatched_at = now() WHERE id = %s",
        (run_id,),
    )
    second = send(service, clock, body)

    assert (first.status, second.status) == (EventStatus.REJECTED, EventStatus.PROCESSED)
    assert run_row(conn, run_id)["status"] == "running"


def test_sns_enveloped_fixture_is_applied(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock, events_dir: Path
) -> None:
    run_id = seed_run(conn, status=S.DISPATCHED, now=clock.now())
    raw = (events_dir / "sns_envelope.json").read_text(encoding="utf-8")

    outcome = send(service, clock, raw.replace("REPLACE-WITH-RUN-ID", str(run_id)))

    row = run_row(conn, run_id)
    assert outcome.status is EventStatus.PROCESSED
    assert (row["status"], row["progress"]) == ("running", 0.25)


def _iso(moment: Any) -> str:
    return str(moment.isoformat())


# --- late heartbeats (issue 20) and retryable (SPEC §4.2) -------------------------------


@pytest.mark.parametrize("status", [S.TIMED_OUT, S.SUCCEEDED, S.FAILED, S.CANCELED])
def test_late_heartbeats_of_an_ended_run_make_one_inbox_entry(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock, status: RunStatus
) -> None:
    run_id = seed_run(conn, status=status, now=clock.now() - timedelta(minutes=10))
    other = seed_run(conn, status=status, now=clock.now() - timedelta(minutes=10))
    before = run_row(conn, run_id)

    outcomes = []
    for minute in range(7):
        ts = f"2025-11-11T12:{minute:02d}:00+00:00"
        outcomes.append(send(service, clock, event(HEARTBEAT, run_id, ts=ts, progress=0.5)))
    send(service, clock, event(HEARTBEAT, other))

    assert [o.status for o in outcomes] == [EventStatus.REJECTED] + [EventStatus.DUPLICATE] * 6
    assert f"cannot move from {status}" in (outcomes[0].reason or "")
    assert run_row(conn, run_id) == before
    logged = event_rows(conn)
    assert {(row["event_key"], row["status"]) for row in logged} == {
        (f"metric_run_heartbeat:late:{run_id}", "rejected"),
        (f"metric_run_heartbeat:late:{run_id}", "duplicate"),
        (f"metric_run_heartbeat:late:{other}", "rejected"),
    }
    assert sum(row["status"] == "rejected" for row in logged) == 2
    assert all(row["raw_body"] for row in logged)


def test_a_heartbeat_before_dispatch_is_still_an_error_of_its_own(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.QUEUED, now=clock.now())

    first = send(service, clock, event(HEARTBEAT, run_id, ts="2025-11-11T12:00:00+00:00"))
    second = send(service, clock, event(HEARTBEAT, run_id, ts="2025-11-11T12:01:00+00:00"))

    assert (first.status, second.status) == (EventStatus.REJECTED, EventStatus.REJECTED)
    assert first.event_key != second.event_key
    assert "late" not in first.event_key


def test_a_failure_marked_not_retryable_is_stored_and_logged_as_a_warning(
    conn: Connection[TupleRow], service: FeedbackService, clock: MutableClock
) -> None:
    permanent = seed_run(conn, status=S.RUNNING, now=clock.now())
    transient = seed_run(conn, status=S.RUNNING, now=clock.now())

    with capture_logs() as logs:
        send(service, clock, event(FAILURE, permanent, error="no manifest", retryable=False))
        send(service, clock, event(FAILURE, transient, error="timeout"))

    assert run_row(conn, permanent)["retryable"] is False
    assert run_row(conn, transient)["retryable"] is True
    completed = [e for e in logs if e["event"] == "ON_RUN_COMPLETED"]
    assert [e["log_level"] for e in completed] == ["warning", "warning"]
