"""The `metric_run_started` message (SPEC §4.2): a worker began a run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from metrics_orchestrator.domain.fields import FieldReader
from metrics_orchestrator.domain.messages.shared import read_run_id, utc_text

RUN_STARTED = "metric_run_started"


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: UUID
    started_at: datetime | None


def build_run_started(run_id: str, started_at: datetime) -> dict[str, Any]:
    return {"type": RUN_STARTED, "runId": run_id, "startedAt": utc_text(started_at)}


def parse_run_started(payload: dict[str, Any]) -> RunStarted:
    fields = FieldReader(payload)
    run_id = read_run_id(fields)
    started_at = fields.timestamp("startedAt", required=False)
    fields.finish()
    assert run_id is not None
    return RunStarted(run_id=run_id, started_at=started_at)
