"""`IntakeService.ingest_many`: up to ten updates in one transaction (SPEC §5.1-§5.4)."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any, NoReturn

import psycopg
import pytest
import structlog
from bench.catalog import CatalogShape, dataset_id, generate_catalog, metric_code
from bench.stream import projection_update

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.intake import MAX_BATCH, IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.domain.events import DecodedEvent, decode_event
from tests.support import MutableClock

# Three datasets; dataset d owns a single-input `any_new` metric (ordinal 0) and an `all_new`
# metric over d and d+1 (ordinal 1).
SHAPE = CatalogShape(datasets=3, fan_out=3)


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def intake(uow_factory: UnitOfWorkFactory, clock: MutableClock) -> IntakeService:
    CatalogService(uow_factory, clock, 7).load_catalog(generate_catalog(SHAPE))
    return IntakeService(uow_factory, clock, lambda code: f"s3://out/{code}/")


def update(clock: MutableClock, dataset: int, version: str, minutes_ago: int = 0) -> DecodedEvent:
    occurred = clock.now() - timedelta(minutes=minutes_ago)
    return decode_event(json.dumps(projection_update(dataset, version, occurred)))


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_each_event_of_a_batch_gets_its_own_outcome_and_event_log_row(
    intake: IntakeService, clock: MutableClock, database_url: str
) -> None:
    first = update(clock, 0, "v1")
    batch = [
        first,
        first,  # the same message twice in one batch
        decode_event(json.dumps({**projection_update(0, "x", clock.now()), "dataset_id": "nope"})),
        decode_event(json.dumps({"event": "projection_update", "dataset_id": dataset_id(1)})),
        update(clock, 1, "v1"),
    ]

    results = intake.ingest_many(batch, source="test", received_at=clock.now())

    assert [r.status for r in results] == [
        EventStatus.PROCESSED,
        EventStatus.DUPLICATE,
        EventStatus.REJECTED,
        EventStatus.REJECTED,
        EventStatus.PROCESSED,
    ]
    assert results[2].error == "unknown dataset 'nope'"
    assert results[3].error is not None
    assert "version_manifest_path" in results[3].error
    assert rows(database_url, "SELECT status FROM event_log ORDER BY id") == [
        ("processed",),
        ("duplicate",),
        ("rejected",),
        ("rejected",),
        ("processed",),
    ]
    assert rows(database_url, "SELECT count(*) FROM dataset_updates") == [(2,)]


def test_a_batch_is_evaluated_in_arrival_order(
    intake: IntakeService, clock: MutableClock, database_url: str
) -> None:
    batch = [
        update(clock, 0, "old", minutes_ago=5),
        update(clock, 0, "new"),
        update(clock, 1, "v1"),
    ]

    results = intake.ingest_many(batch, source="test", received_at=clock.now())

    single = metric_code(0, 0)
    pair = metric_code(0, 1)  # reads datasets 0 and 1, all_new
    runs: dict[str, list[list[str]]] = {}
    for code, versions in rows(
        database_url,
        "SELECT m.code, array_agg(u.version_manifest_path ORDER BY u.dataset_id)"
        " FROM metric_runs r JOIN metrics m ON m.id = r.metric_id"
        " JOIN run_dataset_updates l ON l.run_id = r.id"
        " JOIN dataset_updates u ON u.id = l.update_id"
        " WHERE r.status = 'queued' GROUP BY m.code, r.id ORDER BY m.code, min(u.seq)",
    ):
        runs.setdefault(code, []).append(versions)
    manifest = "datasets/{}/versions/{}/manifest.json".format
    # the single-input metric runs on every new version, as one by one
    assert runs[single] == [[manifest(dataset_id(0), "old")], [manifest(dataset_id(0), "new")]]
    assert runs[pair] == [[manifest(dataset_id(0), "new"), manifest(dataset_id(1), "v1")]]
    # each run is reported with the event that queued it
    reported = [run for r in results for run in r.queued_runs]
    assert len(reported) == len(set(reported)) == sum(len(v) for v in runs.values())
    assert len(results[0].queued_runs) == 1
    assert len(results[1].queued_runs) == 1
    assert results[1].pending_runs == results[0].pending_runs != ()


def test_one_event_through_the_batch_path_matches_ingest(
    intake: IntakeService, clock: MutableClock
) -> None:
    (batched,) = intake.ingest_many(
        [update(clock, 2, "v1")], source="test", received_at=clock.now()
    )
    single = intake.ingest(update(clock, 2, "v2"), source="test", received_at=clock.now())
    assert batched.status is single.status is EventStatus.PROCESSED
    assert len(batched.queued_runs) == len(single.queued_runs) == 1


@pytest.mark.parametrize("size", [0, MAX_BATCH + 1])
def test_a_batch_holds_one_to_ten_events(
    intake: IntakeService, clock: MutableClock, size: int
) -> None:
    with pytest.raises(ValueError, match="between 1 and 10"):
        intake.ingest_many(
            [update(clock, 0, f"v{n}") for n in range(size)], source="t", received_at=clock.now()
        )


def test_an_update_the_database_refuses_is_rejected_alone(
    intake: IntakeService, clock: MutableClock, database_url: str
) -> None:
    # A constraint stands for whatever the database may refuse in one update's writes.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE dataset_updates ADD CONSTRAINT no_poison"
            " CHECK (version_manifest_path NOT LIKE '%poison%')"
        )
    batch = [update(clock, 0, "v1"), update(clock, 1, "poison"), update(clock, 1, "v2")]

    results = intake.ingest_many(batch, source="test", received_at=clock.now())

    assert [r.status for r in results] == [
        EventStatus.PROCESSED,
        EventStatus.REJECTED,
        EventStatus.PROCESSED,
    ]
    assert results[1].error is not None
    assert "no_poison" in results[1].error
    assert rows(database_url, "SELECT status, raw_body IS NOT NULL FROM event_log ORDER BY id") == [
        ("processed", False),
        ("rejected", True),
        ("processed", False),
    ]
    assert rows(database_url, "SELECT version_manifest_path FROM dataset_updates ORDER BY seq") == [
        (f"datasets/{dataset_id(0)}/versions/v1/manifest.json",),
        (f"datasets/{dataset_id(1)}/versions/v2/manifest.json",),
    ]
    # the others' runs are kept
    assert results[0].queued_runs
    assert results[2].queued_runs


def test_a_pending_run_promoted_and_a_new_one_held_in_one_batch(
    intake: IntakeService, clock: MutableClock, database_url: str
) -> None:
    pair = metric_code(0, 1)  # reads datasets 0 and 1, all_new
    intake.ingest_many([update(clock, 0, "v1")], source="t", received_at=clock.now())
    pending_sql = (
        "SELECT r.id FROM metric_runs r JOIN metrics m ON m.id = r.metric_id"
        " WHERE m.code = %s AND r.status = 'pending_dependencies'"
    )
    ((waiting,),) = rows(database_url, pending_sql, pair)
    clock.advance(timedelta(minutes=1))
    # the first update completes the waiting run; the second starts a new wait
    batch = [update(clock, 1, "v1"), update(clock, 0, "v2")]

    completed, again = intake.ingest_many(batch, source="t", received_at=clock.now())

    assert waiting in completed.queued_runs
    ((held,),) = rows(database_url, pending_sql, pair)
    assert held != waiting
    assert held in again.pending_runs
    statuses = rows(
        database_url,
        "SELECT r.id, r.status, r.queued_at IS NOT NULL FROM metric_runs r"
        " JOIN metrics m ON m.id = r.metric_id WHERE m.code = %s",
        pair,
    )
    assert sorted((s, q) for _, s, q in statuses) == [
        ("pending_dependencies", False),
        ("queued", True),
    ]
    # the promoted run's rows record the updates it consumed; the new one holds dataset 0's v2
    holds = {
        (run_id, ds): uid is not None
        for run_id, ds, uid in rows(
            database_url,
            "SELECT run_id, dataset_id, update_id FROM metric_run_pending_datasets",
        )
    }
    assert holds[(waiting, dataset_id(0))]
    assert holds[(waiting, dataset_id(1))]
    assert holds[(held, dataset_id(0))]
    assert not holds[(held, dataset_id(1))]


def test_outcomes_are_logged_after_commit_never_while_the_transaction_is_open(
    intake: IntakeService, clock: MutableClock, database_url: str
) -> None:
    # A log write can block (a pipe nobody reads): it must never do so holding locks.
    with psycopg.connect(database_url, autocommit=True) as probe:
        probe.execute(
            "ALTER TABLE dataset_updates ADD CONSTRAINT no_poison"
            " CHECK (version_manifest_path NOT LIKE '%poison%')"
        )
        open_at_log: list[tuple[str, int]] = []

        def transactions_open_at_log(
            _logger: Any, _method: str, event: MutableMapping[str, Any]
        ) -> NoReturn:
            (count,) = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()"
            ).fetchone() or (0,)
            open_at_log.append((str(event["event"]), count))
            raise structlog.DropEvent

        structlog.configure(processors=[transactions_open_at_log])
        first = update(clock, 0, "v1")
        unknown = {**projection_update(0, "x", clock.now()), "dataset_id": "nope"}
        batch = [first, first, decode_event(json.dumps(unknown)), update(clock, 1, "poison")]

        results = intake.ingest_many(batch, source="test", received_at=clock.now())
        intake.ingest(update(clock, 2, "v1"), source="test", received_at=clock.now())

    assert [r.status for r in results] == [
        EventStatus.PROCESSED,
        EventStatus.DUPLICATE,
        EventStatus.REJECTED,
        EventStatus.REJECTED,
    ]
    # five outcomes, and the two rejections' incidents (SPEC §9), all after the commit
    assert len(open_at_log) == 7
    assert [event for event, _ in open_at_log].count("ON_INCIDENT_OPENED") == 2
    assert [count for _, count in open_at_log] == [0] * 7, open_at_log
