"""The worker's SQS consumer on moto over HTTP: WORKER_CONCURRENCY runs at once, and several
consumers sharing one queue (competing consumers) answer every request once."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from metrics_orchestrator.infrastructure.aws.clients import (
    create_s3_client,
    create_sns_client,
    create_sqs_client,
)
from metrics_orchestrator.infrastructure.aws.provisioning import Topology, provision_worker
from metrics_orchestrator.worker.adapters.s3 import S3ObjectStore
from metrics_orchestrator.worker.adapters.sns import SnsFeedbackPublisher
from metrics_orchestrator.worker.adapters.sqs import RunRequestConsumer
from metrics_orchestrator.worker.compute import RunRequestHandler, WorkerOptions
from metrics_orchestrator.worker.sample_world import write_sample_world
from tests.aws_fixtures import AWS_REGION, receive_messages
from tests.integration.messaging_helpers import queue_depth, send_batch, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

REQUESTS = 8
HOLD_SECONDS = 1.0


class UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class CountingPublisher:
    """The real SNS publisher, noting which runs this consumer started and finished, in order."""

    # (runs in flight now, most ever in flight), shared by every publisher of a test
    in_flight = [0, 0]
    lock = threading.Lock()

    def __init__(self, inner: SnsFeedbackPublisher) -> None:
        self.inner = inner
        self.started: list[str] = []

    def publish(self, event: Mapping[str, Any]) -> None:
        if event["type"] == "metric_run_started":
            with self.lock:
                self.in_flight[0] += 1
                self.in_flight[1] = max(self.in_flight)
        self.inner.publish(event)
        if event["type"] == "metric_run_started":
            self.started.append(str(event["runId"]))
        elif event["type"] == "metric_run_completed":
            with self.lock:
                self.in_flight[0] -= 1


def request_bodies(update: dict[str, Any], bucket: str) -> list[str]:
    bodies = []
    for n in range(REQUESTS):
        bodies.append(
            json.dumps(
                {
                    "type": "metric_run_requested",
                    "schema": "1",
                    "runId": f"00000000-0000-0000-0000-{n:012d}",
                    "attempt": 1,
                    "requestedAt": "2025-11-11T01:41:40Z",
                    "metricCode": f"m.sma_{n}",
                    "expressionType": "window_op",
                    "expressionJson": {
                        "op": "sma",
                        "series": {"series_code": "SAMPLE_A_D"},
                        "window": n + 1,
                    },
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
                    "output": {"basePath": f"s3://{bucket}/metrics/m.sma_{n}/"},
                }
            )
        )
    return bodies


def test_competing_consumers_compute_in_parallel_and_answer_each_request_once(
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
    catalog = {
        "series": [{"code": "SAMPLE_A_D", "frequency": "daily"}],
        "datasets": [{"id": "ds", "bucket": f"{aws_prefix}-in", "series": ["SAMPLE_A_D"]}],
    }
    (update,) = write_sample_world(s3_client, catalog)
    publishers = []
    consumers = []
    for _ in range(2):
        publisher = CountingPublisher(
            SnsFeedbackPublisher(
                create_sns_client(AWS_REGION, aws_endpoint_url), feedback.feedback_topic_arn
            )
        )
        handler = RunRequestHandler(
            S3ObjectStore(create_s3_client(AWS_REGION, aws_endpoint_url)),
            publisher,
            UtcClock(),
            WorkerOptions(heartbeat_interval=0.3, min_run_seconds=HOLD_SECONDS),
        )
        publishers.append(publisher)
        consumers.append(
            RunRequestConsumer(
                create_sqs_client(AWS_REGION, aws_endpoint_url),
                topology.worker_queue.url,
                handler,
                concurrency=2,
                wait_seconds=1,
                visibility_timeout=30,
            )
        )
    stop = threading.Event()
    threads = [threading.Thread(target=c.run_forever, args=(stop,)) for c in consumers]
    send_batch(sqs_client, topology.worker_queue.url, request_bodies(update, output_bucket))
    CountingPublisher.in_flight[:] = [0, 0]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: queue_depth(sqs_client, topology.worker_queue.url) == (0, 0),
            timeout=30,
            what="every request to be answered and deleted",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert not any(thread.is_alive() for thread in threads)

    # 8 runs held 1 s each on 2 x 2 slots overlap: more than one consumer's 2 slots were busy
    # at once (counted from the events, not timed: a loaded machine only makes it slower).
    assert CountingPublisher.in_flight[1] > 2, f"at most {CountingPublisher.in_flight[1]} at once"
    started = Counter(run for p in publishers for run in p.started)
    assert len(started) == REQUESTS
    assert max(started.values()) == 1
    assert all(p.started for p in publishers), "both consumers took part"
    # Heartbeats every 0.3 s make the number of feedback events depend on the machine's
    # speed: read until every started run's completion has arrived, not a fixed count.
    events: list[dict[str, Any]] = []

    def every_run_completed() -> bool:
        batch = receive_messages(sqs_client, topology.run_feedback_queue.url, 10, timeout=1)
        events.extend(json.loads(m["Body"]) for m in batch)
        done = {e["runId"] for e in events if e["type"] == "metric_run_completed"}
        return done >= set(started)

    wait_until(every_run_completed, timeout=30, what="every run's completion event")
    completed = [e for e in events if e["type"] == "metric_run_completed"]
    assert sorted(e["runId"] for e in completed) == sorted(started)
    assert {e["status"] for e in completed} == {"SUCCESS"}
    assert any(e["type"] == "metric_run_heartbeat" for e in events)


def test_heartbeats_extend_the_visibility_so_a_long_run_is_not_taken_twice(
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
    s3_client: S3Client,
    topology: Topology,
    aws_prefix: str,
) -> None:
    """A 2 s visibility timeout and a 5 s run: without the extensions the other consumer, which
    keeps polling, would receive the request a second time."""
    output_bucket = f"{aws_prefix}-out"
    feedback = provision_worker(
        sns_client, s3_client, sqs_client, topology, output_bucket=output_bucket
    )
    catalog = {
        "series": [{"code": "SAMPLE_A_D", "frequency": "daily"}],
        "datasets": [{"id": "ds", "bucket": f"{aws_prefix}-in", "series": ["SAMPLE_A_D"]}],
    }
    (update,) = write_sample_world(s3_client, catalog)
    publishers = [
        CountingPublisher(
            SnsFeedbackPublisher(
                create_sns_client(AWS_REGION, aws_endpoint_url), feedback.feedback_topic_arn
            )
        )
        for _ in range(2)
    ]
    consumers = [
        RunRequestConsumer(
            create_sqs_client(AWS_REGION, aws_endpoint_url),
            topology.worker_queue.url,
            RunRequestHandler(
                S3ObjectStore(create_s3_client(AWS_REGION, aws_endpoint_url)),
                publisher,
                UtcClock(),
                WorkerOptions(heartbeat_interval=0.5, min_run_seconds=5),
            ),
            concurrency=1,
            wait_seconds=1,
            visibility_timeout=2,
        )
        for publisher in publishers
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=c.run_forever, args=(stop,)) for c in consumers]
    send_batch(sqs_client, topology.worker_queue.url, request_bodies(update, output_bucket)[:1])
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: queue_depth(sqs_client, topology.worker_queue.url) == (0, 0),
            timeout=30,
            what="the request to be answered and deleted",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    started = [run for p in publishers for run in p.started]
    assert started == ["00000000-0000-0000-0000-000000000000"]
