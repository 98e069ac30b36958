"""Cancel, manual retry, run detail and run listing (SPEC §5.5, §5.6, §6.3)."""

from __future__ import annotations

import threading
from datetime import timedelta
from uuid import uuid4

import psycopg
import pytest
from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.runs import RunOperations
from metrics_orchestrator.domain.errors import (
    Conflict,
    IllegalTransition,
    NotFound,
    NotLatestAttempt,
    ValidationError,
)
from metrics_orchestrator.domain.messages.run_requested import format_timestamp
from metrics_orchestrator.domain.model import RunStatus, RunTrigger
from tests.factories import lineage_of, run_row, seed_metric, seed_run, seed_update
from tests.support import MutableClock

S = RunStatus


@pytest.fixture
def operations(uow_factory: UnitOfWorkFactory, clock: MutableClock) -> RunOperations:
    return RunOperations(uow_factory, clock)


# --- cancel -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.PENDING_DEPENDENCIES, S.QUEUED, S.DISPATCHED, S.RUNNING])
def test_open_run_is_canceled_with_its_reason(
    conn: Connection[TupleRow],
    operations: RunOperations,
    clock: MutableClock,
    status: RunStatus,
) -> None:
    run_id = seed_run(conn, status=status, now=clock.now() - timedelta(minutes=5))

    run = operations.cancel(run_id, "inputs were wrong")

    row = run_row(conn, run_id)
    assert run.status is S.CANCELED
    assert (row["status"], row["status_reason"], row["completed_at"]) == (
        "canceled",
        "inputs were wrong",
        clock.now(),
    )


def test_cancel_without_reason_records_a_default(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.QUEUED, now=clock.now())

    operations.cancel(run_id, "  ")

    assert run_row(conn, run_id)["status_reason"] == "canceled by operator"


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELED])
def test_ended_run_cannot_be_canceled(
    conn: Connection[TupleRow],
    operations: RunOperations,
    clock: MutableClock,
    status: RunStatus,
) -> None:
    run_id = seed_run(conn, status=status, now=clock.now())
    before = run_row(conn, run_id)

    with pytest.raises(IllegalTransition, match=f"from {status} to canceled"):
        operations.cancel(run_id, "too late")

    assert run_row(conn, run_id) == before


def test_cancel_unknown_run_is_not_found(operations: RunOperations) -> None:
    with pytest.raises(NotFound, match="unknown run"):
        operations.cancel(uuid4(), "x")


# --- manual retry -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.FAILED, S.TIMED_OUT, S.CANCELED])
def test_manual_retry_queues_a_new_attempt_on_the_same_inputs(
    conn: Connection[TupleRow],
    operations: RunOperations,
    clock: MutableClock,
    database_url: str,
    status: RunStatus,
) -> None:
    old = seed_run(conn, status=status, now=clock.now() - timedelta(hours=1))
    old_row = run_row(conn, old)

    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN metric_run_queued")
        new = operations.retry(old)
        notices = list(listener.notifies(timeout=5, stop_after=1))

    row = run_row(conn, new.id)
    assert (new.status, new.trigger, new.retry_of, new.attempt) == (
        S.QUEUED,
        RunTrigger.MANUAL,
        old,
        2,
    )
    # dispatchable at once: a queued run always carries the time it may be published from
    assert (row["queued_at"], row["not_before"]) == (clock.now(), clock.now())
    assert row["inputs_fingerprint"] == old_row["inputs_fingerprint"]
    assert new.lineage == lineage_of(conn, old) != {}
    assert row["request_payload"] == {
        **old_row["request_payload"],
        "runId": str(new.id),
        "attempt": 2,
        "requestedAt": format_timestamp(clock.now()),
    }
    assert run_row(conn, old) == old_row
    assert len(notices) == 1


def test_retrying_an_older_attempt_is_refused_naming_the_latest(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    """Issue 19 item 4: attempt 1 and its retry both failed; retrying attempt 1 again
    used to make a second attempt 2. The latest attempt is the one to retry (SPEC §5.6)."""
    first = seed_run(conn, status=S.FAILED, now=clock.now())
    second = seed_run(
        conn, status=S.FAILED, now=clock.now(), trigger=RunTrigger.RETRY, attempt=2, retry_of=first
    )

    with pytest.raises(NotLatestAttempt, match=f"retry the latest attempt, {second}") as refused:
        operations.retry(first)
    third = operations.retry(second)

    assert refused.value.latest_id == second
    assert isinstance(refused.value, Conflict)
    assert (third.attempt, third.retry_of) == (3, second)
    assert run_row(conn, third.id)["chain_root"] == first
    with pytest.raises(NotLatestAttempt, match=f"attempt 3 \\({third.id}\\)"):
        operations.retry(second)


def test_a_retried_attempt_still_queued_refuses_a_second_retry_of_its_predecessor(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    old = seed_run(conn, status=S.FAILED, now=clock.now())
    retry = seed_run(
        conn, status=S.QUEUED, now=clock.now(), trigger=RunTrigger.RETRY, attempt=2, retry_of=old
    )

    with pytest.raises(NotLatestAttempt, match=str(retry)):
        operations.retry(old)

    assert run_row(conn, old)["status"] == "failed"


def test_two_operators_retrying_the_same_attempt_at_once_make_one_retry(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    first = seed_run(conn, status=S.FAILED, now=clock.now())
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def retry() -> None:
        start.wait()
        try:
            outcomes.append(operations.retry(first).attempt)
        except NotLatestAttempt as refused:
            outcomes.append(refused)

    threads = [threading.Thread(target=retry) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(type(o).__name__ for o in outcomes) == ["NotLatestAttempt", "int"]
    assert 2 in outcomes
    count = conn.execute("SELECT count(*) FROM metric_runs WHERE retry_of = %s", (first,))
    assert count.fetchone() == (1,)


def test_one_chain_cannot_hold_one_attempt_number_twice(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    first = seed_run(conn, status=S.FAILED, now=clock.now())
    operations.retry(first)

    with pytest.raises(psycopg.errors.UniqueViolation, match="metric_runs_one_attempt_per_chain"):
        conn.execute(
            "INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, retry_of,"
            " chain_root, created_at, updated_at)"
            " SELECT %s, metric_id, 'canceled', 'manual', 2, id, id, now(), now()"
            " FROM metric_runs WHERE id = %s",
            (uuid4(), first),
        )


@pytest.mark.parametrize(
    "status", [S.PENDING_DEPENDENCIES, S.QUEUED, S.DISPATCHED, S.RUNNING, S.SUCCEEDED]
)
def test_only_ended_unsuccessful_runs_can_be_retried(
    conn: Connection[TupleRow],
    operations: RunOperations,
    clock: MutableClock,
    status: RunStatus,
) -> None:
    run_id = seed_run(conn, status=status, now=clock.now())

    with pytest.raises(Conflict, match=f"is {status}"):
        operations.retry(run_id)


def test_run_canceled_before_queueing_cannot_be_retried(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.CANCELED, now=clock.now(), with_request=False)

    with pytest.raises(Conflict, match="no request to repeat"):
        operations.retry(run_id)


def test_retry_unknown_run_is_not_found(operations: RunOperations) -> None:
    with pytest.raises(NotFound):
        operations.retry(uuid4())


# --- run detail -------------------------------------------------------------------------


def test_pending_run_shows_what_it_waits_for_and_since_when(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    received = clock.now() - timedelta(minutes=7)
    update = seed_update(conn, "d1", version="v7", received_at=received)
    run_id = seed_run(conn, status=S.PENDING_DEPENDENCIES, pending={"d1": update, "d2": None})

    detail = operations.get_run(run_id)

    assert detail.metric_code == "ratio.a_to_b"
    assert detail.request_payload is None
    held = [(p.dataset_id, p.update) for p in detail.pending]
    assert [(ds, u.id if u else None, u.received_at if u else None) for ds, u in held] == [
        ("d1", update, received),
        ("d2", None, None),
    ]
    first = detail.pending[0].update
    assert first is not None
    assert first.version_manifest_path == "datasets/d1/versions/v7/manifest.json"
    assert detail.lineage == ()


def test_queued_run_shows_its_lineage_and_request(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    d1 = seed_update(conn, "d1", version="v1", occurred_at=clock.now() - timedelta(days=1))
    d2 = seed_update(conn, "d2", version="v2")
    run_id = seed_run(conn, status=S.QUEUED, lineage={"d1": d1, "d2": d2})

    detail = operations.get_run(run_id)

    assert [(e.dataset_id, e.id) for e in detail.lineage] == [("d1", d1), ("d2", d2)]
    assert detail.lineage[0].effective_at == clock.now() - timedelta(days=1)
    assert detail.lineage[1].version_manifest_path == "datasets/d2/versions/v2/manifest.json"
    assert detail.request_payload is not None
    assert detail.request_payload["runId"] == str(run_id)
    assert detail.run.queued_at == detail.run.created_at


def test_attempts_show_the_whole_retry_chain_from_any_member(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    first = seed_run(conn, status=S.FAILED, now=clock.now())
    clock.advance(timedelta(minutes=1))
    second = seed_run(
        conn,
        status=S.TIMED_OUT,
        now=clock.now(),
        trigger=RunTrigger.RETRY,
        attempt=2,
        retry_of=first,
    )
    clock.advance(timedelta(minutes=1))
    third = operations.retry(second).id
    unrelated = seed_run(conn, status=S.FAILED, now=clock.now())

    chains = [[a.id for a in operations.get_run(r).attempts] for r in (first, second, third)]

    assert chains == [[first, second, third]] * 3
    assert [a.id for a in operations.get_run(unrelated).attempts] == [unrelated]


def test_unknown_run_detail_is_not_found(operations: RunOperations) -> None:
    with pytest.raises(NotFound):
        operations.get_run(uuid4())


# --- listing ----------------------------------------------------------------------------


def test_listing_pages_through_every_run_newest_first(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    t0 = clock.now()
    created = [
        seed_run(conn, status=S.SUCCEEDED, now=t0 + timedelta(minutes=i // 2)) for i in range(7)
    ]

    seen = []
    pages = 0
    cursor: str | None = None
    while True:
        page, cursor = operations.list_runs(limit=3, cursor=cursor)
        seen += [s.run for s in page]
        pages += 1
        if cursor is None:
            break

    assert pages == 3
    assert sorted(r.id for r in seen) == sorted(created)
    keys = [(r.created_at, r.id) for r in seen]
    assert keys == sorted(keys, reverse=True)


def test_listing_filters_by_status_metric_and_time(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    seed_metric(conn, metric_id="m.other", code="other", inputs=[("d3", "C")])
    t0 = clock.now()
    old_failed = seed_run(conn, status=S.FAILED, now=t0 - timedelta(days=2))
    new_failed = seed_run(conn, status=S.FAILED, now=t0)
    other_failed = seed_run(conn, "m.other", status=S.FAILED, now=t0)
    seed_run(conn, status=S.QUEUED, now=t0)

    failed, _ = operations.list_runs(status=S.FAILED)
    mine, _ = operations.list_runs(status=S.FAILED, metric_code="ratio.a_to_b")
    recent, _ = operations.list_runs(status=S.FAILED, since=t0 - timedelta(days=1))

    assert {s.run.id for s in failed} == {old_failed, new_failed, other_failed}
    assert [s.run.id for s in mine] == [new_failed, old_failed]
    assert {s.run.id for s in recent} == {new_failed, other_failed}
    assert {s.metric_code for s in failed} == {"ratio.a_to_b", "other"}


def test_last_page_has_no_cursor(
    conn: Connection[TupleRow], operations: RunOperations, clock: MutableClock
) -> None:
    seed_run(conn, status=S.QUEUED, now=clock.now())

    page, cursor = operations.list_runs(limit=1)
    empty, none = operations.list_runs(metric_code="nope")

    assert (len(page), cursor) == (1, None)
    assert (empty, none) == ([], None)


@pytest.mark.parametrize("cursor", ["garbage", "W10", "WyJub3QtYS1kYXRlIiwgIngiXQ"])
def test_foreign_cursor_is_a_validation_error(operations: RunOperations, cursor: str) -> None:
    with pytest.raises(ValidationError, match="cursor"):
        operations.list_runs(cursor=cursor)


@pytest.mark.parametrize("limit", [0, 501])
def test_limit_out_of_range_is_a_validation_error(operations: RunOperations, limit: int) -> None:
    with pytest.raises(ValidationError, match="limit"):
        operations.list_runs(limit=limit)
