"""boto3 clients built from settings, with short timeouts and no hidden retries.

Our adapters retry explicitly and boundedly (the SNS publisher per entry, the SQS consumer by
polling again), so botocore's own retry layer is switched off: a retry that nobody logs or
bounds is how a slow dependency turns into a stuck dispatcher.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from metrics_orchestrator.infrastructure.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

# SQS long polling waits up to 20 s; the read timeout must outlast it.
LONG_POLL_READ_TIMEOUT = 30.0
DEFAULT_READ_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0

_EMULATOR_KEY = "testing"


def client_config(*, read_timeout: float = DEFAULT_READ_TIMEOUT) -> Config:
    return Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": 1},
    )


def _emulator_key(endpoint_url: str | None) -> str | None:
    """Dummy credentials for an emulator, unless the environment provides real ones.

    Only when an endpoint is given, and passed to this client alone: setting them in
    `os.environ` would leak into every other AWS client of the process.
    """
    if endpoint_url is None:
        return None
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        return None
    return _EMULATOR_KEY


def create_sns_client(region: str, endpoint_url: str | None = None) -> SNSClient:
    return boto3.client(
        "sns",
        region_name=region,
        endpoint_url=endpoint_url,
        config=client_config(),
        aws_access_key_id=_emulator_key(endpoint_url),
        aws_secret_access_key=_emulator_key(endpoint_url),
    )


def create_sqs_client(region: str, endpoint_url: str | None = None) -> SQSClient:
    return boto3.client(
        "sqs",
        region_name=region,
        endpoint_url=endpoint_url,
        config=client_config(read_timeout=LONG_POLL_READ_TIMEOUT),
        aws_access_key_id=_emulator_key(endpoint_url),
        aws_secret_access_key=_emulator_key(endpoint_url),
    )


def create_s3_client(region: str, endpoint_url: str | None = None) -> S3Client:
    """Path-style addressing: emulators (and bucket names with dots) need it; AWS accepts it."""
    config = client_config().merge(Config(s3={"addressing_style": "path"}))
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        config=config,
        aws_access_key_id=_emulator_key(endpoint_url),
        aws_secret_access_key=_emulator_key(endpoint_url),
    )


def sns_client_from(settings: Settings, endpoint_url: str | None = None) -> SNSClient:
    """`endpoint_url` overrides the configured one (for example an embedded emulator)."""
    return create_sns_client(settings.aws_region, endpoint_url or settings.aws_endpoint_url)


def sqs_client_from(settings: Settings, endpoint_url: str | None = None) -> SQSClient:
    return create_sqs_client(settings.aws_region, endpoint_url or settings.aws_endpoint_url)


def s3_client_from(settings: Settings, endpoint_url: str | None = None) -> S3Client:
    return create_s3_client(settings.aws_region, endpoint_url or settings.aws_endpoint_url)
