"""`metrics-orchestrator serve`: consumers, dispatcher, sweeper and the HTTP API in one process."""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import typer

from metrics_orchestrator.bootstrap import (
    AwsWiring,
    Container,
    Settings,
    SettingsError,
    bootstrap,
    default_data_dir,
    record_local_serve,
    resolve_aws,
    resolve_database_url,
)
from metrics_orchestrator.interfaces.cli.common import (
    EXIT_FAILURE,
    fail,
    say_database,
    settings_or_exit,
)
from metrics_orchestrator.interfaces.http.guards import WILDCARD_HOSTS
from metrics_orchestrator.interfaces.reference_worker import (
    MISSING_EXTRA,
    WorkerUnavailable,
    embedded_worker_loop,
    sample_worker_loop,
)
from metrics_orchestrator.interfaces.runtime import Loop, ServeParts, build_runtime
from metrics_orchestrator.interfaces.sample_world import seed_sample_world


def serve_command(
    consumers: bool = typer.Option(True, "--consumers/--no-consumers", help="Run SQS consumers."),
    dispatcher: bool = typer.Option(
        True, "--dispatcher/--no-dispatcher", help="Publish queued runs to SNS."
    ),
    sweeper: bool = typer.Option(True, "--sweeper/--no-sweeper", help="Apply timeouts, retries."),
    notifier: bool = typer.Option(
        True, "--notifier/--no-notifier", help="Deliver incident notifications to channels."
    ),
    http: bool = typer.Option(True, "--http/--no-http", help="Serve the HTTP API."),
    http_host: str | None = typer.Option(None, help="Overrides HTTP_HOST."),
    http_port: int | None = typer.Option(None, help="Overrides HTTP_PORT."),
    sample_worker: bool = typer.Option(
        False,
        "--sample-worker",
        help="Also answer run requests with the bundled sample worker, which SIMULATES "
        "computations (embedded AWS emulator only).",
    ),
    worker: bool = typer.Option(
        False,
        "--worker",
        help="Also run the reference worker, which computes for real (embedded AWS emulator "
        "only; needs the [worker] extra).",
    ),
    sample_data: bool = typer.Option(
        False,
        "--sample-data",
        help="Load the bundled catalogs and a generated sample world into the embedded S3 and "
        "process its projection updates (embedded AWS emulator only).",
    ),
) -> None:
    """Run the service until SIGTERM or Ctrl-C; in-flight work finishes before exit."""
    settings = settings_or_exit()
    if sample_worker and worker:
        # Both would consume the one worker queue, each answering a random half of the runs.
        raise fail("choose one of --sample-worker (simulates) and --worker (computes)")
    overrides = {
        k: v for k, v in {"http_host": http_host, "http_port": http_port}.items() if v is not None
    }
    if overrides:
        settings = settings.model_copy(update=overrides)
    parts = ServeParts(
        consumers=consumers, dispatcher=dispatcher, sweeper=sweeper, notifier=notifier, http=http
    )
    http_app: Callable[[Container], Any] | None = None
    if http:
        # Imported only when serving HTTP (a lazy import of a heavy stack, not a cycle):
        # `--no-http` replicas need no web stack.
        from metrics_orchestrator.interfaces.http.auth import check_bind_address
        from metrics_orchestrator.interfaces.web.app import create_app_with_dashboard

        http_app = create_app_with_dashboard
        token = settings.api_token.get_secret_value() if settings.api_token else None
        try:
            check_bind_address(settings.http_host, token)
        except ValueError as exc:
            raise fail(str(exc)) from None
        # Before anything starts: a second `make run` must not say "running" and then fail.
        in_use = port_in_use(settings.http_host, settings.http_port)
        if in_use is not None:
            raise fail(in_use, EXIT_FAILURE)
    with ExitStack() as resources:
        try:
            url = _database(settings, resources)
            aws = resolve_aws(settings, resources)
            container = resources.enter_context(bootstrap(settings, database_url=url, aws=aws))
            runtime = build_runtime(container, aws, parts, http_app=http_app)
        except SettingsError as exc:
            raise fail(str(exc)) from None
        state_file = record_local_serve(settings, aws, resources, http=http)
        if sample_worker:
            runtime.loops.append(_sample_worker(settings, aws))
            typer.echo("sample worker on: it SIMULATES computations (nothing is computed)")
        if worker:
            runtime.loops.append(_reference_worker(settings, aws))
            typer.echo(f"reference worker on: computes into s3://{aws.output_bucket}/")
        if sample_data:
            typer.echo(_seed(container, settings, aws))
        if aws.embedded:
            typer.echo(f"embedded AWS emulator (moto) at {aws.endpoint_url}")
            typer.echo(f"  run-request topic:        {aws.topic_arn}")
            typer.echo(f"  projection-update queue:  {aws.projection_update_queue_url}")
            typer.echo(f"  run-feedback queue:       {', '.join(aws.run_feedback_queue_urls)}")
            typer.echo(f"  worker queue (subscribed): {aws.worker_queue_url}")
        if state_file is not None:
            typer.echo(f"  (recorded in {state_file}: send-update and the read commands use it)")
        if http:
            typer.echo(
                f"HTTP API on http://{settings.http_host}:{settings.http_port} (docs: /docs)"
            )
            typer.echo(f"dashboard: {dashboard_url(settings)}")
            if settings.public_url is None and settings.http_host in WILDCARD_HOSTS:
                typer.echo(
                    f"  HTTP_HOST={settings.http_host} without PUBLIC_URL: only localhost names "
                    "are answered (421 otherwise); set PUBLIC_URL to the address people use"
                )
        typer.echo("running; Ctrl-C to stop")
        clean = runtime.run_until_signalled()
    typer.echo("stopped")
    if not clean:
        raise typer.Exit(EXIT_FAILURE)


def dashboard_url(settings: Settings) -> str:
    """Where a person opens the dashboard: PUBLIC_URL, else this machine's listening address."""
    if settings.public_url is not None:
        return f"{settings.public_url}/"
    host = "127.0.0.1" if settings.http_host in WILDCARD_HOSTS else settings.http_host
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{settings.http_port}/"


def port_in_use(host: str, port: int) -> str | None:
    """Why the HTTP server could not listen on host:port, or None if it can."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As uvicorn does: a port left in TIME_WAIT by a stopped serve is free to use.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (
                f"cannot listen on {host}:{port} ({exc.strerror}); is another serve running? "
                "Stop it, or choose another port with --http-port or HTTP_PORT"
            )
    return None


def _sample_worker(settings: Settings, aws: AwsWiring) -> Loop:
    try:
        return sample_worker_loop(settings, aws)
    except WorkerUnavailable as exc:
        raise fail(str(exc)) from None


def _reference_worker(settings: Settings, aws: AwsWiring) -> Loop:
    try:
        return embedded_worker_loop(settings, aws)
    except WorkerUnavailable as exc:
        raise fail(str(exc)) from None


def _seed(container: Container, settings: Settings, aws: AwsWiring) -> str:
    if not aws.embedded:
        raise fail("--sample-data needs the embedded AWS emulator (no AWS settings)")
    try:
        count = seed_sample_world(container, settings, aws)
    except ImportError:
        raise fail(MISSING_EXTRA, EXIT_FAILURE) from None
    return f"sample world written to the embedded S3; {count} projection updates processed"


def _database(settings: Settings, resources: ExitStack) -> str:
    url = resolve_database_url(settings, resources, announce=say_database)
    if settings.uses_embedded_database:
        where = settings.embedded_data_dir or default_data_dir()
        typer.echo(f"embedded PostgreSQL (data in {where}), migrations applied")
    return url
