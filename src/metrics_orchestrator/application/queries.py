"""Read-only queries the API and the metrics endpoint need (SPEC §6.3, §6.4).

Nothing here writes. Each query is one short transaction through the unit of work, so the
interfaces never touch a repository themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from metrics_orchestrator.application.pagination import (
    check_page_size,
    cut_page,
    decode_event_cursor,
    encode_event_cursor,
)
from metrics_orchestrator.application.ports import Clock, UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventStatus, LoggedEvent
from metrics_orchestrator.application.ports.queries import (
    HourlyRunCount,
    RunGauges,
    RunMatch,
    RunWaits,
)
from metrics_orchestrator.domain.model import DatasetUpdate, RunStatus
from metrics_orchestrator.domain.run_ids import SHOWN_MATCHES, parse_run_id_prefix, the_one_match

RECENT_UPDATES = 20
OVERVIEW_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RunOverview:
    """What the dashboard's overview shows (SPEC §6.3 web dashboard)."""

    generated_at: datetime
    by_status: dict[RunStatus, int]
    last_24h: list[HourlyRunCount]
    waits: RunWaits


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[LoggedEvent]
    next_cursor: str | None


class QueryService:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    def list_events(
        self, *, status: EventStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> EventPage:
        """A page of the event log, newest first, and the cursor of the next page."""
        check_page_size(limit)
        before_id = decode_event_cursor(cursor) if cursor else None
        with self._uow_factory() as uow:
            rows = uow.events.list(status=status, limit=limit + 1, before_id=before_id)
        page, next_cursor = cut_page(rows, limit, lambda last: encode_event_cursor(last.id))
        return EventPage(page, next_cursor)

    def recent_updates(self, dataset_id: str, limit: int = RECENT_UPDATES) -> list[DatasetUpdate]:
        with self._uow_factory() as uow:
            return uow.queries.recent_dataset_updates(dataset_id, limit)

    def run_gauges(self) -> RunGauges:
        now = self._clock.now()
        with self._uow_factory() as uow:
            return uow.queries.run_gauges(now)

    def run_overview(self) -> RunOverview:
        """Counts by status now and over the last 24 h, waits and backlog, in one snapshot."""
        now = self._clock.now()
        with self._uow_factory() as uow:
            return RunOverview(
                generated_at=now,
                by_status=uow.queries.runs_by_status(),
                last_24h=uow.queries.runs_by_hour_and_status(now - OVERVIEW_WINDOW),
                waits=uow.queries.run_waits(now),
            )

    def latest_run_status_by_metric(self) -> dict[str, RunStatus | None]:
        with self._uow_factory() as uow:
            return uow.queries.latest_run_status_by_metric()

    def runs_by_id_prefix(self, text: str, limit: int = SHOWN_MATCHES) -> list[RunMatch]:
        """Up to `limit` runs whose id starts with `text` (SPEC §6.1: a prefix, >= 4 hex
        digits, hyphens optional), in id order; ValidationError if it cannot be a prefix."""
        prefix = parse_run_id_prefix(text)
        with self._uow_factory() as uow:
            return uow.queries.runs_in_id_range(prefix.lowest, prefix.highest, limit)

    def resolve_run_id(self, text: str) -> UUID:
        """The one run whose id starts with `text`: NotFound if none, ValidationError listing
        the matches (at most SHOWN_MATCHES) if several."""
        matches = self.runs_by_id_prefix(text, SHOWN_MATCHES + 1)
        ids = [m.id for m in matches]
        return the_one_match(text, ids[:SHOWN_MATCHES], more=len(ids) > SHOWN_MATCHES)
