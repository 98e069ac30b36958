"""Where and how a run's output is written (SPEC §4.4), and what the worker may publish.

    {basePath}{versionTs}/data/part-0.parquet   columns obs_time (timestamp, UTC), value
    {basePath}{versionTs}/manifest.json         run_id, metric_code, version_ts, row_count,
                                                files, inputs (+ attempt, created_at, columns,
                                                date_range, expression)
    {basePath}current/manifest.json             a copy of the newest run's manifest
    {basePath}runs/{runId}-{attempt}.claim      the delivery computing the run (conditional put)
    {basePath}runs/{runId}-{attempt}.ok         marker: the completed event sent for the run
    {basePath}runs/{runId}-{attempt}.log        the run's log lines (run_log.py)

The `runs/` files' layout is the domain's (`domain/run_files.py`): the control plane reads the log.

`versionTs` is the ISO-8601 *basic* form of the time the output was produced, in UTC
(`20251111T014305.123456Z`): it carries its zone as §4.2 asks and has no `:`, so it is a
plain S3 key segment and sorts in time order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from metrics_orchestrator.domain.messages.run_completed import build_run_failed
from metrics_orchestrator.domain.messages.run_requested import RunRequest
from metrics_orchestrator.domain.messages.shared import utc_text
from metrics_orchestrator.domain.run_files import RunFile, run_file
from metrics_orchestrator.domain.s3_locations import S3Location

DATA_FILE = "data/part-0.parquet"
MANIFEST = "manifest.json"
CURRENT_MANIFEST = "current/manifest.json"
JSON_TYPE = "application/json"
PARQUET_TYPE = "application/vnd.apache.parquet"
# Every text the worker publishes (a failure's error) is cut to this many characters: it is
# for people, and an SNS message must stay far inside its 256 KiB (issue 20: a 330 KB
# INVALID_REQUEST was refused by SNS and its request looped to the DLQ). The control plane has
# no such constant in its domain to share; the value is the one its own texts use.
MAX_PUBLISHED_TEXT = 2_000
_VERSION_TS = re.compile(r"\d{8}T\d{6}\.\d{6}Z")


def version_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def timestamp(moment: datetime) -> str:
    """A manifest's times, written like the feedback messages' (SPEC §4.2)."""
    return utc_text(moment)


def data_location(request: RunRequest, version: str) -> S3Location:
    return request.output_base.child(f"{version}/{DATA_FILE}")


def manifest_location(request: RunRequest, version: str) -> S3Location:
    return request.output_base.child(f"{version}/{MANIFEST}")


def current_manifest_location(request: RunRequest) -> S3Location:
    return request.output_base.child(CURRENT_MANIFEST)


def marker_location(request: RunRequest) -> S3Location:
    return run_file(request.output_base, request.run_id, request.attempt, RunFile.MARKER)


def claim_location(request: RunRequest) -> S3Location:
    return run_file(request.output_base, request.run_id, request.attempt, RunFile.CLAIM)


def log_location(request: RunRequest) -> S3Location:
    return run_file(request.output_base, request.run_id, request.attempt, RunFile.LOG)


def supersedes(version: str, current: object) -> bool:
    """Whether an output of `version` may replace `current` (the `version_ts` found in
    `current/manifest.json`): only a later one, so the current copy never goes back in time.
    A `current` not in the worker's format (another worker's, or none) is replaced."""
    if not isinstance(current, str) or _VERSION_TS.fullmatch(current) is None:
        return True
    return version > current  # the basic ISO form sorts in time order


def output_manifest(
    request: RunRequest,
    *,
    version: str,
    row_count: int,
    created_at: datetime,
    date_range: tuple[datetime | None, datetime | None],
) -> dict[str, Any]:
    first, last = date_range
    return {
        "run_id": request.run_id,
        "attempt": request.attempt,
        "metric_code": request.metric_code,
        "version_ts": version,
        "created_at": timestamp(created_at),
        "row_count": row_count,
        "columns": {"obs_time": "timestamp[us, UTC]", "value": "float64"},
        "date_range": {
            "min_obs_time": timestamp(first) if first else None,
            "max_obs_time": timestamp(last) if last else None,
        },
        "files": [data_location(request, version).uri],
        "inputs": dict(request.catalog),
        "expression_type": request.expression.expression_type.value,
        "expression": request.expression.canonical,
    }


def json_bytes(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode()


def failure_event(
    run_id: str, metric_code: str | None, error: str, *, retryable: bool = True
) -> dict[str, Any]:
    """The worker's FAILURE (`domain/messages/run_completed.py`): its error cut to what the
    worker may publish (`published_text`)."""
    return build_run_failed(run_id, metric_code, published_text(error), retryable=retryable)


def published_text(text: str, limit: int = MAX_PUBLISHED_TEXT) -> str:
    """`text` as the control plane can store it: no NUL or lone surrogate (written as escapes)
    and at most `limit` characters, a cut one saying how long it was."""
    storable = text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()
    if len(storable) <= limit:
        return storable
    suffix = f"... (cut; {len(storable):,} characters in all)"
    return storable[: limit - len(suffix)] + suffix
