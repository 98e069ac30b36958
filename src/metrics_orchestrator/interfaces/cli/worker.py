"""`metrics-orchestrator worker`: the reference worker (SPEC §4.4, §6.1 `worker`).

The worker is built by `interfaces/reference_worker.py` (shared with `serve --worker` and the
demo); this module is the command around it.
"""

from __future__ import annotations

from typing import Any

import typer

from metrics_orchestrator.interfaces.cli.common import EXIT_FAILURE, fail
from metrics_orchestrator.interfaces.reference_worker import WorkerUnavailable, worker_loop
from metrics_orchestrator.interfaces.runtime import ServiceRuntime


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
