"""`EventRouter.handle_batch`: one SQS receive, its updates in one transaction (SPEC §5.8, §7)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
from bench.catalog import CatalogShape, dataset_id, generate_catalog, metric_code
from bench.stream import projection_update

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.router import EventRouter
from tests.support import MutableClock


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_a_receive_is_routed_body_by_body_with_the_one_by_one_outcome(
    uow_factory: UnitOfWorkFactory, clock: MutableClock, database_url: str
) -> None:
    CatalogService(uow_factory, clock, 7).load_catalog(
        generate_catalog(CatalogShape(datasets=3, fan_out=3))
    )
    intake = IntakeService(uow_factory, clock, lambda code: f"s3://out/{code}/")
    router = EventRouter(uow_factory, clock, intake, FeedbackService(uow_factory, clock, intake))
    feedback = {"type": "metric_run_started", "runId": str(uuid.uuid4()), "startedAt": "x"}
    bodies = [
        json.dumps(projection_update(0, "v1", clock.now())),
        "not json",
        json.dumps(feedback),
        json.dumps(projection_update(0, "v2", clock.now())),
        json.dumps(projection_update(0, "v2", clock.now())),
    ]

    routed = router.handle_batch(bodies, source="sqs:test")

    assert [r.status for r in routed] == [
        EventStatus.PROCESSED,
        EventStatus.REJECTED,
        EventStatus.REJECTED,
        EventStatus.PROCESSED,
        EventStatus.DUPLICATE,
    ]
    assert [r.event_type for r in routed][3:] == ["projection_update"] * 2
    # a single-input metric runs on each of the two versions, as one by one
    assert rows(
        database_url,
        "SELECT count(*) FROM metric_runs r JOIN metrics m ON m.id = r.metric_id"
        f" WHERE m.code = '{metric_code(0, 0)}' AND r.status = 'queued'",
    ) == [(2,)]
    assert rows(database_url, "SELECT count(*) FROM event_log") == [(5,)]
    assert rows(
        database_url, f"SELECT count(*) FROM dataset_updates WHERE dataset_id = '{dataset_id(0)}'"
    ) == [(2,)]
