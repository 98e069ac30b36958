"""The event log: every message consumed is recorded with its outcome (SPEC §5.1, §5.8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class EventStatus(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    # a rejected event a person closed without replaying it (it can never be valid)
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True)
class EventRecord:
    event_key: str
    event_type: str
    status: EventStatus
    source: str
    received_at: datetime
    payload: dict[str, Any] | None = None
    raw_body: str | None = None
    error: str | None = None
    # A replay rejected again: the id of the inbox entry it came from, which is updated
    # (error, time, attempts) instead of a second entry being added.
    replaces: int | None = None


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    id: int
    event_key: str
    event_type: str
    status: EventStatus
    source: str
    payload: dict[str, Any] | None
    raw_body: str | None
    error: str | None
    received_at: datetime
    processed_at: datetime
    replayed_at: datetime | None
    replay_attempts: int = 0
    dismissed_at: datetime | None = None
    dismiss_reason: str | None = None
    # characters of the whole raw body (None without one); a list holds only its start
    raw_body_length: int | None = None

    @property
    def raw_body_truncated(self) -> bool:
        """Only the start of the raw body is here (a page of the log); get it for the rest."""
        return self.raw_body is not None and len(self.raw_body) < (self.raw_body_length or 0)


class EventLogRepository(Protocol):
    def record(self, event: EventRecord, processed_at: datetime) -> int:
        """Append one row, or update the entry `event.replaces` names; returns its id."""
        ...

    def record_many(self, events: Sequence[tuple[EventRecord, datetime]]) -> None:
        """One row per (event, processed_at), in order (as `record`)."""
        ...

    def was_processed(self, event_key: str) -> bool:
        """Whether an event with this key has already been processed successfully."""
        ...

    def get(self, event_id: int) -> LoggedEvent | None: ...

    def latest_with_key(
        self, event_key: str, status: EventStatus | None = None
    ) -> LoggedEvent | None: ...

    def list(
        self, *, status: EventStatus | None, limit: int, before_id: int | None, body_chars: int
    ) -> list[LoggedEvent]:
        """Newest first, keyset-paginated by id; each raw body cut to its first `body_chars`
        characters (`raw_body_length` says how long it is)."""
        ...

    def mark_replayed(self, event_id: int, at: datetime) -> None: ...

    def dismiss(self, event_id: int, reason: str, at: datetime) -> int:
        """Move a rejected, not replayed entry to `dismissed`; returns the rows changed."""
        ...
