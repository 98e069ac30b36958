"""`metrics-orchestrator sample-data`: a deterministic sample world in S3 (SPEC §4.4).

It writes one version of every dataset of the bundled catalogs (or of the catalog files
given) into S3 and prints the `projection_update` events announcing them, one JSON object a
line, so they can be piped into `ingest` or sent with `--send`. `serve --worker --sample-data`
does the same inside the embedded stack and feeds the updates to the service directly
(`sample_world.seed_sample_world`), so every metric of both catalogs computes on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer
import yaml

from metrics_orchestrator.bootstrap import (
    SendFailed,
    SettingsError,
    aws_failures,
    cli_aws_endpoint,
    create_s3_client,
    projection_update_queue,
)
from metrics_orchestrator.interfaces.cli.common import EXIT_FAILURE, fail, settings_or_exit
from metrics_orchestrator.interfaces.reference_worker import MISSING_EXTRA
from metrics_orchestrator.interfaces.sample_world import bundled_catalogs, write_world

if TYPE_CHECKING:
    pass


def sample_data_command(
    catalog: list[Path] = typer.Option(
        [], "--catalog", help="Catalog file(s) whose datasets to fill (default: both bundled)."
    ),
    endpoint_url: str | None = typer.Option(
        None,
        help="S3 endpoint, e.g. http://127.0.0.1:4566 (default: AWS_ENDPOINT_URL, else the "
        "emulator of the running local `serve`, else AWS).",
    ),
    version: str | None = typer.Option(None, help="Version id (default: from the time)."),
    send: bool = typer.Option(
        False,
        "--send",
        help="Also send the updates to the queue `send-update` uses "
        "(SQS_PROJECTION_UPDATE_QUEUE_URL, else the local `serve`'s).",
    ),
) -> None:
    """Write a generated sample world into S3 and print its projection updates."""
    settings = settings_or_exit()
    try:
        documents = [_read_catalog(path) for path in catalog] or bundled_catalogs()
        endpoint = check_endpoint_url(endpoint_url) if endpoint_url else cli_aws_endpoint(settings)
        queue = projection_update_queue(settings) if send else None
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"cannot read catalog: {exc}") from None
    except (ValueError, SettingsError) as exc:
        raise fail(str(exc)) from None
    if send and queue is None:
        raise fail("--send: no queue; set SQS_PROJECTION_UPDATE_QUEUE_URL or start `serve`")
    s3 = create_s3_client(settings.aws_region, endpoint)
    try:
        with aws_failures(f"write the sample world to S3 at {endpoint or 'AWS'}"):
            updates = write_world(s3, documents, version=version)
        for update in updates:
            body = json.dumps(update)
            typer.echo(body)
            if queue is not None:
                queue[1](body)
    except ImportError:
        raise fail(MISSING_EXTRA, EXIT_FAILURE) from None
    except SendFailed as exc:
        raise fail(f"{exc}; is `serve` running?", EXIT_FAILURE) from None


def check_endpoint_url(value: str) -> str:
    """An http(s) URL with a host, checked before boto sees it (which would raise a bare
    `ValueError: Invalid endpoint`)."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"--endpoint-url {value!r} is not an http(s) URL; did you mean http://{value}?"
        )
    return value


def _read_catalog(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise yaml.YAMLError(f"{path}: not a catalog document")
    return document
