"""The `metric_run_completed` message (SPEC §4.2): a worker finished a run, SUCCESS or FAILURE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from metrics_orchestrator.domain.decoding import MAX_JSON_INTEGER
from metrics_orchestrator.domain.errors import FieldError
from metrics_orchestrator.domain.fields import MAX_LABEL_LENGTH, FieldReader, timestamp_problem
from metrics_orchestrator.domain.messages.shared import read_run_id
from metrics_orchestrator.domain.model import RunStatus

RUN_COMPLETED = "metric_run_completed"
COMPLETION_STATUSES = {"SUCCESS": True, "FAILURE": False}
# rowCount is stored as a PostgreSQL bigint (SPEC §4.2: 0 ... 2^63-1).
MAX_ROW_COUNT = MAX_JSON_INTEGER
# versionTs names the run's output folder (SPEC §4.4): a path segment, not free text.
MAX_VERSION_TS_LENGTH = 128


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


def build_run_succeeded(
    run_id: str,
    metric_code: str | None,
    *,
    version_ts: str,
    output_manifest: str,
    row_count: int,
) -> dict[str, Any]:
    """A SUCCESS; `metricCode` is left out when `metric_code` is None."""
    return {
        **_completed(run_id, metric_code),
        "status": "SUCCESS",
        "versionTs": version_ts,
        "outputManifest": output_manifest,
        "rowCount": row_count,
    }


def build_run_failed(
    run_id: str, metric_code: str | None, error: str, *, retryable: bool = True
) -> dict[str, Any]:
    """A FAILURE; `retryable=False` (SPEC §4.2) when a new attempt would fail the same way."""
    event = {**_completed(run_id, metric_code), "status": "FAILURE", "error": error}
    if not retryable:
        event["retryable"] = False
    return event


def _completed(run_id: str, metric_code: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": RUN_COMPLETED, "runId": run_id}
    if metric_code is not None:
        event["metricCode"] = metric_code
    return event


def parse_run_completed(payload: dict[str, Any]) -> RunCompleted:
    fields = FieldReader(payload)
    run_id = read_run_id(fields)
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
