"""Faults found where a rule of SPEC §5 met SQL, each pinned by a test that failed before.

- cancel racing promotion (§5.5): exactly one of the two wins, never a mix;
- a late success after a timeout supersedes the queued retry (§5.5);
- liveness is judged by our clock, not the worker's (§4.2);
- a disabled metric gets no manual runs or retries (§5.6).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.intake import IntakeResult, IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.runs import RunOperations, Sweeper
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.model import RunStatus
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.integration.intake_helpers import update_body
from tests.support import MutableClock, feedback_service

RACE_CATALOG: dict[str, Any] = {
    "series": [{"code": "A"}, {"code": "B"}],
    "datasets": [{"id": "da", "series": ["A"]}, {"id": "db", "series": ["B"]}],
    "metrics": [
        {
            "id": "m-race",
            "code": "race.ratio",
            "expression_type": "series_math",
            "expression": {
                "op": "ratio",
                "left": {"series_code": "A"},
                "right": {"series_code": "B"},
            },
            "trigger_policy": "all_new",
        }
    ],
}


def _rows(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


class _Intake:
    def __init__(self, intake: IntakeService, clock: MutableClock) -> None:
        self.intake = intake
        self.clock = clock

    def send(self, dataset_id: str, version: str) -> IntakeResult:
        body = update_body(dataset_id, version)
        return self.intake.ingest(decode_event(body), source="test", received_at=self.clock.now())


# --- 1. cancel racing promotion ---------------------------------------------------------


def _at_once(**calls: Callable[[], Any]) -> dict[str, Any]:
    """Run the calls in threads released together; the result of each that returned."""
    barrier = threading.Barrier(len(calls))
    results: dict[str, Any] = {}

    def run(name: str, call: Callable[[], Any]) -> None:
        barrier.wait()
        results[name] = call()

    threads = [threading.Thread(target=run, args=item) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.slow
def test_cancel_racing_promotion_never_leaves_a_mix(
    uow_factory: UnitOfWorkFactory, database_url: str, clock: MutableClock
) -> None:
    """A pending run, an update that makes it ready and a cancel, at the same moment.

    Either the promotion wins (the run is queued with its lineage and payload, then the
    cancel cancels the queued run) or the cancel wins (the pending run is canceled with
    nothing else written, and the update queues a new run on the same inputs). Every input
    set is consumed by exactly one run, which is the metric's last automatic run.
    """
    CatalogService(uow_factory, clock, default_required_days=7).load_catalog(RACE_CATALOG)
    intake = _Intake(IntakeService(uow_factory, clock, lambda code: f"s3://out/{code}/"), clock)
    operations = RunOperations(uow_factory, clock)
    outcomes = {"cancel_won": 0, "promotion_won": 0}

    for i in range(150):
        clock.advance(timedelta(seconds=1))
        (pending_id,) = intake.send("da", f"a{i}").pending_runs
        clock.advance(timedelta(seconds=1))
        results = _at_once(
            intake=partial(intake.send, "db", f"b{i}"),
            cancel=partial(operations.cancel, pending_id, "operator changed their mind"),
        )
        assert set(results) == {"intake", "cancel"}, f"iteration {i}: a side raised"

        pending = _rows(
            database_url,
            "SELECT status, request_payload IS NOT NULL FROM metric_runs WHERE id = %s",
            pending_id,
        )[0]
        consumers = _rows(
            database_url,
            "SELECT l.run_id FROM run_dataset_updates l"
            " JOIN dataset_updates u ON u.id = l.update_id"
            " WHERE u.version_manifest_path LIKE %s GROUP BY l.run_id",
            f"%/versions/b{i}/%",
        )
        (last_automatic,) = _rows(
            database_url, "SELECT last_automatic_run_id FROM metrics WHERE id = 'm-race'"
        )[0]
        queued: tuple[UUID, ...] = results["intake"].queued_runs
        assert pending[0] == RunStatus.CANCELED.value, f"iteration {i}"
        assert len(consumers) == 1, f"iteration {i}: {len(consumers)} runs consumed b{i}"
        (consumer,) = consumers[0]
        assert last_automatic == consumer, f"iteration {i}"
        assert queued == (consumer,), f"iteration {i}"
        if pending[1]:  # promoted, then canceled as a queued run
            assert consumer == pending_id, f"iteration {i}"
            outcomes["promotion_won"] += 1
        else:  # canceled while pending: nothing written for it, a new run took the inputs
            assert consumer != pending_id, f"iteration {i}"
            lineage = _rows(
                database_url, "SELECT 1 FROM run_dataset_updates WHERE run_id = %s", pending_id
            )
            assert lineage == [], f"iteration {i}"
            outcomes["cancel_won"] += 1
        # the next iteration starts from a consumed (a_i, b_i): cancel the queued run too
        if consumer != pending_id:
            operations.cancel(consumer, "clean up")
    assert sum(outcomes.values()) == 150


# --- 2. late success after a timeout ----------------------------------------------------


@pytest.fixture
def lifecycle(uow_factory: UnitOfWorkFactory, clock: MutableClock) -> dict[str, Any]:
    CatalogService(uow_factory, clock, default_required_days=7).load_catalog(
        {
            "series": [{"code": "S"}],
            "datasets": [{"id": "ds", "series": ["S"]}],
            "metrics": [
                {
                    "id": "m-one",
                    "code": "one.sma",
                    "expression_type": "window_op",
                    "expression": {"op": "sma", "series": {"series_code": "S"}, "window": 3},
                    "max_attempts": 3,
                }
            ],
        }
    )
    return {
        "intake": _Intake(IntakeService(uow_factory, clock, lambda c: f"s3://o/{c}/"), clock),
        "feedback": feedback_service(uow_factory, clock),
        "sweeper": Sweeper(
            uow_factory,
            clock,
            start_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(minutes=5),
            retry_base_delay=timedelta(minutes=1),
        ),
    }


def _feedback(service: FeedbackService, clock: MutableClock, **event: Any) -> None:
    outcome = service.handle(
        decode_event(json.dumps(event)), source="test", received_at=clock.now()
    )
    assert outcome.status.value == "processed", outcome.reason


def _dispatch(database_url: str, run_id: UUID, at: datetime) -> None:
    """What the dispatcher writes once a request is published."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE metric_runs SET status = 'dispatched', dispatched_at = %s WHERE id = %s",
            (at, run_id),
        )


def _status(database_url: str, run_id: UUID) -> tuple[str, str | None]:
    status, reason = _rows(
        database_url, "SELECT status, status_reason FROM metric_runs WHERE id = %s", run_id
    )[0]
    return status, reason


def test_late_success_cancels_the_retry_the_sweeper_created(
    lifecycle: dict[str, Any], database_url: str, clock: MutableClock
) -> None:
    (run_id,) = lifecycle["intake"].send("ds", "v1").queued_runs
    _dispatch(database_url, run_id, clock.now())
    _feedback(lifecycle["feedback"], clock, type="metric_run_started", runId=str(run_id))
    clock.advance(timedelta(minutes=6))
    report = lifecycle["sweeper"].sweep_once()
    assert [t.id for t in report.timed_out] == [run_id]
    assert [r.retry_of for r in report.retries] == [run_id]
    (retry,) = report.retries

    _feedback(
        lifecycle["feedback"],
        clock,
        type="metric_run_completed",
        runId=str(run_id),
        status="SUCCESS",
        rowCount=3,
    )

    assert _status(database_url, run_id)[0] == "succeeded"
    assert _status(database_url, retry.id) == ("canceled", "superseded: attempt 1 succeeded late")


# --- 3. liveness by our clock -----------------------------------------------------------


def test_a_worker_clock_in_the_future_does_not_keep_a_dead_run_alive(
    lifecycle: dict[str, Any], database_url: str, clock: MutableClock
) -> None:
    (run_id,) = lifecycle["intake"].send("ds", "v1").queued_runs
    _dispatch(database_url, run_id, clock.now())
    _feedback(
        lifecycle["feedback"],
        clock,
        type="metric_run_started",
        runId=str(run_id),
        startedAt="2999-01-01T00:00:00Z",
    )
    clock.advance(timedelta(minutes=5, seconds=1))

    report = lifecycle["sweeper"].sweep_once()

    assert [t.id for t in report.timed_out] == [run_id]
    assert _status(database_url, run_id) == ("timed_out", "heartbeat_timeout")


def test_a_worker_clock_in_1970_is_not_timed_out_while_it_heartbeats(
    lifecycle: dict[str, Any], database_url: str, clock: MutableClock
) -> None:
    (run_id,) = lifecycle["intake"].send("ds", "v1").queued_runs
    _dispatch(database_url, run_id, clock.now())
    _feedback(
        lifecycle["feedback"],
        clock,
        type="metric_run_started",
        runId=str(run_id),
        startedAt="1970-01-01T00:00:00Z",
    )
    for minute in range(12):
        clock.advance(timedelta(minutes=2))
        _feedback(
            lifecycle["feedback"],
            clock,
            type="metric_run_heartbeat",
            runId=str(run_id),
            ts=f"1970-01-01T00:{minute:02d}:00Z",
            progress=0.1,
        )
        assert lifecycle["sweeper"].sweep_once().timed_out == ()

    row = _rows(
        database_url,
        "SELECT status, started_at, last_heartbeat_at FROM metric_runs WHERE id = %s",
        run_id,
    )[0]
    assert row[0] == "running"
    # what the worker reported is kept as reported
    assert row[1] == datetime(1970, 1, 1, tzinfo=UTC)
    assert row[2] == datetime(1970, 1, 1, 0, 11, tzinfo=UTC)


# --- 4. disabled metrics get no runs of any kind ----------------------------------------


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    clock = MutableClock()
    with running_api(database_url, clock) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        yield api


def _disable(api: Api, code: str) -> None:
    response = api.client.patch(f"/metrics/{code}", json={"enabled": False})
    assert response.status_code == 200, response.text


def test_a_manual_run_of_a_disabled_metric_is_a_409(api: Api) -> None:
    assert api.send_update("reserves_daily", "r1").status_code < 300
    _disable(api, "reserves.sma_20")

    response = api.client.post("/metrics/reserves.sma_20/runs")

    assert_problem(response, 409, detail_contains="disabled")
    assert all(run["trigger"] != "manual" for run in api.runs_of("reserves.sma_20"))


def test_a_retry_of_a_run_of_a_disabled_metric_is_a_409(api: Api) -> None:
    api.send_update("reserves_daily", "r1")
    (run,) = api.runs_of("reserves.sma_20")
    assert api.client.post(f"/runs/{run['id']}/cancel").status_code == 200
    _disable(api, "reserves.sma_20")

    response = api.client.post(f"/runs/{run['id']}/retry")

    assert_problem(response, 409, detail_contains="disabled")
    assert len(api.runs_of("reserves.sma_20")) == 1
