"""The workers as service loops: for `worker`, `serve --worker` / `--sample-worker` and the demo.

With `sample_world.py`, the only part of the control plane that imports the worker package
(tests/unit/test_architecture.py), and only inside functions, so a command that starts no worker
loads none of it. Every worker is built by `worker/bootstrap.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from metrics_orchestrator.bootstrap import AwsWiring, LogFormat, Settings, configure_logging
from metrics_orchestrator.interfaces.runtime import Loop

MISSING_EXTRA = (
    "the reference worker needs its columnar engine: pip install 'metrics-orchestrator[worker]'"
)


class WorkerUnavailable(Exception):
    """The worker cannot be built (bad settings, missing extra); the message says why."""


def worker_loop(overrides: dict[str, Any], *, configure: bool = False) -> Loop:
    """The worker as a service loop, from the environment plus `overrides`."""
    # Lazy (not a cycle): a process that starts no worker loads none of the worker package.
    from metrics_orchestrator.worker.bootstrap import build_worker
    from metrics_orchestrator.worker.settings import WorkerSettingsError, load_worker_settings

    try:
        settings = load_worker_settings(**overrides)
    except WorkerSettingsError as exc:
        raise WorkerUnavailable(str(exc)) from exc
    if configure:
        configure_logging(settings.log_level, LogFormat(settings.log_format))
    try:
        run: Callable[[threading.Event], None] = build_worker(settings).run_forever
    except ImportError as exc:
        raise WorkerUnavailable(f"{MISSING_EXTRA} ({exc})") from exc
    return Loop("reference-worker", run)


def sample_worker_loop(settings: Settings, aws: AwsWiring) -> Loop:
    """The sample worker (it SIMULATES computations) beside an embedded `serve`."""
    # Lazy (not a cycle): a process that starts no worker loads none of the worker package.
    from metrics_orchestrator.worker.bootstrap import build_sample_worker

    if not aws.embedded or aws.worker_queue_url is None:
        raise WorkerUnavailable("--sample-worker needs the embedded AWS emulator (no AWS settings)")
    worker = build_sample_worker(
        settings.aws_region,
        aws.endpoint_url,
        aws.worker_queue_url,
        aws.run_feedback_queue_urls[0],
        heartbeats=2,
        step_seconds=0.5,
    )
    return Loop("sample-worker", worker.run_forever)


def embedded_worker_loop(settings: Settings, aws: AwsWiring, **overrides: Any) -> Loop:
    """The reference worker beside an embedded `serve`: its queue, topic and endpoint.

    `overrides` set other worker settings (the demo: short heartbeats, more concurrency)."""
    if not aws.embedded or aws.worker_queue_url is None or aws.feedback_topic_arn is None:
        raise WorkerUnavailable(
            "--worker needs the embedded AWS emulator (no AWS settings); against real AWS run "
            "`metrics-orchestrator worker` with SQS_RUN_REQUEST_QUEUE_URL and "
            "SNS_RUN_FEEDBACK_TOPIC_ARN"
        )
    return worker_loop(
        {
            "aws_region": settings.aws_region,
            "aws_endpoint_url": aws.endpoint_url,
            "sqs_run_request_queue_url": aws.worker_queue_url,
            "sns_run_feedback_topic_arn": aws.feedback_topic_arn,
            "sqs_wait_seconds": aws.wait_seconds,
        }
        | overrides
    )
