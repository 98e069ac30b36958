"""The sweeper: timeouts (SPEC §5.5), scheduled retries (§5.6), concurrent replicas (§5.7)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.runs import Sweeper, SweepReport
from metrics_orchestrator.domain.messages.run_requested import format_timestamp
from metrics_orchestrator.domain.model import RunStatus, RunTrigger
from metrics_orchestrator.domain.retries import retry_delay
from tests.factories import DEFAULT_NOW, lineage_of, run_row, seed_metric, seed_run
from tests.support import MutableClock

Pool = ConnectionPool[Connection[TupleRow]]
S = RunStatus
START_TIMEOUT = timedelta(minutes=15)
HEARTBEAT_TIMEOUT = timedelta(minutes=5)
BASE_DELAY = timedelta(seconds=30)


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def sweeper(uow_factory: UnitOfWorkFactory, clock: MutableClock) -> Sweeper:
    return make_sweeper(uow_factory, clock)


def make_sweeper(uow_factory: UnitOfWorkFactory, clock: Any, **overrides: Any) -> Sweeper:
    return Sweeper(
        uow_factory,
        clock,
        start_timeout=START_TIMEOUT,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_base_delay=BASE_DELAY,
        **overrides,
    )


@pytest.fixture
def conn(pool: Pool) -> Iterator[Connection[TupleRow]]:
    with pool.connection() as connection:
        connection.autocommit = True
        seed_metric(connection, max_attempts=3)
        yield connection


def retries_of(conn: Connection[TupleRow], run_id: UUID) -> list[dict[str, Any]]:
    ids = conn.execute(
        "SELECT id FROM metric_runs WHERE retry_of = %s ORDER BY created_at", (run_id,)
    ).fetchall()
    return [run_row(conn, i) for (i,) in ids]


# --- timeouts ---------------------------------------------------------------------------


def test_dispatched_run_without_start_times_out_after_start_timeout(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    now = clock.now()
    late = seed_run(
        conn, status=S.DISPATCHED, dispatched_at=now - START_TIMEOUT - timedelta(seconds=1)
    )
    in_time = seed_run(
        conn, status=S.DISPATCHED, dispatched_at=now - START_TIMEOUT + timedelta(seconds=1)
    )

    report = sweeper.sweep_once()

    row = run_row(conn, late)
    assert [t.id for t in report.timed_out] == [late]
    assert (row["status"], row["status_reason"], row["completed_at"]) == (
        "timed_out",
        "start_timeout",
        now,
    )
    assert row["error"] == "no start within 15m (RUN_START_TIMEOUT)"
    assert run_row(conn, in_time)["status"] == "dispatched"


def test_running_run_without_heartbeat_times_out(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    now = clock.now()
    silent = seed_run(
        conn,
        status=S.RUNNING,
        started_at=now - timedelta(hours=1),
        last_heartbeat_at=now - HEARTBEAT_TIMEOUT - timedelta(seconds=1),
    )
    never_beat = seed_run(conn, status=S.RUNNING, started_at=now - timedelta(minutes=6))
    alive = seed_run(
        conn,
        status=S.RUNNING,
        started_at=now - timedelta(hours=1),
        last_heartbeat_at=now - HEARTBEAT_TIMEOUT + timedelta(seconds=1),
    )
    just_started = seed_run(conn, status=S.RUNNING, started_at=now - timedelta(minutes=4))

    report = sweeper.sweep_once()

    assert {t.id for t in report.timed_out} == {silent, never_beat}
    for run_id in (silent, never_beat):
        row = run_row(conn, run_id)
        assert (row["status"], row["status_reason"]) == ("timed_out", "heartbeat_timeout")
        assert row["error"] == "no heartbeat within 5m (RUN_HEARTBEAT_TIMEOUT)"
    assert run_row(conn, alive)["status"] == "running"
    assert run_row(conn, just_started)["status"] == "running"


def test_a_run_times_out_only_once_the_clock_passes_its_deadline(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    run_id = seed_run(conn, status=S.DISPATCHED, now=clock.now())

    clock.advance(START_TIMEOUT)
    first = sweeper.sweep_once()
    clock.advance(timedelta(microseconds=1))
    second = sweeper.sweep_once()

    assert first.timed_out == ()
    assert [t.id for t in second.timed_out] == [run_id]


@pytest.mark.parametrize("status", [S.QUEUED, S.PENDING_DEPENDENCIES, S.SUCCEEDED, S.CANCELED])
def test_runs_not_in_flight_never_time_out(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock, status: RunStatus
) -> None:
    run_id = seed_run(conn, status=status, now=clock.now() - timedelta(days=1))
    before = run_row(conn, run_id)

    report = sweeper.sweep_once()

    assert report == SweepReport()
    assert run_row(conn, run_id) == before


# --- retries ----------------------------------------------------------------------------


def test_timed_out_run_gets_a_retry_with_same_inputs(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    now = clock.now()
    old = seed_run(conn, status=S.DISPATCHED, dispatched_at=now - timedelta(hours=1))
    old_row = run_row(conn, old)

    report = sweeper.sweep_once()

    [retry] = retries_of(conn, old)
    assert [(r.id, r.retry_of, r.attempt) for r in report.retries] == [(retry["id"], old, 2)]
    assert retry["status"] == "queued"
    assert (retry["trigger"], retry["attempt"], retry["metric_id"]) == ("retry", 2, "m.ratio")
    assert (retry["queued_at"], retry["created_at"]) == (now, now)
    assert retry["not_before"] == now + BASE_DELAY
    assert retry["inputs_fingerprint"] == old_row["inputs_fingerprint"]
    assert lineage_of(conn, retry["id"]) == lineage_of(conn, old)
    assert retry["request_payload"] == {
        **old_row["request_payload"],
        "runId": str(retry["id"]),
        "attempt": 2,
        "requestedAt": format_timestamp(now),
    }


@pytest.mark.parametrize(("attempt", "max_attempts"), [(1, 2), (2, 3), (3, 5), (4, 5)])
def test_retry_waits_base_delay_doubled_per_attempt(
    conn: Connection[TupleRow],
    sweeper: Sweeper,
    clock: MutableClock,
    attempt: int,
    max_attempts: int,
) -> None:
    seed_metric(
        conn, metric_id="m.single", code="single", inputs=[("d3", "C")], max_attempts=max_attempts
    )
    first = seed_run(conn, "m.single", status=S.FAILED, now=clock.now())
    old = _chain_to(conn, first, attempt, clock.now())

    sweeper.sweep_once()

    [retry] = retries_of(conn, old)
    assert retry["attempt"] == attempt + 1
    assert retry["not_before"] == clock.now() + retry_delay(BASE_DELAY, attempt)
    assert retry["not_before"] == clock.now() + BASE_DELAY * 2 ** (attempt - 1)


def test_failed_run_at_max_attempts_is_not_retried(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    first = seed_run(conn, status=S.FAILED, now=clock.now())
    last = _chain_to(conn, first, 3, clock.now())

    report = sweeper.sweep_once()

    assert report.retries == ()
    assert retries_of(conn, last) == []


def test_dispatch_failure_is_retried_like_any_failure(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    old = seed_run(
        conn,
        status=S.FAILED,
        now=clock.now(),
        dispatched_at=None,
        status_reason="dispatch_failed",
        error="SNS unavailable",
    )
    conn.execute(
        "UPDATE metric_runs SET dispatched_at = NULL, started_at = NULL WHERE id = %s", (old,)
    )

    sweeper.sweep_once()

    assert [r["attempt"] for r in retries_of(conn, old)] == [2]


def test_a_run_is_retried_once_however_often_the_sweeper_runs(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    old = seed_run(conn, status=S.FAILED, now=clock.now())

    first = sweeper.sweep_once()
    clock.advance(timedelta(seconds=10))
    second = sweeper.sweep_once()

    assert len(first.retries) == 1
    assert second.retries == ()
    assert len(retries_of(conn, old)) == 1


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.CANCELED, S.RUNNING, S.QUEUED])
def test_only_failed_and_timed_out_runs_are_retried(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock, status: RunStatus
) -> None:
    run_id = seed_run(conn, status=status, now=clock.now())

    report = sweeper.sweep_once()

    assert report.retries == ()
    assert retries_of(conn, run_id) == []


def test_disabled_metric_and_old_failures_are_not_retried(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    seed_metric(conn, metric_id="m.off", code="off", inputs=[("d3", "C")], enabled=False)
    disabled = seed_run(conn, "m.off", status=S.FAILED, now=clock.now())
    ancient = seed_run(conn, status=S.FAILED, now=clock.now() - timedelta(days=2))

    report = sweeper.sweep_once()

    assert report.retries == ()
    assert retries_of(conn, disabled) == retries_of(conn, ancient) == []


def test_a_failure_the_worker_marked_not_retryable_is_not_retried(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    permanent = seed_run(conn, status=S.FAILED, now=clock.now())
    conn.execute("UPDATE metric_runs SET retryable = false WHERE id = %s", (permanent,))
    transient = seed_run(conn, status=S.FAILED, now=clock.now())

    report = sweeper.sweep_once()

    assert [r.retry_of for r in report.retries] == [transient]
    assert retries_of(conn, permanent) == []


def test_an_attempt_retried_by_hand_first_gets_no_second_attempt_of_that_number(
    conn: Connection[TupleRow], sweeper: Sweeper, clock: MutableClock
) -> None:
    first = seed_run(conn, status=S.FAILED, now=clock.now())
    by_hand = seed_run(
        conn, status=S.QUEUED, now=clock.now(), trigger=RunTrigger.MANUAL, attempt=2, retry_of=first
    )

    report = sweeper.sweep_once()

    assert report.retries == ()
    assert [r["id"] for r in retries_of(conn, first)] == [by_hand]


def test_retries_wake_the_dispatcher(
    conn: Connection[TupleRow], database_url: str, sweeper: Sweeper, clock: MutableClock
) -> None:
    seed_run(conn, status=S.FAILED, now=clock.now())
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN metric_run_queued")

        sweeper.sweep_once()

        notices = list(listener.notifies(timeout=5, stop_after=1))
    assert [n.channel for n in notices] == ["metric_run_queued"]


def test_two_sweepers_at_once_create_exactly_one_retry_per_run(
    conn: Connection[TupleRow], uow_factory: UnitOfWorkFactory, clock: MutableClock
) -> None:
    failed = [seed_run(conn, status=S.FAILED, now=clock.now()) for _ in range(30)]
    stuck = [
        seed_run(conn, status=S.DISPATCHED, dispatched_at=clock.now() - timedelta(hours=1))
        for _ in range(30)
    ]
    reports = _sweep_concurrently(uow_factory, clock, replicas=2, rounds=3)

    timed_out = [t.id for r in reports for t in r.timed_out]
    retried = [s.retry_of for r in reports for s in r.retries]
    assert sorted(timed_out) == sorted(stuck)
    assert sorted(retried) == sorted(failed + stuck)
    counts = conn.execute(
        "SELECT retry_of, count(*) FROM metric_runs WHERE retry_of IS NOT NULL GROUP BY retry_of"
    ).fetchall()
    assert {run_id for run_id, _ in counts} == set(failed + stuck)
    assert {n for _, n in counts} == {1}


def test_run_sweeps_until_stopped(
    conn: Connection[TupleRow], uow_factory: UnitOfWorkFactory
) -> None:
    stop = threading.Event()
    clock = _StoppingClock(stop)
    old = seed_run(conn, status=S.FAILED, now=DEFAULT_NOW)

    make_sweeper(uow_factory, clock).run(stop, timedelta(hours=1))

    assert len(retries_of(conn, old)) == 1


def test_run_keeps_sweeping_after_a_failed_sweep(uow_factory: UnitOfWorkFactory) -> None:
    stop = threading.Event()
    clock = _FailingThenStoppingClock(stop)

    make_sweeper(uow_factory, clock).run(stop, timedelta(milliseconds=1))

    assert clock.calls == 2


# --- helpers ----------------------------------------------------------------------------


def _chain_to(conn: Connection[TupleRow], first: UUID, attempt: int, now: datetime) -> UUID:
    """Failed retries of `first` up to `attempt`; returns the last one."""
    previous = first
    metric_id = run_row(conn, first)["metric_id"]
    for n in range(2, attempt + 1):
        previous = seed_run(
            conn,
            metric_id,
            status=S.FAILED,
            now=now,
            trigger=RunTrigger.RETRY,
            attempt=n,
            retry_of=previous,
        )
    return previous


def _sweep_concurrently(
    uow_factory: UnitOfWorkFactory, clock: MutableClock, *, replicas: int, rounds: int
) -> list[SweepReport]:
    """Each replica sweeps `rounds` times in small batches, all replicas released together."""
    reports: list[SweepReport] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(replicas, timeout=60)

    def replica() -> None:
        sweeper = make_sweeper(uow_factory, clock, batch_size=7)
        try:
            for _ in range(rounds * 5):
                barrier.wait()
                report = sweeper.sweep_once()
                with lock:
                    reports.append(report)
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=replica) for _ in range(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return reports


class _StoppingClock(MutableClock):
    """Asks the loop to stop as soon as a sweep has read the time."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._stop = stop

    def now(self) -> datetime:
        self._stop.set()
        return super().now()


class _FailingThenStoppingClock(MutableClock):
    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._stop = stop
        self.calls = 0

    def now(self) -> datetime:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("clock failure")
        self._stop.set()
        return super().now()
