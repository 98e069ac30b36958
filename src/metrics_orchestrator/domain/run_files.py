"""The files a worker keeps about one run attempt beside its output (SPEC §4.4; issue 25).

    {basePath}runs/{runId}-{attempt}.claim   the delivery computing the run
    {basePath}runs/{runId}-{attempt}.ok      marker: the completed event sent for the run
    {basePath}runs/{runId}-{attempt}.log     the run's log lines, at most MAX_RUN_LOG_BYTES

The reference worker writes all three; the control plane reads the log (`GET /runs/{id}/logs`,
the run page, `runs logs ID`). A worker that writes no log is allowed: the run then has none.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from metrics_orchestrator.domain.s3_locations import S3Location, parse_s3_uri

RUN_FILES = "runs/"
# A run's log is kept within this many bytes by the reference worker, and no more than the
# last this many bytes of any worker's log are read: a page shows it whole, a person reads it.
MAX_RUN_LOG_BYTES = 64 * 1024
RUN_LOG_TYPE = "text/plain; charset=utf-8"


class RunFile(StrEnum):
    CLAIM = "claim"
    MARKER = "ok"
    LOG = "log"


def run_file(base: S3Location, run_id: object, attempt: int, kind: RunFile) -> S3Location:
    """Where the file of `kind` of one run attempt is, under the output's base path."""
    return base.child(f"{RUN_FILES}{run_id}-{attempt}.{kind.value}")


def run_log_location(
    request_payload: Mapping[str, Any] | None, run_id: object, attempt: int
) -> S3Location | None:
    """Where a worker writes the log of the run a stored request asked for; None when there is
    no request yet (the run was not queued) or it names no `s3://` output base path."""
    output = (request_payload or {}).get("output")
    base = output.get("basePath") if isinstance(output, Mapping) else None
    if not isinstance(base, str):
        return None
    try:
        location = parse_s3_uri(base)
    except ValueError:
        return None
    return run_file(location, run_id, attempt, RunFile.LOG)
