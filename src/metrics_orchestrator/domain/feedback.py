"""Worker feedback events (SPEC §4.2) and what they do to a run (SPEC §5.5). Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from metrics_orchestrator.domain.decoding import MAX_JSON_INTEGER
from metrics_orchestrator.domain.errors import FieldError
from metrics_orchestrator.domain.events import (
    MAX_LABEL_LENGTH,
    RUN_COMPLETED,
    RUN_HEARTBEAT,
    RUN_STARTED,
    FieldReader,
    timestamp_problem,
)
from metrics_orchestrator.domain.model import Cause, RunStatus, StatusChange, change_for

COMPLETION_STATUSES = {"SUCCESS": True, "FAILURE": False}
# rowCount is stored as a PostgreSQL bigint (SPEC §4.2: 0 ... 2^63-1).
MAX_ROW_COUNT = MAX_JSON_INTEGER
# versionTs names the run's output folder (SPEC §4.4): a path segment, not free text.
MAX_VERSION_TS_LENGTH = 128
PROGRESS_RULE = "must be a fraction in [0, 1] or a percentage in (1, 100]"


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: UUID
    started_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunHeartbeat:
    run_id: UUID
    progress: float | None
    ts: datetime


@dataclass(frozen=True, slots=True)
class RunCompleted:
    run_id: UUID
    metric_code: str | None
    succeeded: bool
    version_ts: str | None
    output_manifest: str | None
    row_count: int | None
    error: str | None
    # SPEC §4.2: False when a FAILURE would fail the same way again (not retried, §5.6)
    retryable: bool = True

    @property
    def target_status(self) -> RunStatus:
        return RunStatus.SUCCEEDED if self.succeeded else RunStatus.FAILED


WorkerFeedback = RunStarted | RunHeartbeat | RunCompleted


def normalise_progress(value: object) -> float:
    """A fraction 0-1 as is, a percentage in (1, 100] divided by 100; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(PROGRESS_RULE)
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > 100:
        raise ValueError(PROGRESS_RULE)
    return number if number <= 1 else number / 100


def parse_feedback(event_type: str, payload: dict[str, Any]) -> WorkerFeedback:
    """Validate a worker event of `event_type`, naming every offending field at once."""
    if event_type == RUN_STARTED:
        return parse_run_started(payload)
    if event_type == RUN_HEARTBEAT:
        return parse_run_heartbeat(payload)
    if event_type == RUN_COMPLETED:
        return parse_run_completed(payload)
    raise ValueError(f"{event_type!r} is not a worker feedback event")


def parse_run_started(payload: dict[str, Any]) -> RunStarted:
    fields = FieldReader(payload)
    run_id = _run_id(fields)
    started_at = fields.timestamp("startedAt", required=False)
    fields.finish()
    assert run_id is not None
    return RunStarted(run_id=run_id, started_at=started_at)


def parse_run_heartbeat(payload: dict[str, Any]) -> RunHeartbeat:
    fields = FieldReader(payload)
    run_id = _run_id(fields)
    progress = _progress(fields)
    ts = fields.timestamp("ts", required=True)
    fields.finish()
    assert run_id is not None
    assert ts is not None
    return RunHeartbeat(run_id=run_id, progress=progress, ts=ts)


def parse_run_completed(payload: dict[str, Any]) -> RunCompleted:
    fields = FieldReader(payload)
    run_id = _run_id(fields)
    metric_code = fields.identifier("metricCode", required=False)
    succeeded = _completion_status(fields)
    version_ts = _version_ts(fields)
    output_manifest = fields.string("outputManifest", required=False, max_length=MAX_LABEL_LENGTH)
    row_count = _row_count(fields)
    error = _optional_text(fields, "error")
    retryable = _retryable(fields)
    fields.finish()
    assert run_id is not None
    assert succeeded is not None
    return RunCompleted(
        run_id=run_id,
        metric_code=metric_code,
        succeeded=succeeded,
        version_ts=version_ts,
        output_manifest=output_manifest,
        row_count=row_count,
        error=error,
        retryable=retryable,
    )


def target_status(feedback: WorkerFeedback, current: RunStatus) -> RunStatus:
    """The status `feedback` moves a run in `current` to; raises IllegalTransition if refused.

    started and heartbeat confirm a running run: it stays running (`STAYS` of the table).
    """
    return status_change(feedback, current).target


def status_change(feedback: WorkerFeedback, current: RunStatus) -> StatusChange:
    """What applying `feedback` writes: from `current` to its target, for its cause."""
    if isinstance(feedback, RunCompleted):
        return change_for(Cause.COMPLETED, current, feedback.target_status)
    return change_for(Cause.WORKER_ALIVE, current, RunStatus.RUNNING)


# A run in one of these has ended: nothing a worker says can make it live again.
ENDED_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELED}
)


def late_heartbeat_key(feedback: WorkerFeedback, current: RunStatus) -> str | None:
    """The one event key every heartbeat of an ended run is recorded under (issue 20).

    A worker that outlives its run's timeout keeps heartbeating until it finishes: each
    heartbeat has its own body, so without this each would be a rejection of its own. Under
    one key per run the first is recorded (rejected, with the reason) and the rest are
    duplicates of it. None when `feedback` is not a heartbeat of an ended run.
    """
    if isinstance(feedback, RunHeartbeat) and current in ENDED_STATUSES:
        return f"{RUN_HEARTBEAT}:late:{feedback.run_id}"
    return None


def _run_id(fields: FieldReader) -> UUID | None:
    text = fields.string("runId", required=True)
    if text is None:
        return None
    try:
        return UUID(text)
    except ValueError:
        fields.errors.append(FieldError("runId", "must be a UUID"))
        return None


def _progress(fields: FieldReader) -> float | None:
    value = fields.payload.get("progress")
    if value is None:
        return None
    try:
        return normalise_progress(value)
    except ValueError as exc:
        fields.errors.append(FieldError("progress", str(exc)))
        return None


def _completion_status(fields: FieldReader) -> bool | None:
    if "status" not in fields.payload or fields.payload["status"] is None:
        fields.errors.append(FieldError("status", "is required"))
        return None
    value = fields.payload["status"]
    if not isinstance(value, str) or value not in COMPLETION_STATUSES:
        fields.errors.append(FieldError("status", "must be 'SUCCESS' or 'FAILURE'"))
        return None
    return COMPLETION_STATUSES[value]


def _row_count(fields: FieldReader) -> int | None:
    value = fields.payload.get("rowCount")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ROW_COUNT:
        rule = f"must be a non-negative integer, at most {MAX_ROW_COUNT} (2^63-1)"
        fields.errors.append(FieldError("rowCount", rule))
        return None
    return value


def _version_ts(fields: FieldReader) -> str | None:
    """Reported as a label (`2025-11-11T01-43-05`, a path segment) or an ISO-8601 timestamp;
    kept as text. A value that reads as ISO-8601 must have a zone and a year 1970-9999."""
    text = fields.string("versionTs", required=False, max_length=MAX_VERSION_TS_LENGTH)
    if text is None:
        return None
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return text  # a label, not a timestamp
    problem = timestamp_problem(text)
    if problem is not None:
        fields.errors.append(FieldError("versionTs", problem))
        return None
    return text


def _optional_text(fields: FieldReader, name: str) -> str | None:
    """Free text a worker may leave empty: any string is accepted, "" means absent."""
    value = fields.payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        fields.errors.append(FieldError(name, "must be a string"))
        return None
    return value or None


def _retryable(fields: FieldReader) -> bool:
    """`retryable` is a JSON boolean, true when absent or null; anything else is invalid."""
    value = fields.payload.get("retryable")
    if value is None:
        return True
    if not isinstance(value, bool):
        fields.errors.append(FieldError("retryable", "must be a boolean (true or false)"))
        return True
    return value
