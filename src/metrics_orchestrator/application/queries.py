"""Read-only queries the API and the metrics endpoint need (SPEC §6.3, §6.4).

Nothing here writes. Each query is one short transaction through the unit of work, so the
interfaces never touch a repository themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
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
    DatasetVersion,
    HourlyRunCount,
    LastRun,
    MetricDataFacts,
    MetricRunSummary,
    RunGauges,
    RunMatch,
    RunWaits,
    SearchHits,
)
from metrics_orchestrator.application.run_history import (
    HistoryRequest,
    RunHistory,
    grid_query,
    history_page,
)
from metrics_orchestrator.domain.errors import NotFound, ValidationError
from metrics_orchestrator.domain.metric_graph import downstream
from metrics_orchestrator.domain.metric_outputs import output_metric_code
from metrics_orchestrator.domain.metric_state import RECENT_RUNS, StateVerdict, metric_state
from metrics_orchestrator.domain.model import DatasetUpdate, RunStatus
from metrics_orchestrator.domain.run_ids import SHOWN_MATCHES, parse_run_id_prefix, the_one_match
from metrics_orchestrator.domain.staleness import Staleness, refresh_roots, staleness

RECENT_UPDATES = 20
# A page of the event log holds this much of each raw body (a rejected one may be 256 KiB).
LISTED_BODY_CHARACTERS = 4096
# A metric's typical duration is the median of its newest succeeded runs: recent enough to
# follow a change of the worker, many enough that one slow run does not move it.
DURATION_RUNS = 20
# the runs a version's page lists: a version feeds one run per dependent metric and attempt
VERSION_CONSUMERS = 100
# longer than any event key (a dataset id, ':', a path of at most 1024 characters): a text
# beyond it can name nothing, and is not sent to the database
MAX_SEARCH_TEXT = 2048
OVERVIEW_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RunOverview:
    """What the dashboard's overview shows (SPEC §6.3 web dashboard)."""

    generated_at: datetime
    by_status: dict[RunStatus, int]
    last_24h: list[HourlyRunCount]
    waits: RunWaits


@dataclass(frozen=True, slots=True)
class MetricData:
    """What SPEC §8 says of a metric: the data time behind its latest succeeded run, how old
    that is by our clock, and whether the metric is stale and why."""

    data_time: datetime | None
    data_age_seconds: float | None
    staleness: Staleness


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
        """A page of the event log, newest first, and the cursor of the next page; each raw
        body is its first LISTED_BODY_CHARACTERS (`get_event`, `event_with_key`: the whole)."""
        check_page_size(limit)
        before_id = decode_event_cursor(cursor) if cursor else None
        with self._uow_factory() as uow:
            rows = uow.events.list(
                status=status,
                limit=limit + 1,
                before_id=before_id,
                body_chars=LISTED_BODY_CHARACTERS,
            )
        page, next_cursor = cut_page(rows, limit, lambda last: encode_event_cursor(last.id))
        return EventPage(page, next_cursor)

    def get_event(self, event_id: int) -> LoggedEvent:
        """One event of the log, in full (NotFound if there is none with this id)."""
        with self._uow_factory() as uow:
            event = uow.events.get(event_id)
        if event is None:
            raise NotFound(f"unknown event {event_id}")
        return event

    def event_with_key(self, event_key: str) -> LoggedEvent:
        """The newest log entry of the event with this key (an incident's subject, SPEC §9)."""
        with self._uow_factory() as uow:
            event = uow.events.latest_with_key(event_key)
        if event is None:
            raise NotFound(f"unknown event {event_key!r}")
        return event

    def recent_updates(self, dataset_id: str, limit: int = RECENT_UPDATES) -> list[DatasetUpdate]:
        with self._uow_factory() as uow:
            return uow.queries.recent_dataset_updates(dataset_id, limit)

    def dataset_version(
        self, dataset_id: str, update_id: UUID, limit: int = VERSION_CONSUMERS
    ) -> DatasetVersion:
        """One version of a dataset (a metric's output included), with the runs that consumed
        it, newest first, at most `limit`; NotFound when the dataset has no such version."""
        with self._uow_factory() as uow:
            facts = uow.queries.dataset_version(dataset_id, update_id)
            if facts is None:
                raise NotFound(f"dataset '{dataset_id}' has no version {update_id}")
            consumers = uow.queries.version_consumers(update_id, limit + 1)
        return DatasetVersion(
            facts, tuple(consumers[:limit]), more_consumers=len(consumers) > limit
        )

    def search(self, text: str) -> SearchHits:
        """What `text` names exactly: a metric code, a dataset id, an event key, or a prefix of
        run ids (SPEC §6.1's rule: >= 4 hex digits, hyphens optional), in one read; nothing
        for a blank text, one no key can be, or one PostgreSQL cannot hold (NUL)."""
        text = text.strip()
        if not text or len(text) > MAX_SEARCH_TEXT or "\x00" in text:
            return SearchHits(text)
        try:
            prefix = parse_run_id_prefix(text)
            run_range = (prefix.lowest, prefix.highest)
        except ValidationError:
            run_range = None
        with self._uow_factory() as uow:
            hits = uow.queries.search(text, run_range, SHOWN_MATCHES + 1)
        return replace(
            hits, runs=hits.runs[:SHOWN_MATCHES], more_runs=len(hits.runs) > SHOWN_MATCHES
        )

    def run_gauges(self) -> RunGauges:
        """The gauges read at scrape time, with each metric's data age (SPEC §8)."""
        now = self._clock.now()
        with self._uow_factory() as uow:
            gauges = uow.queries.run_gauges(now)
            facts = uow.queries.metric_data_facts()
        ages = {
            f.staleness.code: _age_seconds(f.data_time, now)
            for f in facts
            if f.data_time is not None
        }
        return RunGauges(gauges.pending_runs, gauges.dispatcher_backlog, data_age_seconds=ages)

    def metric_data(self, codes: Iterable[str] | None = None) -> dict[str, MetricData]:
        """Each metric's data time, data age and staleness (every metric when `codes` is None),
        by code. Staleness is judged over the whole graph: one read of every metric's facts."""
        now = self._clock.now()
        with self._uow_factory() as uow:
            facts = uow.queries.metric_data_facts()
        judged = staleness([f.staleness for f in facts])
        wanted = None if codes is None else set(codes)
        return {
            f.staleness.code: _metric_data(f, judged[f.staleness.code], now)
            for f in facts
            if wanted is None or f.staleness.code in wanted
        }

    def refresh_roots(self) -> list[str]:
        """The metrics `refresh --stale` runs (SPEC §8): the stale ones none of whose upstream
        metrics is stale; the chain brings the rest up to date."""
        with self._uow_factory() as uow:
            facts = uow.queries.metric_data_facts()
        return refresh_roots([f.staleness for f in facts])

    def downstream_of(self, codes: Iterable[str]) -> dict[str, int]:
        """Every metric reading, directly or through others, the output of one of `codes`,
        with its depth (1: reads one of them), over the stored graph; `codes` left out."""
        roots = set(codes)
        with self._uow_factory() as uow:
            upstream = uow.queries.metric_upstream()
        return {c: d for c, d in downstream(upstream, roots).items() if c not in roots}

    def upstream_states(self, dataset_ids: Iterable[str]) -> dict[str, StateVerdict]:
        """For the inputs that are metrics' outputs (`metric:X`), each X's state and why, by
        X's code: what "why not yet" says of a metric waiting on another (SPEC §8)."""
        codes = [c for c in (output_metric_code(d) for d in dataset_ids) if c is not None]
        return self.metric_states(codes) if codes else {}

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

    def metric_states(self, codes: list[str] | None = None) -> dict[str, StateVerdict]:
        """Each metric's state and why (every metric when `codes` is None), by code: one read."""
        now = self._clock.now()
        with self._uow_factory() as uow:
            facts = uow.queries.metric_state_facts(codes, RECENT_RUNS)
        return {f.code: metric_state(f, now) for f in facts}

    def metric_state(self, code: str) -> StateVerdict:
        """One metric's state; NotFound for an unknown code."""
        states = self.metric_states([code])
        if code not in states:
            raise NotFound(f"unknown metric '{code}'")
        return states[code]

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

    def last_run_by_metric(self) -> dict[str, LastRun]:
        """Each metric's newest run (a metric that never ran is absent), by code."""
        with self._uow_factory() as uow:
            return uow.queries.last_run_by_metric()

    def run_summaries(self, codes: list[str]) -> dict[str, MetricRunSummary]:
        """Each of these metrics' newest run, latest success and median duration (over its
        DURATION_RUNS newest succeeded runs), by code: one read for the whole list."""
        if not codes:
            return {}
        with self._uow_factory() as uow:
            return uow.queries.metric_run_summaries(codes, DURATION_RUNS)

    def run_history(self, request: HistoryRequest) -> RunHistory:
        """A page of the history grid (application/run_history.py): one read, whatever the
        number of metrics; ValidationError for columns or a cursor it cannot serve."""
        now = self._clock.now()
        query = grid_query(request, now)
        with self._uow_factory() as uow:
            rows = uow.queries.run_grid(query)
        return history_page(rows, query, now)

    def freshest_update_by_dataset(self) -> dict[str, DatasetUpdate]:
        """Each dataset's freshest update (a dataset that never had one is absent), by id."""
        with self._uow_factory() as uow:
            return uow.queries.freshest_update_by_dataset()


def _age_seconds(data_time: datetime, now: datetime) -> float:
    return (now - data_time).total_seconds()


def _metric_data(facts: MetricDataFacts, judged: Staleness, now: datetime) -> MetricData:
    age = _age_seconds(facts.data_time, now) if facts.data_time is not None else None
    return MetricData(facts.data_time, age, judged)
