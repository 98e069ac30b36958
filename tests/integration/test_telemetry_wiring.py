"""The dispatcher, sweeper and feedback service report run transitions to Prometheus."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
from mypy_boto3_sns import SNSClient
from prometheus_client.parser import text_string_to_metric_families

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.catalog_spec import MetricSettings
from metrics_orchestrator.application.dispatch import Dispatcher
from metrics_orchestrator.application.runs import RunOperations, Sweeper
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.infrastructure.aws.provisioning import Topology
from metrics_orchestrator.infrastructure.aws.sns import SnsRunRequestPublisher
from metrics_orchestrator.infrastructure.prometheus import PrometheusTelemetry
from tests.conftest import PostgresUnitOfWorkFactory
from tests.factories import DEFAULT_NOW, seed_metric, seed_run
from tests.support import MutableClock, feedback_service


def samples(telemetry: PrometheusTelemetry, name: str) -> dict[tuple[str, str], float]:
    body, _ = telemetry.render()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name:
                found[(sample.labels["from_status"], sample.labels["to_status"])] = sample.value
    return found


TRANSITIONS = "metrics_orchestrator_run_transitions_total"


def test_dispatch_sweep_and_feedback_count_their_transitions(
    database_url: str,
    uow_factory: PostgresUnitOfWorkFactory,
    topology: Topology,
    sns_client: SNSClient,
) -> None:
    clock = MutableClock(DEFAULT_NOW)
    telemetry = PrometheusTelemetry()
    with psycopg.connect(database_url) as conn:
        seed_metric(conn)
        queued = seed_run(conn, status=RunStatus.QUEUED)
        seed_run(conn, status=RunStatus.DISPATCHED)  # its worker never starts
        conn.commit()

    publisher = SnsRunRequestPublisher(sns_client, topology.topic_arn)
    dispatcher = Dispatcher(uow_factory, publisher, clock, max_attempts=3, telemetry=telemetry)
    assert dispatcher.dispatch_once().published == 1

    started = json.dumps({"type": "metric_run_started", "runId": str(queued)})
    feedback_service(uow_factory, clock, telemetry).handle(
        decode_event(started), source="test", received_at=clock.now()
    )

    clock.advance(timedelta(hours=1))
    Sweeper(
        uow_factory,
        clock,
        start_timeout=timedelta(minutes=15),
        heartbeat_timeout=timedelta(hours=2),
        retry_base_delay=timedelta(seconds=1),
        telemetry=telemetry,
    ).sweep_once()

    counted = samples(telemetry, TRANSITIONS)
    assert counted[("queued", "dispatched")] == 1
    assert counted[("dispatched", "running")] == 1
    assert counted[("dispatched", "timed_out")] == 1  # the silent run
    assert counted[("none", "queued")] == 1  # its retry


def test_operator_cancel_and_manual_retry_count_their_transitions(
    database_url: str, uow_factory: PostgresUnitOfWorkFactory
) -> None:
    clock = MutableClock(DEFAULT_NOW)
    telemetry = PrometheusTelemetry()
    with psycopg.connect(database_url) as conn:
        seed_metric(conn)
        running = seed_run(conn, status=RunStatus.RUNNING)
        conn.commit()
    operations = RunOperations(uow_factory, clock, telemetry)

    operations.cancel(running, "not needed")
    operations.retry(running)

    counted = samples(telemetry, TRANSITIONS)
    assert counted[("running", "canceled")] == 1
    assert counted[("none", "queued")] == 1  # the manual retry


def test_catalog_cancels_of_pending_runs_are_counted(
    database_url: str, uow_factory: PostgresUnitOfWorkFactory
) -> None:
    clock = MutableClock(DEFAULT_NOW)
    telemetry = PrometheusTelemetry()
    with psycopg.connect(database_url) as conn:
        seed_metric(conn)
        seed_run(conn, status=RunStatus.PENDING_DEPENDENCIES, pending={"d1": None, "d2": None})
        conn.commit()
    catalog = CatalogService(uow_factory, clock, 7, telemetry)

    catalog.update_metric("ratio.a_to_b", MetricSettings(enabled=False))

    assert samples(telemetry, TRANSITIONS)[("pending_dependencies", "canceled")] == 1
