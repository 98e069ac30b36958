"""How a CLI command reaches AWS: the configured endpoint and queue, else those the running
local `serve` recorded (`local_state.py`); botocore's failures as one line for a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from metrics_orchestrator.infrastructure.aws.clients import sqs_client_from
from metrics_orchestrator.infrastructure.local_state import (
    LocalStateError,
    embedded_data_dir,
    find_local_serve,
    read_local_serve,
)
from metrics_orchestrator.infrastructure.settings import Settings, SettingsError


class SendFailed(Exception):
    """A message could not be sent; the message says why, in one line."""


def projection_update_queue(settings: Settings) -> tuple[str, Callable[[str], str]] | None:
    """The queue `send-update` should use and a sender for it: the configured queue, else the
    running local serve's; None when neither exists. The sender raises `SendFailed`."""
    try:
        local = read_local_serve(embedded_data_dir(settings))
    except LocalStateError as exc:
        raise SettingsError(str(exc)) from None
    if settings.sqs_projection_update_queue_url:
        url = settings.sqs_projection_update_queue_url
        endpoint = settings.aws_endpoint_url
        if endpoint is None and local is not None and url.startswith(local.aws_endpoint_url):
            endpoint = local.aws_endpoint_url  # the URL `serve` printed, given without its endpoint
    elif settings.uses_embedded_aws and local is not None and local.projection_update_queue_url:
        url, endpoint = local.projection_update_queue_url, local.aws_endpoint_url
    else:
        return None
    client = sqs_client_from(settings, endpoint)

    def send(body: str) -> str:
        with aws_failures(f"send to {url}"):
            return client.send_message(QueueUrl=url, MessageBody=body)["MessageId"]

    return url, send


def cli_aws_endpoint(settings: Settings) -> str | None:
    """The AWS endpoint a CLI command talks to: AWS_ENDPOINT_URL, else the running local
    serve's emulator (found as `send-update` finds its queue), else None (AWS itself)."""
    if settings.aws_endpoint_url:
        return settings.aws_endpoint_url
    local = find_local_serve(settings)
    return local.aws_endpoint_url if local is not None else None


@contextmanager
def aws_failures(action: str) -> Iterator[None]:
    """botocore's failures (no credentials, endpoint down, refused) as one-line `SendFailed`."""
    try:
        yield
    except NoCredentialsError:
        raise SendFailed(
            f"no AWS credentials to {action}: set AWS_ACCESS_KEY_ID/AWS_PROFILE, "
            "or AWS_ENDPOINT_URL for an emulator"
        ) from None
    except (BotoCoreError, ClientError) as exc:
        raise SendFailed(f"cannot {action}: {exc}") from None
