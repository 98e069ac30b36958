"""The bundled sample worker: its feedback follows SPEC §4.2, and it drives real runs to the end.

Its messages are checked with the service's own parsers (`decode_event`, `parse_feedback`), so
the worker cannot drift from the contract the consumers accept.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.feedback import parse_feedback
from metrics_orchestrator.domain.messages.run_completed import RunCompleted
from metrics_orchestrator.domain.messages.run_heartbeat import RunHeartbeat
from metrics_orchestrator.domain.messages.run_started import RunStarted
from metrics_orchestrator.worker.sample import SampleWorker, WorkerPlan
from tests.aws_fixtures import TopologyFactory, receive_messages
from tests.integration.intake_helpers import update_body
from tests.integration.messaging_helpers import (
    load_catalog,
    rows,
    running_service,
    send_batch,
    service_env,
    wait_until,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

BASE_PATH = "s3://metrics-output/metrics/fx.gap/"


@pytest.fixture
def queues(sqs_client: SQSClient, aws_prefix: str) -> tuple[str, str]:
    """(worker queue, feedback queue), both plain standard queues."""
    worker = sqs_client.create_queue(QueueName=f"{aws_prefix}-sw-worker")["QueueUrl"]
    feedback = sqs_client.create_queue(QueueName=f"{aws_prefix}-sw-feedback")["QueueUrl"]
    return worker, feedback


def run_request(metric_code: str = "fx.gap", attempt: int = 1) -> dict[str, Any]:
    update_id = str(uuid.uuid4())
    return {
        "type": "metric_run_requested",
        "schema": "1",
        "runId": str(uuid.uuid4()),
        "attempt": attempt,
        "requestedAt": "2025-11-11T01:41:40Z",
        "metricCode": metric_code,
        "expressionType": "series_math",
        "expressionJson": {
            "op": "ratio",
            "left": {"series_code": "FX_PARALLEL_D"},
            "right": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_daily"},
        },
        "inputs": [
            {"datasetId": "fx_daily", "seriesCode": "FX_PARALLEL_D"},
            {"datasetId": "fx_daily", "seriesCode": "FX_OFFICIAL_D"},
        ],
        "catalog": {
            "datasets": {
                "fx_daily": {
                    "manifestPath": "datasets/fx_daily/versions/v1/manifest.json",
                    "projectionsPath": "datasets/fx_daily/projections",
                    "bucket": "ingestor-datasets",
                    "updateId": update_id,
                }
            }
        },
        "output": {"basePath": BASE_PATH},
    }


def envelope(request: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:run-requests",
            "Message": json.dumps(request),
        }
    )


def feedback_events(sqs: SQSClient, queue_url: str, count: int) -> list[dict[str, Any]]:
    messages = receive_messages(sqs, queue_url, count, timeout=5)
    return [json.loads(m["Body"]) for m in messages]


def by_run(events: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["runId"] == run_id]


@pytest.mark.parametrize("enveloped", [False, True], ids=["raw", "sns-envelope"])
def test_a_request_is_answered_with_started_rising_heartbeats_and_a_simulated_success(
    enveloped: bool, sqs_client: SQSClient, queues: tuple[str, str]
) -> None:
    worker_queue, feedback_queue = queues
    request = run_request()
    body = envelope(request) if enveloped else json.dumps(request)
    sqs_client.send_message(QueueUrl=worker_queue, MessageBody=body)
    observed: list[dict[str, Any]] = []
    worker = SampleWorker(
        sqs_client,
        worker_queue,
        feedback_queue,
        heartbeats=3,
        step_seconds=0.01,
        on_feedback=observed.append,
    )

    assert worker.poll_once() == 1

    events = feedback_events(sqs_client, feedback_queue, 5)
    assert events == observed
    assert [e["type"] for e in events] == [
        "metric_run_started",
        "metric_run_heartbeat",
        "metric_run_heartbeat",
        "metric_run_heartbeat",
        "metric_run_completed",
    ]
    parsed = [parse_feedback(e["type"], decode_event(json.dumps(e)).payload) for e in events]
    started, *beats, completed = parsed
    assert isinstance(started, RunStarted)
    assert started.started_at is not None
    progress = [b.progress for b in beats if isinstance(b, RunHeartbeat) and b.progress]
    assert len(progress) == 3
    assert progress == sorted(set(progress))
    assert all(0 < p < 1 for p in progress)
    assert isinstance(completed, RunCompleted)
    assert completed.run_id == uuid.UUID(request["runId"])
    assert (completed.succeeded, completed.metric_code, completed.error) == (True, "fx.gap", None)
    assert completed.output_manifest is not None
    assert completed.output_manifest.startswith(f"{BASE_PATH}simulated/")
    assert completed.row_count is not None
    assert completed.row_count >= 0
    assert completed.version_ts is not None
    assert datetime.fromisoformat(completed.version_ts).tzinfo is not None
    assert set(events[-1]) == {
        "type",
        "runId",
        "metricCode",
        "status",
        "versionTs",
        "outputManifest",
        "rowCount",
    }
    assert receive_messages(sqs_client, worker_queue, 0, timeout=0.3) == []


def test_behaviour_makes_a_run_fail_or_go_silent(
    sqs_client: SQSClient, queues: tuple[str, str]
) -> None:
    worker_queue, feedback_queue = queues
    ok, failing, silent = (run_request(code) for code in ("ok", "failing", "silent"))
    plans = {
        "ok": WorkerPlan.succeed(),
        "failing": WorkerPlan.fail("disk full (simulated)"),
        "silent": WorkerPlan.go_silent(),
    }
    send_batch(sqs_client, worker_queue, [json.dumps(r) for r in (ok, failing, silent)])
    worker = SampleWorker(
        sqs_client,
        worker_queue,
        feedback_queue,
        behaviour=lambda request: plans[request["metricCode"]],
        step_seconds=0.01,
    )

    answered = 0
    for _ in range(5):
        answered += worker.poll_once()
        if answered == 3:
            break

    assert answered == 3
    events = feedback_events(sqs_client, feedback_queue, 4 + 4 + 1)
    assert [e["type"] for e in by_run(events, silent["runId"])] == ["metric_run_started"]
    assert by_run(events, ok["runId"])[-1]["status"] == "SUCCESS"
    failure = by_run(events, failing["runId"])[-1]
    assert failure == {
        "type": "metric_run_completed",
        "runId": failing["runId"],
        "metricCode": "failing",
        "status": "FAILURE",
        "error": "disk full (simulated)",
    }
    parsed = parse_feedback(failure["type"], failure)
    assert isinstance(parsed, RunCompleted)
    assert not parsed.succeeded


def test_a_request_passed_on_reaches_the_pass_on_sender_untouched_and_is_not_answered(
    sqs_client: SQSClient, queues: tuple[str, str]
) -> None:
    worker_queue, feedback_queue = queues
    passed, failing = run_request("passed"), run_request("failing")
    send_batch(sqs_client, worker_queue, [envelope(passed), json.dumps(failing)])
    handed_over: list[str] = []
    worker = SampleWorker(
        sqs_client,
        worker_queue,
        feedback_queue,
        behaviour=lambda r: (
            WorkerPlan.pass_on() if r["metricCode"] == "passed" else WorkerPlan.fail()
        ),
        heartbeats=0,
        step_seconds=0,
        wait_seconds=0,
        pass_on=handed_over.append,
    )

    answered = sum(worker.poll_once() for _ in range(3))

    assert answered == 2
    assert [json.loads(body) for body in handed_over] == [passed]  # unwrapped, as sent
    events = feedback_events(sqs_client, feedback_queue, 2)
    assert {e["runId"] for e in events} == {failing["runId"]}
    assert receive_messages(sqs_client, worker_queue, 0, timeout=0.3) == []


def test_a_redelivered_request_is_acknowledged_without_a_second_answer(
    sqs_client: SQSClient, queues: tuple[str, str]
) -> None:
    worker_queue, feedback_queue = queues
    first = run_request()
    retry = {**first, "attempt": 2}
    bodies = [json.dumps(first), envelope(first), json.dumps(retry), "not json", '{"type": "x"}']
    send_batch(sqs_client, worker_queue, bodies)
    worker = SampleWorker(
        sqs_client, worker_queue, feedback_queue, heartbeats=0, step_seconds=0, wait_seconds=0
    )

    answered = sum(worker.poll_once() for _ in range(3))

    assert answered == 2
    events = feedback_events(sqs_client, feedback_queue, 4)
    assert [e["type"] for e in events].count("metric_run_completed") == 2
    assert len(events) == 4
    assert receive_messages(sqs_client, worker_queue, 0, timeout=0.3) == []


# --- with the service ------------------------------------------------------------------------


def test_the_sample_worker_drives_runs_to_success_failure_retry_and_timeout(
    database_url: str,
    aws_endpoint_url: str,
    sqs_client: SQSClient,
    make_topology: TopologyFactory,
    catalog_path: Path,
) -> None:
    """What the demo shows: most runs succeed; one fails and is retried; one goes silent,
    times out and is retried; each retry then succeeds."""
    topology = make_topology(fifo=False, raw_delivery=False)
    env = service_env(
        database_url,
        aws_endpoint_url,
        topology,
        RUN_HEARTBEAT_TIMEOUT="1",
        RETRY_BASE_DELAY="0.2",
    )
    load_catalog(env, catalog_path)

    def behaviour(request: dict[str, Any]) -> WorkerPlan:
        if request["attempt"] > 1:
            return WorkerPlan.succeed()
        if request["metricCode"] == "reserves.real_pesos":
            return WorkerPlan.fail()
        if request["metricCode"] == "fx.gap":
            return WorkerPlan.go_silent()
        return WorkerPlan.succeed()

    worker = SampleWorker(
        sqs_client,
        topology.worker_queue.url,
        topology.run_feedback_queue.url,
        behaviour=behaviour,
        step_seconds=0.02,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    with running_service(env):
        thread.start()
        try:
            send_batch(
                sqs_client,
                topology.projection_update_queue.url,
                [update_body(d, "v1") for d in ("reserves_daily", "fx_daily", "prices_monthly")],
            )
            wait_until(
                lambda: final_states(database_url) == EXPECTED_FINAL_STATES,
                timeout=30,
                what="every run and retry to finish",
            )
        finally:
            stop.set()
            thread.join(10)

    assert not thread.is_alive()
    runs = rows(
        database_url,
        "SELECT status, error, status_reason, output_manifest FROM metric_runs r"
        " JOIN metrics m ON m.id = r.metric_id WHERE r.attempt = 1 AND m.code IN (%s, %s)"
        " ORDER BY m.code",
        "fx.gap",
        "reserves.real_pesos",
    )
    assert runs[0][:3] == ("timed_out", runs[0][1], "heartbeat_timeout")
    assert runs[1][:3] == (
        "failed",
        "simulated failure (the sample worker was told to fail this run)",
        "worker_failure",
    )
    manifests = rows(
        database_url, "SELECT output_manifest FROM metric_runs WHERE status = 'succeeded'"
    )
    assert all("/simulated/" in manifest for (manifest,) in manifests)


EXPECTED_FINAL_STATES = [
    ("fx.gap", 1, "timed_out"),
    ("fx.gap", 2, "succeeded"),
    ("prices.real_wages", 1, "succeeded"),
    ("reserves.at_parallel", 1, "succeeded"),
    ("reserves.real_pesos", 1, "failed"),
    ("reserves.real_pesos", 2, "succeeded"),
    ("reserves.sma_20", 1, "succeeded"),
]


def final_states(database_url: str) -> list[tuple[Any, ...]]:
    return rows(
        database_url,
        "SELECT m.code, r.attempt, r.status FROM metric_runs r JOIN metrics m ON m.id = r.metric_id"
        " ORDER BY m.code, r.attempt",
    )
