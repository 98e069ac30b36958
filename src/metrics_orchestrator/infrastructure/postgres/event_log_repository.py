from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from operator import itemgetter
from typing import Any

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from metrics_orchestrator.application.ports.events import EventRecord, EventStatus, LoggedEvent
from metrics_orchestrator.domain.decoding import is_jsonb_storable
from metrics_orchestrator.infrastructure.postgres.jsonb import jsonb
from metrics_orchestrator.infrastructure.postgres.named_queries import query
from metrics_orchestrator.infrastructure.postgres.params import columns
from metrics_orchestrator.infrastructure.postgres.rows import Row, fetch_all, fetch_one, record


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
    return jsonb(payload)


def _params(event: EventRecord, processed_at: datetime) -> dict[str, Any]:
    return {
        "event_key": event.event_key,
        "event_type": event.event_type,
        "source": event.source,
        "payload": storable_payload(event.payload),
        "raw_body": storable_text(event.raw_body),
        "status": event.status.value,
        # a rejection's reason can quote the body (a JSON path through a key holding NUL)
        "error": storable_text(event.error),
        "received_at": event.received_at,
        "processed_at": processed_at,
    }


def _logged(row: Row) -> LoggedEvent:
    return record(LoggedEvent, row, status=EventStatus(row["status"]))


class PostgresEventLogRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def record(self, event: EventRecord, processed_at: datetime) -> int:
        if event.replaces is not None:
            return self._record_rejected_again(event, processed_at)
        row = fetch_one(
            self._conn, query("event_log.sql", "record_event"), _params(event, processed_at)
        )
        assert row is not None
        return int(row["id"])

    def _record_rejected_again(self, event: EventRecord, processed_at: datetime) -> int:
        params = _params(event, processed_at) | {"replaces": event.replaces}
        row = fetch_one(self._conn, query("event_log.sql", "record_rejected_again"), params)
        if row is None:
            # dismissed or replayed meanwhile: the rejection is kept as an entry of its own
            return self.record(replace(event, replaces=None), processed_at)
        return int(row["id"])

    def record_many(self, events: Sequence[tuple[EventRecord, datetime]]) -> None:
        for event, processed_at in events:
            if event.replaces is not None:
                self._record_rejected_again(event, processed_at)
        new = [(event, at) for event, at in events if event.replaces is None]
        if not new:
            return
        rows = [_params(event, processed_at) for event, processed_at in new]
        self._conn.execute(
            query("event_log.sql", "record_events"),
            columns(
                rows,
                event_keys=itemgetter("event_key"),
                event_types=itemgetter("event_type"),
                sources=itemgetter("source"),
                payloads=itemgetter("payload"),
                raw_bodies=itemgetter("raw_body"),
                statuses=itemgetter("status"),
                errors=itemgetter("error"),
                received_ats=itemgetter("received_at"),
                processed_ats=itemgetter("processed_at"),
            ),
        )

    def was_processed(self, event_key: str) -> bool:
        row = fetch_one(
            self._conn, query("event_log.sql", "was_processed"), {"event_key": event_key}
        )
        return bool(row and row["processed"])

    def get(self, event_id: int) -> LoggedEvent | None:
        row = fetch_one(self._conn, query("event_log.sql", "get_event"), {"id": event_id})
        return _logged(row) if row else None

    def latest_with_key(
        self, event_key: str, status: EventStatus | None = None
    ) -> LoggedEvent | None:
        row = fetch_one(
            self._conn,
            query("event_log.sql", "latest_with_key"),
            {"event_key": event_key, "status": status.value if status else None},
        )
        return _logged(row) if row else None

    def list(
        self, *, status: EventStatus | None, limit: int, before_id: int | None, body_chars: int
    ) -> list[LoggedEvent]:
        rows = fetch_all(
            self._conn,
            query("event_log.sql", "list_events"),
            {
                "status": status.value if status else None,
                "limit": limit,
                "before_id": before_id,
                "body_chars": body_chars,
            },
        )
        return [_logged(r) for r in rows]

    def mark_replayed(self, event_id: int, at: datetime) -> None:
        self._conn.execute(query("event_log.sql", "mark_replayed"), {"id": event_id, "at": at})

    def dismiss(self, event_id: int, reason: str, at: datetime) -> int:
        cursor = self._conn.execute(
            query("event_log.sql", "dismiss_event"),
            {
                "id": event_id,
                "from": EventStatus.REJECTED.value,
                "to": EventStatus.DISMISSED.value,
                "reason": reason,
                "at": at,
            },
        )
        return cursor.rowcount
