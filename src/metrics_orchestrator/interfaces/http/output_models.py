"""Response models of `GET /runs/{id}/output` (and its offset cursor) and `GET /runs/{id}/logs`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from metrics_orchestrator.application.outputs import OutputFormat, RunOutput
from metrics_orchestrator.application.pagination import encode_offset_cursor
from metrics_orchestrator.application.run_logs import RunLog
from metrics_orchestrator.domain.run_files import MAX_RUN_LOG_BYTES


class OutputPointOut(BaseModel):
    obs_time: datetime
    value: float | None = Field(description="null where the metric is missing (SPEC §3.1).")


class RunOutputOut(BaseModel):
    run_id: UUID
    manifest_uri: str = Field(description="The run's output manifest in S3.")
    metadata: dict[str, Any] = Field(
        description="The manifest (SPEC §4.4): run_id, metric_code, version_ts, row_count, "
        "files, inputs, and what the worker added."
    )
    format: OutputFormat = Field(
        description="How the worker wrote the data: `parquet` (SPEC §4.4, `files` of s3:// "
        "URIs) or `jsonl` (JSON lines named by `outputs.files`, relative to the manifest)."
    )
    total: int = Field(description="Rows in the output, nulls included.")
    items: list[OutputPointOut]
    next_cursor: str | None

    @classmethod
    def of(cls, output: RunOutput) -> RunOutputOut:
        next_offset = output.next_offset
        return cls(
            run_id=output.run_id,
            manifest_uri=output.manifest_uri,
            metadata=dict(output.manifest),
            format=output.format,
            total=output.total,
            items=[OutputPointOut(obs_time=p.obs_time, value=p.value) for p in output.points],
            next_cursor=encode_offset_cursor(next_offset) if next_offset is not None else None,
        )


class RunLogOut(BaseModel):
    run_id: UUID
    attempt: int
    location: str | None = Field(
        description="Where the run's worker writes its log (`{basePath}runs/{runId}-{attempt}"
        ".log`); null before the run is queued."
    )
    found: bool = Field(description="Whether a log is there (a worker may write none).")
    text: str | None = Field(description="The log's lines (its newest, when truncated).")
    size_bytes: int = Field(description="The whole log's size.")
    truncated: bool = Field(
        description=f"Only the last {MAX_RUN_LOG_BYTES:,} bytes (from a line start) are shown."
    )
    note: str | None = Field(description="Why the run has no log, when it has none.")

    @classmethod
    def of(cls, log: RunLog) -> RunLogOut:
        return cls(
            run_id=log.run_id,
            attempt=log.attempt,
            location=log.location,
            found=log.found,
            text=log.text,
            size_bytes=log.size,
            truncated=log.truncated,
            note=log.absence,
        )
