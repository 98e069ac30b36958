"""The reference worker under hostile input, on moto over HTTP (issue 20 items 9-11).

Bodies 1,500 levels deep on a real queue are answered (a FAILURE naming the problem) or
rejected and deleted, never left to loop into the DLQ; an INVALID_REQUEST naming 6,000
problems fits SNS; the same request delivered to several threads at once is computed once;
and the current manifest, written by racing threads, ends at the latest version.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from metrics_orchestrator.domain.messages.run_requested import RunRequest, read_message
from metrics_orchestrator.domain.s3_locations import S3Location
from metrics_orchestrator.infrastructure.aws.clients import (
    create_s3_client,
    create_sns_client,
    create_sqs_client,
)
from metrics_orchestrator.infrastructure.aws.provisioning import Topology, provision_worker
from metrics_orchestrator.worker.adapters.s3 import S3ObjectStore
from metrics_orchestrator.worker.adapters.sns import SnsFeedbackPublisher
from metrics_orchestrator.worker.adapters.sqs import RunRequestConsumer
from metrics_orchestrator.worker.claims import advance_current
from metrics_orchestrator.worker.compute import ComputeOutcome, RunRequestHandler, WorkerOptions
from metrics_orchestrator.worker.outputs import MAX_PUBLISHED_TEXT, json_bytes, version_ts
from metrics_orchestrator.worker.sample_world import write_sample_world
from tests.aws_fixtures import AWS_REGION, receive_messages
from tests.integration.messaging_helpers import queue_depth, send_batch, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

DEEP = 1_500


class UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def publish(self, event: Mapping[str, Any]) -> None:
        with self.lock:
            self.events.append(dict(event))


def run_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def request_document(n: int, update: dict[str, Any], bucket: str) -> dict[str, Any]:
    return {
        "type": "metric_run_requested",
        "schema": "1",
        "runId": run_id(n),
        "attempt": 1,
        "requestedAt": "2025-11-11T01:41:40Z",
        "metricCode": "m.sma",
        "expressionType": "window_op",
        "expressionJson": {"op": "sma", "series": {"series_code": "SAMPLE_A_D"}, "window": 5},
        "inputs": [{"datasetId": "ds", "seriesCode": "SAMPLE_A_D"}],
        "catalog": {
            "datasets": {
                "ds": {
                    "manifestPath": update["version_manifest_path"],
                    "projectionsPath": update["projections_path"],
                    "bucket": update["bucket"],
                    "updateId": "00000000-0000-0000-0000-000000000001",
                }
            }
        },
        "output": {"basePath": f"s3://{bucket}/metrics/m.sma/"},
    }


def with_deep_value(document: dict[str, Any], field: str) -> str:
    text = json.dumps({**document, field: "__DEEP__"})
    return text.replace('"__DEEP__"', '{"op":' * DEEP + "1" + "}" * DEEP)


def sample_update(s3_client: S3Client, aws_prefix: str) -> dict[str, Any]:
    catalog = {
        "series": [{"code": "SAMPLE_A_D", "frequency": "daily"}],
        "datasets": [{"id": "ds", "bucket": f"{aws_prefix}-in", "series": ["SAMPLE_A_D"]}],
    }
    (update,) = write_sample_world(s3_client, catalog)
    return update


def test_deep_and_huge_bodies_on_the_queue_are_answered_or_rejected_never_looped(
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
    s3_client: S3Client,
    topology: Topology,
    aws_prefix: str,
) -> None:
    output_bucket = f"{aws_prefix}-out"
    feedback = provision_worker(
        sns_client, s3_client, sqs_client, topology, output_bucket=output_bucket
    )
    update = sample_update(s3_client, aws_prefix)
    deep_expression = with_deep_value(request_document(1, update, output_bucket), "expressionJson")
    deep_enveloped = json.dumps(
        {
            "Type": "Notification",
            "Message": with_deep_value(request_document(2, update, output_bucket), "catalog"),
        }
    )
    many_problems = request_document(3, update, output_bucket)
    many_problems["inputs"] = [{"datasetId": n} for n in range(6_000)]
    bodies = [
        deep_expression,
        deep_enveloped,
        json.dumps(many_problems),
        "[" * DEEP + "]" * DEEP,  # no run to answer: rejected and deleted
    ]
    consumer = RunRequestConsumer(
        create_sqs_client(AWS_REGION, aws_endpoint_url),
        topology.worker_queue.url,
        RunRequestHandler(
            S3ObjectStore(create_s3_client(AWS_REGION, aws_endpoint_url)),
            SnsFeedbackPublisher(
                create_sns_client(AWS_REGION, aws_endpoint_url), feedback.feedback_topic_arn
            ),
            UtcClock(),
            WorkerOptions(heartbeat_interval=0.5),
        ),
        concurrency=2,
        wait_seconds=1,
        visibility_timeout=2,  # a message left unanswered would come back (and loop) quickly
    )
    send_batch(sqs_client, topology.worker_queue.url, bodies)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run_forever, args=(stop,))
    with structlog.testing.capture_logs() as logs:
        thread.start()
        try:
            wait_until(
                lambda: queue_depth(sqs_client, topology.worker_queue.url) == (0, 0),
                timeout=30,
                what="every body to be answered or rejected, and deleted",
            )
        finally:
            stop.set()
            thread.join(15)

    events: list[dict[str, Any]] = []

    def three_answers() -> bool:
        batch = receive_messages(sqs_client, topology.run_feedback_queue.url, 10, timeout=1)
        events.extend(json.loads(m["Body"]) for m in batch)
        return len(events) >= 3

    wait_until(three_answers, timeout=20, what="the three FAILURE events")
    by_run = {e["runId"]: e for e in events}
    assert sorted(by_run) == [run_id(1), run_id(2), run_id(3)]
    assert all(e["type"] == "metric_run_completed" for e in events)
    assert all(e["status"] == "FAILURE" and e["retryable"] is False for e in events)
    assert by_run[run_id(1)]["error"].startswith(
        "INVALID_REQUEST: body is JSON nested deeper than 64 levels"
    )
    assert by_run[run_id(2)]["error"].startswith(
        "INVALID_REQUEST: Message is JSON nested deeper than 64 levels"
    )
    assert len(by_run[run_id(3)]["error"]) <= MAX_PUBLISHED_TEXT
    assert by_run[run_id(3)]["error"].endswith(" more problems")
    assert queue_depth(sqs_client, topology.worker_dlq.url) == (0, 0)
    rejected = [e for e in logs if e["event"] == "ON_EVENT_REJECTED"]
    assert [e["reason"] for e in rejected] == ["body is JSON nested deeper than 64 levels"]
    assert not [e for e in logs if e["event"] == "ON_CONSUMER_ERROR"]


def test_the_same_request_delivered_to_several_threads_at_once_is_computed_once(
    aws_endpoint_url: str, s3_client: S3Client, aws_prefix: str
) -> None:
    output_bucket = f"{aws_prefix}-out"
    s3_client.create_bucket(Bucket=output_bucket)
    update = sample_update(s3_client, aws_prefix)
    request = read_message(json.dumps(request_document(7, update, output_bucket)))
    assert isinstance(request, RunRequest)
    publisher = RecordingPublisher()
    deliveries = 6
    barrier = threading.Barrier(deliveries)
    outcomes: list[ComputeOutcome] = []

    def deliver(n: int) -> None:
        handler = RunRequestHandler(
            S3ObjectStore(create_s3_client(AWS_REGION, aws_endpoint_url)),
            publisher,
            UtcClock(),
            WorkerOptions(heartbeat_interval=5),
        )
        barrier.wait()
        outcomes.append(handler.handle(request, threading.Event(), delivery=f"message-{n}"))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(deliveries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert Counter(outcomes) == {
        ComputeOutcome.COMPLETED: 1,
        ComputeOutcome.DUPLICATE: deliveries - 1,
    }
    assert [e["type"] for e in publisher.events] == ["metric_run_started", "metric_run_completed"]
    completed = publisher.events[-1]
    assert completed["status"] == "SUCCESS"
    listed = s3_client.list_objects_v2(Bucket=output_bucket, Prefix="metrics/m.sma/")
    keys = sorted(o["Key"] for o in listed.get("Contents", []) if "Key" in o)
    version = completed["versionTs"]
    base = "metrics/m.sma/"
    assert keys == sorted(
        [
            f"{base}{version}/data/part-0.parquet",
            f"{base}{version}/manifest.json",
            f"{base}current/manifest.json",
            f"{base}runs/{run_id(7)}-1.claim",
            f"{base}runs/{run_id(7)}-1.log",
            f"{base}runs/{run_id(7)}-1.ok",
        ]
    )
    # only the delivery that computed wrote the attempt's log
    log_key = f"{base}runs/{run_id(7)}-1.log"
    log = s3_client.get_object(Bucket=output_bucket, Key=log_key)["Body"].read().decode()
    assert (log.count("run started"), log.count("run completed status=SUCCESS")) == (1, 1)

    def read(key: str) -> Any:
        return json.loads(s3_client.get_object(Bucket=output_bucket, Key=key)["Body"].read())

    assert read(f"{base}runs/{run_id(7)}-1.ok") == completed
    assert read(f"{base}current/manifest.json")["version_ts"] == version


def test_racing_writers_leave_the_latest_version_as_current(
    aws_endpoint_url: str, s3_client: S3Client, aws_prefix: str
) -> None:
    bucket = f"{aws_prefix}-out"
    s3_client.create_bucket(Bucket=bucket)
    location = S3Location(bucket, "metrics/m/current/manifest.json")
    start = datetime(2025, 11, 11, tzinfo=UTC)
    versions = [version_ts(start + timedelta(seconds=n)) for n in (3, 7, 1, 6, 2, 5, 4, 0)]
    barrier = threading.Barrier(len(versions))
    written: list[bool] = []

    def write(version: str) -> None:
        store = S3ObjectStore(create_s3_client(AWS_REGION, aws_endpoint_url))
        barrier.wait()
        written.append(
            advance_current(store, location, json_bytes({"version_ts": version}), version)
        )

    threads = [threading.Thread(target=write, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    current = json.loads(s3_client.get_object(Bucket=bucket, Key=location.key)["Body"].read())
    assert current["version_ts"] == max(versions)
    assert len(written) == len(versions)
    assert any(written)


def test_a_bug_while_handling_a_message_is_logged_and_the_message_kept(
    aws_endpoint_url: str,
    sqs_client: SQSClient,
    s3_client: S3Client,
    topology: Topology,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception escaping into the thread pool's future was lost without a log line."""

    def broken(body: str) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("metrics_orchestrator.worker.adapters.sqs.read_message", broken)
    consumer = RunRequestConsumer(
        create_sqs_client(AWS_REGION, aws_endpoint_url),
        topology.worker_queue.url,
        RunRequestHandler(
            S3ObjectStore(create_s3_client(AWS_REGION, aws_endpoint_url)),
            RecordingPublisher(),
            UtcClock(),
        ),
        wait_seconds=1,
        visibility_timeout=30,
    )
    send_batch(sqs_client, topology.worker_queue.url, ["{}"])
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run_forever, args=(stop,))
    with structlog.testing.capture_logs() as logs:
        thread.start()
        try:
            wait_until(
                lambda: any(e["event"] == "ON_CONSUMER_ERROR" for e in logs),
                timeout=20,
                what="the error to be logged",
            )
        finally:
            stop.set()
            thread.join(15)
    (error,) = [e for e in logs if e["event"] == "ON_CONSUMER_ERROR"]
    assert error["log_level"] == "error"
    assert error["exc_info"] is True
    assert queue_depth(sqs_client, topology.worker_queue.url) == (0, 1)  # in flight, not lost


def test_a_request_published_twice_is_computed_once_by_the_consumers(
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
    s3_client: S3Client,
    topology: Topology,
    aws_prefix: str,
) -> None:
    """Two messages with one run request, received at once by two threads of one consumer."""
    output_bucket = f"{aws_prefix}-out"
    provision_worker(sns_client, s3_client, sqs_client, topology, output_bucket=output_bucket)
    update = sample_update(s3_client, aws_prefix)
    body = json.dumps(request_document(9, update, output_bucket))
    publisher = RecordingPublisher()
    consumer = RunRequestConsumer(
        create_sqs_client(AWS_REGION, aws_endpoint_url),
        topology.worker_queue.url,
        RunRequestHandler(
            S3ObjectStore(create_s3_client(AWS_REGION, aws_endpoint_url)),
            publisher,
            UtcClock(),
            WorkerOptions(heartbeat_interval=0.5, min_run_seconds=1),
        ),
        concurrency=2,
        wait_seconds=1,
        visibility_timeout=30,
    )
    send_batch(sqs_client, topology.worker_queue.url, [body, body])
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run_forever, args=(stop,))
    thread.start()
    try:
        wait_until(
            lambda: queue_depth(sqs_client, topology.worker_queue.url) == (0, 0),
            timeout=30,
            what="both copies to be answered or dropped, and deleted",
        )
    finally:
        stop.set()
        thread.join(15)
    kinds = [e["type"] for e in publisher.events if e["type"] != "metric_run_heartbeat"]
    # The second copy is dropped while the first computes, or answered from its marker after.
    assert kinds in (
        ["metric_run_started", "metric_run_completed"],
        ["metric_run_started", "metric_run_completed", "metric_run_completed"],
    )
    assert {e["status"] for e in publisher.events if "status" in e} == {"SUCCESS"}
    assert len({e["versionTs"] for e in publisher.events if "versionTs" in e}) == 1
