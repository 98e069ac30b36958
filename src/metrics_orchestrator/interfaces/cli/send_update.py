"""`metrics-orchestrator send-update`: publish a projection update, for trying things out."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import structlog
import typer

from metrics_orchestrator.bootstrap import (
    SendFailed,
    Settings,
    SettingsError,
    bootstrap,
    find_local_serve,
    projection_update_queue,
)
from metrics_orchestrator.domain.errors import NotFound
from metrics_orchestrator.interfaces.cli.common import (
    EXIT_FAILURE,
    fail,
    say_database,
    settings_or_exit,
)

logger = structlog.get_logger(__name__)


def build_update(
    dataset_id: str,
    version: str | None,
    manifest: str | None,
    projections: str | None,
    bucket: str | None,
    occurred_at: str | None,
) -> dict[str, Any]:
    version = version or datetime.now(UTC).strftime("v%Y%m%d_%H%M%S_%f")
    event: dict[str, Any] = {
        "event": "projection_update",
        "dataset_id": dataset_id,
        "version_manifest_path": manifest
        or f"datasets/{dataset_id}/versions/{version}/manifest.json",
        "projections_path": projections or f"datasets/{dataset_id}/projections",
    }
    if bucket:
        event["bucket"] = bucket
    if occurred_at:
        event["occurred_at"] = occurred_at
    return event


def post_to_api(api: str, body: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(
        api.rstrip("/") + "/events/projection-update",
        data=body.encode("utf-8"),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def warn_if_unknown_dataset(settings: Settings, dataset_id: str) -> None:
    """Say on stderr that the catalog lacks the dataset (the update will be rejected, and is
    replayable once the catalog has it); it is still sent: trying that out is legitimate.
    Asked only of a configured database or the running local serve's: starting a database
    just for a warning would make every send slow. A catalog that cannot be read stays silent."""
    try:
        with bootstrap(settings, announce=say_database) as container:
            container.catalog.get_dataset(dataset_id)
    except NotFound:
        typer.echo(
            f"warning: dataset {dataset_id!r} is not in the catalog: the update will be "
            "rejected (replay it with `events replay` once the catalog has it)",
            err=True,
        )
    except Exception:
        logger.debug("catalog not readable; dataset not checked", exc_info=True)


def validate_occurred_at(value: str | None) -> str | None:
    """ISO-8601 with a zone (SPEC §3.2), checked before anything is sent."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--occurred-at {value!r} is not an ISO-8601 time (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"--occurred-at {value!r} has no time zone (add Z or +00:00)")
    return value


def send_update_command(
    dataset_id: str = typer.Option(
        ..., "--dataset-id", "-d", help="Dataset that has a new version."
    ),
    version: str | None = typer.Option(None, help="Version name; default: derived from now."),
    manifest: str | None = typer.Option(None, help="version_manifest_path (default from version)."),
    projections: str | None = typer.Option(None, help="projections_path."),
    bucket: str | None = typer.Option(None, help="Bucket (default: the dataset's)."),
    occurred_at: str | None = typer.Option(
        None, help="ISO-8601 time with a zone the version was produced."
    ),
    api: str | None = typer.Option(
        None,
        help="Send to this API (e.g. http://127.0.0.1:8000) instead of the queue. Default: the "
        "configured SQS_PROJECTION_UPDATE_QUEUE_URL, else the queue of the local `serve`, "
        "else the API on HTTP_HOST:HTTP_PORT.",
    ),
) -> None:
    """Publish one projection_update event to the configured queue or to the API."""
    settings = settings_or_exit()
    try:
        occurred_at = validate_occurred_at(occurred_at)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not dataset_id.strip():
        raise fail("--dataset-id must not be empty")
    body = json.dumps(build_update(dataset_id, version, manifest, projections, bucket, occurred_at))
    try:
        queue = None if api is not None else projection_update_queue(settings)
        local = find_local_serve(settings)
    except SettingsError as exc:
        raise fail(str(exc)) from None
    if settings.database_url is not None or local is not None:
        warn_if_unknown_dataset(settings, dataset_id)
    if queue is not None:
        url, send = queue
        try:
            message_id = send(body)
        except SendFailed as exc:
            raise fail(f"{exc}; is `serve` running?", EXIT_FAILURE) from None
        typer.echo(f"sent to {url} (message {message_id})")
        typer.echo(body)
        return
    default_api = (local.http_url if local else None) or (
        f"http://{settings.http_host}:{settings.http_port}"
    )
    target = api or default_api
    token = settings.api_token.get_secret_value() if settings.api_token else None
    try:
        status, text = post_to_api(target, body, token)
    except (urllib.error.URLError, OSError) as exc:
        message = f"cannot reach the API at {target}: {exc}; is `serve` running?"
        raise fail(message, EXIT_FAILURE) from None
    typer.echo(f"POST {target}/events/projection-update -> {status}")
    typer.echo(text)
    if status >= 400:
        raise typer.Exit(2 if status < 500 else EXIT_FAILURE)
