"""The `metric_run_heartbeat` message (SPEC §4.2): a worker is still computing a run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from metrics_orchestrator.domain.errors import FieldError
from metrics_orchestrator.domain.fields import FieldReader
from metrics_orchestrator.domain.messages.shared import read_run_id, utc_text

RUN_HEARTBEAT = "metric_run_heartbeat"
PROGRESS_RULE = "must be a fraction in [0, 1] or a percentage in (1, 100]"


@dataclass(frozen=True, slots=True)
class RunHeartbeat:
    run_id: UUID
    progress: float | None
    ts: datetime


def build_run_heartbeat(run_id: str, progress: float, ts: datetime) -> dict[str, Any]:
    """A heartbeat; `progress` is sent as a fraction clamped to [0, 1], to 4 decimals."""
    return {
        "type": RUN_HEARTBEAT,
        "runId": run_id,
        "progress": round(min(max(progress, 0.0), 1.0), 4),
        "ts": utc_text(ts),
    }


def normalise_progress(value: object) -> float:
    """A fraction 0-1 as is, a percentage in (1, 100] divided by 100; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(PROGRESS_RULE)
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > 100:
        raise ValueError(PROGRESS_RULE)
    return number if number <= 1 else number / 100


def parse_run_heartbeat(payload: dict[str, Any]) -> RunHeartbeat:
    fields = FieldReader(payload)
    run_id = read_run_id(fields)
    progress = _progress(fields)
    ts = fields.timestamp("ts", required=True)
    fields.finish()
    assert run_id is not None
    assert ts is not None
    return RunHeartbeat(run_id=run_id, progress=progress, ts=ts)


def _progress(fields: FieldReader) -> float | None:
    value = fields.payload.get("progress")
    if value is None:
        return None
    try:
        return normalise_progress(value)
    except ValueError as exc:
        fields.errors.append(FieldError("progress", str(exc)))
        return None
