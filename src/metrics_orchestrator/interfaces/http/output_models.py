"""Response model of `GET /runs/{id}/output` and its offset cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from metrics_orchestrator.application.outputs import OutputFormat, RunOutput
from metrics_orchestrator.application.pagination import encode_offset_cursor


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
