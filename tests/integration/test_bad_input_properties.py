"""The promise of SPEC §5.8, property-tested: any body whatsoever ends as exactly one
event_log row and never makes handling raise (router, real PostgreSQL). The same strategies
(tests/hostile_inputs.py) drive the HTTP intake in test_http_schemathesis.py."""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.domain.model import RunStatus
from tests.factories import seed_run
from tests.hostile_inputs import RUN_ID, hostile_bodies
from tests.support import MutableClock

PROPERTY_SETTINGS = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _count(conn: Connection[TupleRow]) -> int:
    row = conn.execute("SELECT count(*) FROM event_log").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def router(uow_factory: UnitOfWorkFactory, clock: MutableClock) -> EventRouter:
    intake = IntakeService(uow_factory, clock, lambda code: f"s3://out/{code}/")
    return EventRouter(uow_factory, clock, intake, FeedbackService(uow_factory, clock, intake))


@pytest.fixture
def run_id(conn: Connection[TupleRow]) -> UUID:
    return seed_run(conn, status=RunStatus.RUNNING)


@PROPERTY_SETTINGS
@given(body=hostile_bodies, as_text=st.booleans())
def test_any_body_ends_as_exactly_one_event_log_row(
    router: EventRouter, conn: Connection[TupleRow], run_id: UUID, body: bytes, as_text: bool
) -> None:
    body = body.replace(RUN_ID.encode(), str(run_id).encode())
    message: bytes | str = body
    if as_text:  # as the SQS consumer hands it over
        try:
            message = body.decode("utf-8")
        except UnicodeDecodeError:
            message = body
    before = _count(conn)

    router.handle(message, source="property")

    assert _count(conn) == before + 1
