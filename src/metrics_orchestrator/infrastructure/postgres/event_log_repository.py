from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from metrics_orchestrator.application.ports.events import EventRecord, EventStatus, LoggedEvent
from metrics_orchestrator.domain.decoding import is_jsonb_storable
from metrics_orchestrator.infrastructure.postgres.queries import query


def storable_text(raw: str | None) -> str | None:
    """What PostgreSQL text can keep of a body: NUL and lone surrogates become escapes."""
    if raw is None:
        return None
    return raw.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def storable_payload(payload: dict[str, Any] | None) -> Jsonb | None:
    """The payload as JSONB, or None when JSONB cannot hold it (the raw body still tells).

    The decoder rejects such payloads before they get here; this keeps the promise that a
    rejection can always be recorded even if a caller hands one over anyway.
    """
    if payload is None or not is_jsonb_storable(payload):
        return None
    return Jsonb(payload)


def _logged(row: tuple[Any, ...]) -> LoggedEvent:
    return LoggedEvent(
        id=row[0],
        event_key=row[1],
        event_type=row[2],
        status=EventStatus(row[3]),
        source=row[4],
        payload=row[5],
        raw_body=row[6],
        error=row[7],
        received_at=row[8],
        processed_at=row[9],
        replayed_at=row[10],
    )


class PostgresEventLogRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def record(self, event: EventRecord, processed_at: datetime) -> int:
        row = self._conn.execute(
            query("event_log.sql", "record_event"),
            {
                "event_key": event.event_key,
                "event_type": event.event_type,
                "source": event.source,
                "payload": storable_payload(event.payload),
                "raw_body": storable_text(event.raw_body),
                "status": event.status.value,
                "error": event.error,
                "received_at": event.received_at,
                "processed_at": processed_at,
            },
        ).fetchone()
        assert row is not None
        return int(row[0])

    def was_processed(self, event_key: str) -> bool:
        row = self._conn.execute(
            query("event_log.sql", "was_processed"), {"event_key": event_key}
        ).fetchone()
        return bool(row and row[0])

    def get(self, event_id: int) -> LoggedEvent | None:
        row = self._conn.execute(query("event_log.sql", "get_event"), {"id": event_id}).fetchone()
        return _logged(row) if row else None

    def latest_with_key(
        self, event_key: str, status: EventStatus | None = None
    ) -> LoggedEvent | None:
        row = self._conn.execute(
            query("event_log.sql", "latest_with_key"),
            {"event_key": event_key, "status": status.value if status else None},
        ).fetchone()
        return _logged(row) if row else None

    def list(
        self, *, status: EventStatus | None, limit: int, before_id: int | None
    ) -> list[LoggedEvent]:
        rows = self._conn.execute(
            query("event_log.sql", "list_events"),
            {"status": status.value if status else None, "limit": limit, "before_id": before_id},
        ).fetchall()
        return [_logged(r) for r in rows]

    def mark_replayed(self, event_id: int, at: datetime) -> None:
        self._conn.execute(query("event_log.sql", "mark_replayed"), {"id": event_id, "at": at})
