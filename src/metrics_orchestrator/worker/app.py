"""Builds the reference worker from its settings (the worker's composition root)."""

from __future__ import annotations

from datetime import UTC, datetime

from metrics_orchestrator.infrastructure.aws.clients import (
    create_s3_client,
    create_sns_client,
    create_sqs_client,
)
from metrics_orchestrator.worker.adapters.s3 import S3ObjectStore
from metrics_orchestrator.worker.adapters.sns import SnsFeedbackPublisher
from metrics_orchestrator.worker.adapters.sqs import RunRequestConsumer
from metrics_orchestrator.worker.compute import RunRequestHandler, WorkerOptions
from metrics_orchestrator.worker.settings import WorkerSettings


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def build_worker(settings: WorkerSettings) -> RunRequestConsumer:
    region, endpoint = settings.aws_region, settings.aws_endpoint_url
    handler = RunRequestHandler(
        S3ObjectStore(create_s3_client(region, endpoint)),
        SnsFeedbackPublisher(
            create_sns_client(region, endpoint), settings.sns_run_feedback_topic_arn
        ),
        SystemClock(),
        WorkerOptions(
            heartbeat_interval=settings.worker_heartbeat_interval,
            min_run_seconds=settings.worker_min_run_seconds,
        ),
    )
    return RunRequestConsumer(
        create_sqs_client(region, endpoint),
        settings.sqs_run_request_queue_url,
        handler,
        concurrency=settings.worker_concurrency,
        wait_seconds=settings.sqs_wait_seconds,
        visibility_timeout=settings.worker_visibility_timeout,
    )
