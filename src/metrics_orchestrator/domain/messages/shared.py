"""What the worker messages' builders and parsers share: timestamps and the run id."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from metrics_orchestrator.domain.errors import FieldError
from metrics_orchestrator.domain.fields import FieldReader


def utc_text(moment: datetime, timespec: str = "milliseconds") -> str:
    """`moment` as ISO-8601 in UTC with a `Z`, e.g. `2025-11-11T01:42:00.000Z`."""
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def read_run_id(fields: FieldReader) -> UUID | None:
    """The required `runId` (a UUID); None, with the problem recorded, otherwise."""
    text = fields.string("runId", required=True)
    if text is None:
        return None
    try:
        return UUID(text)
    except ValueError:
        fields.errors.append(FieldError("runId", "must be a UUID"))
        return None
