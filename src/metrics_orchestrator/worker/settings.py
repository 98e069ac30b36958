"""The reference worker's configuration (SPEC §6.2, worker part), from the environment/.env."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettingsError(Exception):
    """Invalid worker configuration; the message names every offending variable."""


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    sqs_run_request_queue_url: str = Field(min_length=1)
    sns_run_feedback_topic_arn: str = Field(min_length=1)
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    # seconds; well under the control plane's RUN_HEARTBEAT_TIMEOUT (default 5 min)
    worker_heartbeat_interval: float = Field(default=10.0, ge=0.1, le=3600)
    # seconds a received request stays hidden from other workers; extended on every heartbeat
    worker_visibility_timeout: int = Field(default=60, ge=1, le=43200)
    worker_min_run_seconds: float = Field(default=0.0, ge=0, le=3600)
    sqs_wait_seconds: int = Field(default=20, ge=0, le=20)

    log_level: str = "INFO"
    log_format: str = "console"

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in {"json", "console"}:
            raise ValueError("must be json or console")
        return value

    @model_validator(mode="after")
    def _visibility_outlasts_heartbeats(self) -> Self:
        if self.worker_visibility_timeout < 2 * self.worker_heartbeat_interval:
            raise ValueError(
                "WORKER_VISIBILITY_TIMEOUT: must be at least twice WORKER_HEARTBEAT_INTERVAL "
                "(each heartbeat extends it; a shorter one lets another worker take the run)"
            )
        return self


def load_worker_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> WorkerSettings:
    try:
        if env is None:
            return WorkerSettings(**overrides)
        lowered = {k.lower(): v for k, v in env.items()}
        return WorkerSettings(_env_file=None, **{**lowered, **overrides})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if error["loc"]:
                problems.append(f"{str(error['loc'][0]).upper()}: {error['msg']}")
            else:
                problems.append(str(error["msg"]).removeprefix("Value error, "))
        raise WorkerSettingsError("invalid worker configuration: " + "; ".join(problems)) from None
