"""Incidents (SPEC §9): opened and resolved in the transaction of the change that causes them,
with one outbox row per matching channel written in that same transaction.

The use cases that see a cause (the sweeper, feedback, the dispatcher, intake, the event inbox)
call `IncidentBook` inside their own unit of work; the domain decides what is late, overdue or a
final failure (domain/freshness.py, domain/incidents.py) and this module stores the decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import uuid4

import structlog

from metrics_orchestrator.application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventRecord, EventStatus
from metrics_orchestrator.application.ports.incidents import (
    DeliveryView,
    IncidentPage,
    NewDelivery,
    RecordedOccurrence,
)
from metrics_orchestrator.application.transactions import transact
from metrics_orchestrator.domain import log_events
from metrics_orchestrator.domain.errors import NotFound
from metrics_orchestrator.domain.freshness import (
    Freshness,
    dataset_freshness,
    metric_freshness,
)
from metrics_orchestrator.domain.incidents import (
    Change,
    ChannelFormat,
    Incident,
    IncidentKind,
    Occurrence,
    notification_body,
    rejection_summary,
)

log = structlog.get_logger(__name__)

_METRIC_RUN_KINDS = (IncidentKind.RUN_FAILED, IncidentKind.DISPATCH_FAILED)


@dataclass(slots=True)
class IncidentChanges:
    """What one transaction opened and resolved (logged after it commits)."""

    opened: list[Incident] = field(default_factory=list)
    resolved: list[Incident] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.opened or self.resolved)

    def add(self, other: IncidentChanges) -> None:
        self.opened += other.opened
        self.resolved += other.resolved


class IncidentBook:
    """Opens, counts and resolves incidents inside the caller's unit of work."""

    def __init__(self, public_url: str = "http://127.0.0.1:8000") -> None:
        # the dashboard's external address, for the links in notifications (PUBLIC_URL)
        self._public_url = public_url

    # --- causes ------------------------------------------------------------------------------

    def occurred(
        self, uow: UnitOfWork, occurrences: Iterable[Occurrence], *, counted: bool = True
    ) -> IncidentChanges:
        """Each occurrence opens its (kind, subject) incident or adds one to its count."""
        changes = IncidentChanges()
        for occurrence in occurrences:
            incident, opened = uow.incidents.record_occurrence(occurrence, counted=counted)
            if opened:
                changes.opened.append(incident)
        self._notify(uow, Change.OPENED, changes.opened, at=None)
        _log_after_commit(uow, changes)
        return changes

    def events_recorded(
        self, uow: UnitOfWork, records: Iterable[EventRecord], at: datetime
    ) -> IncidentChanges:
        """Each rejected event opens its incident (subject: its event key), or counts again."""
        rejected = [
            Occurrence(
                IncidentKind.EVENT_REJECTED,
                record.event_key,
                rejection_summary(record.event_type, record.error or "rejected"),
                at,
                event_key=record.event_key,
            )
            for record in records
            if record.status is EventStatus.REJECTED
        ]
        return self.occurred(uow, rejected) if rejected else IncidentChanges()

    def resolve(
        self,
        uow: UnitOfWork,
        kinds: Sequence[IncidentKind],
        subjects: Sequence[str],
        resolution: str,
        at: datetime,
    ) -> IncidentChanges:
        changes = IncidentChanges(resolved=uow.incidents.resolve(kinds, subjects, resolution, at))
        self._notify(uow, Change.RESOLVED, changes.resolved, at=at)
        _log_after_commit(uow, changes)
        return changes

    def metric_succeeded(
        self, uow: UnitOfWork, metric_code: str, run_id: object, at: datetime
    ) -> IncidentChanges:
        """A success ends its metric's failure incidents, and maybe its being overdue."""
        changes = self.resolve(uow, _METRIC_RUN_KINDS, [metric_code], f"run {run_id} succeeded", at)
        if uow.incidents.open_subjects(IncidentKind.METRIC_OVERDUE, [metric_code]):
            changes.add(self.evaluate_freshness(uow, datasets=(), metrics=[metric_code], now=at))
        return changes

    def datasets_updated(
        self, uow: UnitOfWork, dataset_ids: Sequence[str], at: datetime
    ) -> IncidentChanges:
        """New versions may end lateness: re-judged only where a late incident is open."""
        late = uow.incidents.open_subjects(IncidentKind.DATASET_LATE, sorted(set(dataset_ids)))
        if not late:
            return IncidentChanges()
        return self.evaluate_freshness(uow, datasets=late, metrics=(), now=at)

    def evaluate_freshness(
        self,
        uow: UnitOfWork,
        *,
        datasets: Sequence[str] | None,
        metrics: Sequence[str] | None,
        now: datetime,
    ) -> IncidentChanges:
        """Open or resolve the late / overdue incidents of these subjects (all when None; none
        when empty) by the domain's rules, at `now` by our clock."""
        changes = IncidentChanges()
        board = _judged(uow, datasets, metrics, now)
        if datasets != ():
            late = IncidentKind.DATASET_LATE
            changes.add(self._apply_freshness(uow, late, datasets, board.datasets, now))
        if metrics != ():
            overdue = IncidentKind.METRIC_OVERDUE
            changes.add(self._apply_freshness(uow, overdue, metrics, board.metrics, now))
        return changes

    def _apply_freshness(
        self,
        uow: UnitOfWork,
        kind: IncidentKind,
        subjects: Sequence[str] | None,
        judged: dict[str, Freshness],
        now: datetime,
    ) -> IncidentChanges:
        open_now = set(uow.incidents.open_subjects(kind, subjects))
        failing = [
            Occurrence(kind, subject, f"{subject} is {freshness.state}: {freshness.why}", now)
            for subject, freshness in sorted(judged.items())
            if freshness.failing and subject not in open_now
        ]
        # fresh again, or no objective any more (removed, or the subject disabled)
        ended = sorted(s for s in open_now if s not in judged or not judged[s].failing)
        changes = self.occurred(uow, failing, counted=False)
        if ended:
            changes.add(self.resolve(uow, [kind], ended, _freshness_resolution(kind), now))
        return changes

    # --- the outbox --------------------------------------------------------------------------

    def _notify(
        self, uow: UnitOfWork, change: Change, incidents: Sequence[Incident], at: datetime | None
    ) -> None:
        if not incidents:
            return
        listening = uow.notifications.listening()
        deliveries = [
            _delivery(channel.name, change, incident, self._public_url, channel.format, at)
            for incident in incidents
            for channel in listening
            if channel.wants.matches(incident.kind, incident.subject)
        ]
        if deliveries:
            uow.notifications.enqueue(deliveries)
            uow.changes.notifications_queued(len(deliveries))


def _delivery(
    channel: str,
    change: Change,
    incident: Incident,
    public_url: str,
    fmt: ChannelFormat,
    at: datetime | None,
) -> NewDelivery:
    delivery_id = uuid4()
    body = notification_body(change, str(delivery_id), incident, public_url=public_url, fmt=fmt)
    created = at or incident.last_seen_at
    return NewDelivery(delivery_id, channel, incident.id, change, body, created)


def _freshness_resolution(kind: IncidentKind) -> str:
    if kind is IncidentKind.DATASET_LATE:
        return "fresh data arrived (or the objective no longer applies)"
    return "fresh again (or the objective no longer applies)"


def _log_after_commit(uow: UnitOfWork, changes: IncidentChanges) -> None:
    if changes:
        uow.changes.after_commit.append(lambda: _log_incident_changes(changes))


def _log_incident_changes(changes: IncidentChanges) -> None:
    for incident in changes.opened:
        log.warning(
            log_events.ON_INCIDENT_OPENED,
            message="incident opened",
            incident_id=incident.id,
            kind=str(incident.kind),
            subject=incident.subject,
            summary=incident.summary,
        )
    for incident in changes.resolved:
        log.info(
            log_events.ON_INCIDENT_RESOLVED,
            message="incident resolved",
            incident_id=incident.id,
            kind=str(incident.kind),
            subject=incident.subject,
            resolution=incident.resolution,
        )


# --- what people read (API, CLI, dashboard) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    incident: Incident
    occurrences: tuple[RecordedOccurrence, ...]
    deliveries: tuple[DeliveryView, ...]


@dataclass(frozen=True, slots=True)
class FreshnessBoard:
    """The freshness of every subject with an objective, judged now (SPEC §9)."""

    datasets: dict[str, Freshness]
    metrics: dict[str, Freshness]

    @property
    def failing(self) -> int:
        return sum(f.failing for f in (*self.datasets.values(), *self.metrics.values()))


@dataclass(frozen=True, slots=True)
class FreshnessGauges:
    """What a Prometheus scrape shows of SPEC §9."""

    board: FreshnessBoard
    open_incidents: dict[str, int]
    # notifications waiting to be delivered (`pending`) and given up on (`undeliverable`)
    deliveries: dict[str, int] = field(default_factory=dict)


class IncidentQueries:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    def page(
        self,
        *,
        open_only: bool = False,
        kind: IncidentKind | None = None,
        subject: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> IncidentPage:
        return transact(
            self._uow_factory,
            lambda uow: uow.incidents.page(
                open_only=open_only, kind=kind, subject=subject, before=before, limit=limit
            ),
        )

    def detail(self, incident_id: int, *, occurrences: int = 50) -> IncidentDetail:
        def read(uow: UnitOfWork) -> IncidentDetail:
            incident = uow.incidents.get(incident_id)
            if incident is None:
                raise NotFound(f"no incident {incident_id}")
            return IncidentDetail(
                incident,
                tuple(uow.incidents.occurrences(incident_id, occurrences)),
                tuple(uow.notifications.deliveries(incident_id=incident_id, state=None, limit=50)),
            )

        return transact(self._uow_factory, read)

    def freshness(
        self, *, datasets: Sequence[str] | None = None, metrics: Sequence[str] | None = None
    ) -> FreshnessBoard:
        """Judged now by the rules the sweeper applies; `None` = every subject."""
        now = self._clock.now()
        return transact(self._uow_factory, lambda uow: _judged(uow, datasets, metrics, now))

    def gauges(self) -> FreshnessGauges:
        """One transaction, one query per gauge family, judged now (a Prometheus scrape)."""
        now = self._clock.now()

        def read(uow: UnitOfWork) -> FreshnessGauges:
            return FreshnessGauges(
                _judged(uow, None, None, now),
                {str(kind): count for kind, count in uow.incidents.open_counts().items()},
                uow.notifications.delivery_counts(),
            )

        return transact(self._uow_factory, read)


def _judged(
    uow: UnitOfWork, datasets: Sequence[str] | None, metrics: Sequence[str] | None, now: datetime
) -> FreshnessBoard:
    """The objectives of these subjects (all when None; none, and no read, when empty) judged
    at `now` by the domain's rules: what the incidents and every reader see alike."""
    return FreshnessBoard(
        datasets={
            o.dataset_id: dataset_freshness(o, now)
            for o in (uow.incidents.dataset_objectives(datasets) if datasets != () else [])
        },
        metrics={
            o.metric_code: metric_freshness(o, now)
            for o in (uow.incidents.metric_objectives(metrics) if metrics != () else [])
        },
    )
