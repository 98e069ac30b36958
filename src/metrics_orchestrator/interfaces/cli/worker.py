"""`metrics-orchestrator worker`: the reference worker (SPEC §4.4, §6.1 `worker`).

This module and `sample_data.py` are the only parts of the control plane that import the
worker package (tests/unit/test_architecture.py), and only inside functions: the worker's
engine (polars, the `[worker]` extra) is loaded only when a worker is asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import typer

from metrics_orchestrator.bootstrap import AwsWiring, LogFormat, Settings, configure_logging
from metrics_orchestrator.interfaces.cli.common import EXIT_FAILURE, fail
from metrics_orchestrator.interfaces.runtime import Loop, ServiceRuntime

MISSING_EXTRA = (
    "the reference worker needs its columnar engine: pip install 'metrics-orchestrator[worker]'"
)


class WorkerUnavailable(Exception):
    """The worker cannot be built (bad settings, missing extra); the message says why."""


def worker_command(
    concurrency: int | None = typer.Option(None, help="Overrides WORKER_CONCURRENCY."),
    heartbeat_interval: float | None = typer.Option(
        None, help="Overrides WORKER_HEARTBEAT_INTERVAL (seconds)."
    ),
) -> None:
    """Compute run requests from SQS_RUN_REQUEST_QUEUE_URL until SIGTERM or Ctrl-C.

    Feedback goes to SNS_RUN_FEEDBACK_TOPIC_ARN. Run as many as you like, on as many machines:
    they share the queue.
    """
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "worker_concurrency": concurrency,
            "worker_heartbeat_interval": heartbeat_interval,
        }.items()
        if v is not None
    }
    try:
        loop = worker_loop(overrides, configure=True)
    except WorkerUnavailable as exc:
        raise fail(str(exc)) from None
    typer.echo("reference worker running; Ctrl-C to stop (runs in hand finish or are abandoned)")
    if not ServiceRuntime([loop]).run_until_signalled():
        raise typer.Exit(EXIT_FAILURE)
    typer.echo("stopped")


def worker_loop(overrides: dict[str, Any], *, configure: bool = False) -> Loop:
    """The worker as a service loop, from the environment plus `overrides`."""
    try:
        # Lazy: the worker needs polars (the `[worker]` extra); not a cycle.
        from metrics_orchestrator.worker.app import build_worker
        from metrics_orchestrator.worker.settings import WorkerSettingsError, load_worker_settings
    except ImportError as exc:
        raise WorkerUnavailable(f"{MISSING_EXTRA} ({exc})") from exc
    try:
        settings = load_worker_settings(**overrides)
    except WorkerSettingsError as exc:
        raise WorkerUnavailable(str(exc)) from exc
    if configure:
        configure_logging(settings.log_level, LogFormat(settings.log_format))
    run: Callable[[threading.Event], None] = build_worker(settings).run_forever
    return Loop("reference-worker", run)


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
