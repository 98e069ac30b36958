"""Configuration from the environment and `.env` (SPEC §6.2)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from metrics_orchestrator.application.catalog_spec import RequiredDays
from metrics_orchestrator.domain.events import DEFAULT_MAX_CLOCK_SKEW, MAX_BUCKET_LENGTH
from metrics_orchestrator.domain.fields import MAX_LABEL_LENGTH
from metrics_orchestrator.domain.identifiers import MAX_IDENTIFIER_LENGTH

# The documented ranges of SPEC §6.2 (docs/limits.md). Each bound is chosen so that nothing
# computed from the value overflows: the largest retry delay, RETRY_BASE_DELAY * 2^20
# (domain/retries.py MAX_DOUBLINGS), is under 2,900 years, so `now + delay` (around year 4900
# today) stays a valid timestamp in Python (year 9999) and PostgreSQL.
# Upper bounds of the durations; each must also be positive, except MAX_CLOCK_SKEW (may be 0).
DURATION_BOUNDS: dict[str, timedelta] = {
    "run_start_timeout": timedelta(days=30),
    "run_heartbeat_timeout": timedelta(days=30),
    "retry_base_delay": timedelta(days=1),
    "sweep_interval": timedelta(hours=1),
    "dispatch_poll_interval": timedelta(hours=1),
    "max_clock_skew": timedelta(days=1),
    # SPEC §9: a post waits at most this; retries double from the base up to 1 h apart
    "notify_timeout": timedelta(minutes=5),
    "notify_retry_base_delay": timedelta(hours=1),
}
MAY_BE_ZERO = frozenset({"max_clock_skew"})
MAX_DISPATCH_ATTEMPTS = 100

# Settings that end up in paths and messages are bounded so that what they produce is always
# accepted where it goes (docs/limits.md). A worker's `outputManifest` is
# `s3://<bucket>/<prefix>/<metric code>/<what the worker appends>`, and the control plane
# accepts at most MAX_LABEL_LENGTH characters of it (domain/feedback.py). The reference worker
# appends at most 48 characters (`runs/<run id>-<attempt>.ok`); a worker may append up to
# WORKER_SUFFIX_ALLOWANCE. So the longest prefix leaves room for the longest bucket and code.
WORKER_SUFFIX_ALLOWANCE = 100
MAX_OUTPUT_PREFIX_LENGTH = (
    MAX_LABEL_LENGTH
    - len("s3://")
    - MAX_BUCKET_LENGTH
    - len("///")
    - MAX_IDENTIFIER_LENGTH
    - WORKER_SUFFIX_ALLOWANCE
)
# S3 keys: only characters S3 documents as safe, so a prefix is the same in a URI and a key.
_OUTPUT_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*")
# S3 bucket naming rules (3-63 lowercase letters, digits, dots and hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_PUBLIC_URL_LENGTH = 512
MAX_HOST_LENGTH = 253  # a DNS name
MAX_TOKEN_LENGTH = 512
# A bearer token travels in a header: visible ASCII, no spaces.
_TOKEN = re.compile(r"[\x21-\x7e]+")


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class SettingsError(Exception):
    """Invalid configuration; the message names every offending variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    database_url: SecretStr | None = None
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    embedded_data_dir: Path | None = None

    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    sns_run_request_topic_arn: str | None = None
    sqs_projection_update_queue_url: str | None = None
    sqs_run_feedback_queue_urls: Annotated[tuple[str, ...], NoDecode] = ()

    output_bucket: str = "metrics-output"
    output_prefix: str = "metrics"

    http_host: str = Field(default="127.0.0.1", min_length=1, max_length=MAX_HOST_LENGTH)
    http_port: int = Field(default=8000, ge=1, le=65535)
    api_token: SecretStr | None = None
    # The dashboard's external address (SPEC §6.2, §9): links, and the trusted origin behind
    # a proxy (docs/decisions.md "Which hosts are trusted").
    public_url: str | None = None

    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.CONSOLE

    default_required_days: RequiredDays = 7
    run_start_timeout: timedelta = timedelta(minutes=15)
    run_heartbeat_timeout: timedelta = timedelta(minutes=5)
    retry_base_delay: timedelta = timedelta(seconds=30)
    dispatch_max_attempts: int = Field(default=5, ge=1, le=MAX_DISPATCH_ATTEMPTS)
    sweep_interval: timedelta = timedelta(seconds=10)
    dispatch_poll_interval: timedelta = timedelta(seconds=2)
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW
    notify_timeout: timedelta = timedelta(seconds=10)
    notify_retry_base_delay: timedelta = timedelta(seconds=30)
    sqs_wait_seconds: int = Field(default=20, ge=0, le=20)
    sqs_visibility_timeout: int = Field(default=60, ge=1, le=43200)

    @field_validator("sqs_run_feedback_queue_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator(
        "run_start_timeout",
        "run_heartbeat_timeout",
        "retry_base_delay",
        "sweep_interval",
        "dispatch_poll_interval",
        "max_clock_skew",
        "notify_timeout",
        "notify_retry_base_delay",
        mode="before",
    )
    @classmethod
    def _seconds_as_number(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except (ValueError, OverflowError):
                return value
        return value

    @field_validator(*DURATION_BOUNDS)
    @classmethod
    def _bounded_duration(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        name = str(info.field_name)
        high, zero_allowed = DURATION_BOUNDS[name], name in MAY_BE_ZERO
        low_ok = value >= timedelta(0) if zero_allowed else value > timedelta(0)
        if not low_ok or value > high:
            lowest = "at least 0" if zero_allowed else "more than 0"
            raise ValueError(
                f"must be a duration {lowest} and at most {_iso(high)} "
                "(seconds or ISO-8601, e.g. 30 or PT30S)"
            )
        return value

    @field_validator("output_prefix")
    @classmethod
    def _bounded_prefix(cls, value: str) -> str:
        prefix = value.strip("/")
        if len(prefix) > MAX_OUTPUT_PREFIX_LENGTH:
            raise ValueError(
                f"must be at most {MAX_OUTPUT_PREFIX_LENGTH} characters (it has {len(prefix)}): "
                f"outputManifest paths under it must stay within {MAX_LABEL_LENGTH}"
            )
        if prefix and not _OUTPUT_PREFIX.fullmatch(prefix):
            raise ValueError(
                "must be segments of A-Z a-z 0-9 ! _ . * ' ( ) - separated by single '/'"
            )
        return prefix

    @field_validator("output_bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.fullmatch(value) or ".." in value:
            raise ValueError(
                f"must be an S3 bucket name: 3-{MAX_BUCKET_LENGTH} lowercase letters, digits, "
                "dots and hyphens, starting and ending with a letter or digit"
            )
        return value

    @field_validator("http_host")
    @classmethod
    def _host_name(cls, value: str) -> str:
        if any(c.isspace() or c in "/?#@" for c in value):
            raise ValueError("must be a host name or an IP address")
        return value

    @field_validator("api_token")
    @classmethod
    def _header_safe_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None  # empty: no token, as if unset
        token = value.get_secret_value()
        if len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
            raise ValueError(
                f"must be 1-{MAX_TOKEN_LENGTH} visible ASCII characters without spaces "
                "(it is sent in an Authorization header)"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return normalised_public_url(value.strip())

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def uses_embedded_aws(self) -> bool:
        return self.aws_endpoint_url is None and not (
            self.sns_run_request_topic_arn
            or self.sqs_projection_update_queue_url
            or self.sqs_run_feedback_queue_urls
        )

    def output_base_path(self, metric_code: str) -> str:
        prefix = f"{self.output_prefix}/" if self.output_prefix else ""
        return f"s3://{self.output_bucket}/{prefix}{metric_code}/"


def normalised_public_url(value: str) -> str:
    """`value` as a base URL without its trailing '/'; ValueError saying what is wrong."""
    if len(value) > MAX_PUBLIC_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_PUBLIC_URL_LENGTH} characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a port out of range)
    except ValueError as exc:
        raise ValueError(f"must be an http(s) URL ({exc})") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            "must be an http:// or https:// URL with a host, e.g. https://metrics.example.com"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("must be a base URL: no user, query or fragment")
    if any(c.isspace() for c in value):
        raise ValueError("must not contain spaces")
    return value.rstrip("/")


def _iso(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    if seconds % 86400 == 0:
        return f"P{seconds // 86400}D"
    if seconds % 3600 == 0:
        return f"PT{seconds // 3600}H"
    return f"PT{seconds}S"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment (or `env`), naming each invalid variable."""
    try:
        if env is None:
            return Settings(**overrides)
        lowered = {k.lower(): v for k, v in env.items()}
        return Settings(_env_file=None, **{**lowered, **overrides})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = str(error["loc"][0]).upper() if error["loc"] else "configuration"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{variable}: {message}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
