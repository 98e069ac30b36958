"""The workers' composition root: builds a worker from its settings. Nothing else wires one.

`metrics-orchestrator worker`, `serve --worker` and the demo all get the reference worker from
`build_worker`; `serve --sample-worker` and the demo get the simulated one from
`build_sample_worker`. The reference worker's columnar engine (polars, the `[worker]` extra)
is imported when a reference worker is built, not when this module is: the sample worker
needs none of it, and a missing extra is one clear error when a computing worker is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metrics_orchestrator.infrastructure.aws.clients import (
    create_s3_client,
    create_sns_client,
    create_sqs_client,
)
from metrics_orchestrator.infrastructure.clock import SystemClock
from metrics_orchestrator.worker.adapters.s3 import S3ObjectStore
from metrics_orchestrator.worker.adapters.sns import SnsFeedbackPublisher
from metrics_orchestrator.worker.sample import SampleWorker
from metrics_orchestrator.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from metrics_orchestrator.worker.adapters.sqs import RunRequestConsumer


def build_worker(settings: WorkerSettings) -> RunRequestConsumer:
    """The reference worker; ImportError without the `[worker]` extra."""
    # Here, not at the top: the engine is optional (see the module docstring).
    from metrics_orchestrator.worker.adapters.sqs import RunRequestConsumer
    from metrics_orchestrator.worker.compute import RunRequestHandler, WorkerOptions

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


def build_sample_worker(
    region: str,
    endpoint_url: str | None,
    worker_queue_url: str,
    feedback_queue_url: str,
    **options: Any,
) -> SampleWorker:
    """The sample worker, which SIMULATES computations; `options` are `SampleWorker`'s."""
    return SampleWorker(
        create_sqs_client(region, endpoint_url), worker_queue_url, feedback_queue_url, **options
    )
