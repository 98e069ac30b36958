"""Incidents, freshness facts, notification channels and the notification outbox (SPEC §9)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from metrics_orchestrator.domain.freshness import DatasetObjective, MetricObjective
from metrics_orchestrator.domain.incidents import (
    Change,
    ChannelFilter,
    ChannelFormat,
    Incident,
    IncidentKind,
    Occurrence,
)


@dataclass(frozen=True, slots=True)
class RecordedOccurrence:
    """An occurrence as stored: a link to the run or event involved."""

    seq: int
    occurred_at: datetime
    run_id: UUID | None
    event_key: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class IncidentPage:
    incidents: tuple[Incident, ...]
    next_before: int | None


class IncidentRepository(Protocol):
    def record_occurrence(self, occurrence: Occurrence, *, counted: bool) -> tuple[Incident, bool]:
        """Open the (kind, subject) incident or add the occurrence to the open one; True when
        this opened it. `counted=False` (a freshness evaluation again) leaves the count."""
        ...

    def resolve(
        self,
        kinds: Sequence[IncidentKind],
        subjects: Sequence[str],
        resolution: str,
        at: datetime,
    ) -> list[Incident]:
        """Resolve the open incidents of `kinds` about `subjects`; the ones this resolved."""
        ...

    def open_subjects(self, kind: IncidentKind, subjects: Sequence[str] | None) -> list[str]:
        """The subjects (all when None) with an open incident of `kind`."""
        ...

    def dataset_objectives(self, dataset_ids: Sequence[str] | None) -> list[DatasetObjective]:
        """Enabled datasets with an `expected_every` (those of `dataset_ids`; all when None)."""
        ...

    def metric_objectives(self, metric_codes: Sequence[str] | None) -> list[MetricObjective]:
        """Enabled metrics with a `max_data_age` (those of `metric_codes`; all when None)."""
        ...

    def open_counts(self) -> dict[IncidentKind, int]:
        """The open incidents, by kind (kinds with none left out)."""
        ...

    def try_lock_freshness(self) -> bool:
        """Whether this transaction is the one evaluating freshness now (other replicas skip)."""
        ...

    def page(
        self,
        *,
        open_only: bool,
        kind: IncidentKind | None,
        subject: str | None,
        before: int | None,
        limit: int,
    ) -> IncidentPage: ...

    def get(self, incident_id: int) -> Incident | None: ...

    def occurrences(self, incident_id: int, limit: int) -> list[RecordedOccurrence]: ...


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """A channel as declared (catalog file or API); `secret` None keeps no secret."""

    name: str
    url: str
    format: ChannelFormat
    secret: str | None = field(repr=False)  # never in a repr, so never in a log line
    kinds: tuple[IncidentKind, ...] | None
    metrics: tuple[str, ...] | None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ChannelView:
    """A channel as shown to people: never its secret, only whether it has one; its URL's
    origin only (`shown_url`: a webhook's path can be a secret too)."""

    name: str
    url: str
    format: ChannelFormat
    has_secret: bool
    kinds: tuple[IncidentKind, ...] | None
    metrics: tuple[str, ...] | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    pending: int
    undeliverable: int
    last_attempt_at: datetime | None
    last_state: str | None
    last_result: str | None


@dataclass(frozen=True, slots=True)
class ListeningChannel:
    name: str
    format: ChannelFormat
    wants: ChannelFilter


@dataclass(frozen=True, slots=True)
class ChannelTarget:
    """Where and how to post to a channel (its secret included: never shown to anyone)."""

    name: str
    url: str
    format: ChannelFormat
    secret: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: UUID
    channel: str
    incident_id: int | None
    change: Change
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A due delivery claimed by this notifier (its lease runs until `lease_until`)."""

    id: UUID
    channel: str
    url: str
    secret: str | None = field(repr=False)
    change: Change
    body: str
    attempts: int  # including this one
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: UUID
    channel: str
    incident_id: int | None
    change: Change
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_result: str | None


class NotificationRepository(Protocol):
    def upsert_channels(self, channels: Sequence[ChannelSettings], at: datetime) -> None: ...

    def disable_channel(self, name: str, at: datetime) -> int: ...

    def channels(self) -> list[ChannelView]: ...

    def target(self, name: str) -> ChannelTarget | None: ...

    def listening(self) -> list[ListeningChannel]:
        """The enabled channels and what each wants to hear of."""
        ...

    def enqueue(self, deliveries: Sequence[NewDelivery]) -> None: ...

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedDelivery]:
        """Due deliveries, locked with SKIP LOCKED and leased until `lease_until`."""
        ...

    def finish(
        self,
        delivery: ClaimedDelivery,
        *,
        state: str,
        result: str,
        at: datetime,
        next_attempt_at: datetime,
    ) -> int:
        """Store a delivery attempt's outcome; rows changed (0: claimed again meanwhile)."""
        ...

    def record_sent(self, delivery: NewDelivery, *, state: str, result: str, at: datetime) -> None:
        """A delivery made at once (a test notification), stored with its outcome."""
        ...

    def deliveries(
        self, *, incident_id: int | None, state: str | None, limit: int
    ) -> list[DeliveryView]: ...

    def delivery_counts(self) -> dict[str, int]:
        """The deliveries `pending` and `undeliverable`, by state (states with none left out)."""
        ...


@dataclass(frozen=True, slots=True)
class PostResult:
    """What one HTTP POST to a channel came to: `detail` is shown to people (no secrets)."""

    ok: bool
    detail: str


class NotificationSender(Protocol):
    def post(self, url: str, body: str, headers: dict[str, str], timeout: float) -> PostResult:
        """POST `body` (JSON text); a 2xx is ok; never raises for the receiver's failures."""
        ...
