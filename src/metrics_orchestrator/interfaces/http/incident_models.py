"""Response and request bodies of incidents, channels and freshness (SPEC §9)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode
from uuid import UUID

from pydantic import BaseModel, Field

from metrics_orchestrator.application.catalog_spec import (
    MAX_GLOBS,
    MAX_SECRET,
    MAX_URL,
    NO_NUL,
    ChannelSpec,
    Glob,
    IncidentKindName,
)
from metrics_orchestrator.application.incidents import FreshnessBoard, IncidentDetail
from metrics_orchestrator.application.ports.incidents import (
    ChannelView,
    DeliveryView,
    IncidentPage,
    PostResult,
    RecordedOccurrence,
)
from metrics_orchestrator.domain.freshness import Freshness
from metrics_orchestrator.domain.incidents import Incident
from metrics_orchestrator.interfaces.http.models import FreshnessOut


class IncidentOut(BaseModel):
    id: int
    kind: str
    subject: str
    summary: str
    count: int = Field(description="How often its cause happened while it was open.")
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    open: bool
    url: str = Field(description="Its page on the dashboard.")

    @classmethod
    def of(cls, incident: Incident) -> IncidentOut:
        return cls(
            id=incident.id,
            kind=str(incident.kind),
            subject=incident.subject,
            summary=incident.summary,
            count=incident.count,
            opened_at=incident.opened_at,
            last_seen_at=incident.last_seen_at,
            resolved_at=incident.resolved_at,
            resolution=incident.resolution,
            open=incident.open,
            url=f"/ui/incidents/{incident.id}",
        )


class IncidentPageOut(BaseModel):
    incidents: list[IncidentOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")

    @classmethod
    def of(cls, page: IncidentPage) -> IncidentPageOut:
        return cls(
            incidents=[IncidentOut.of(i) for i in page.incidents], next_before=page.next_before
        )


class OccurrenceOut(BaseModel):
    seq: int
    occurred_at: datetime
    run_id: UUID | None
    event_key: str | None
    detail: str
    link: str | None = Field(description="The run's or the event's dashboard page.")

    @classmethod
    def of(cls, occurrence: RecordedOccurrence) -> OccurrenceOut:
        link = None
        if occurrence.run_id is not None:
            link = f"/ui/runs/{occurrence.run_id}"
        elif occurrence.event_key is not None:
            # the dashboard shows an event by its log id; by key it redirects there
            link = f"/ui/events/by-key?{urlencode({'key': occurrence.event_key})}"
        return cls(
            seq=occurrence.seq,
            occurred_at=occurrence.occurred_at,
            run_id=occurrence.run_id,
            event_key=occurrence.event_key,
            detail=occurrence.detail,
            link=link,
        )


class DeliveryOut(BaseModel):
    id: UUID = Field(description="The delivery id receivers see, stable across retries.")
    channel: str
    incident_id: int | None
    change: str
    state: Literal["pending", "delivered", "undeliverable"]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_result: str | None

    @classmethod
    def of(cls, delivery: DeliveryView) -> DeliveryOut:
        return cls.model_validate(delivery, from_attributes=True)


class IncidentDetailOut(IncidentOut):
    occurrences: list[OccurrenceOut]
    deliveries: list[DeliveryOut]

    @classmethod
    def of_detail(cls, detail: IncidentDetail) -> IncidentDetailOut:
        return cls(
            **dict(IncidentOut.of(detail.incident)),
            occurrences=[OccurrenceOut.of(o) for o in detail.occurrences],
            deliveries=[DeliveryOut.of(d) for d in detail.deliveries],
        )


class ChannelIn(BaseModel):
    """A channel as PUT: every field but the name (which the path gives). A PUT replaces the
    channel: a secret left out means no secret."""

    model_config = ChannelSpec.model_config
    url: Annotated[str, Field(min_length=1, max_length=MAX_URL)]
    format: Literal["json", "slack"] = "json"
    secret: Annotated[
        str | None, Field(default=None, min_length=1, max_length=MAX_SECRET, pattern=NO_NUL)
    ] = Field(default=None, repr=False)
    kinds: list[IncidentKindName] | None = None
    metrics: Annotated[list[Glob], Field(max_length=MAX_GLOBS)] | None = None
    enabled: bool = True


class ChannelOut(BaseModel):
    name: str
    url: str
    format: str
    has_secret: bool = Field(description="Whether bodies are signed; the secret is never shown.")
    kinds: list[str] | None
    metrics: list[str] | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    pending: int
    undeliverable: int
    last_attempt_at: datetime | None
    last_state: str | None
    last_result: str | None

    @classmethod
    def of(cls, channel: ChannelView) -> ChannelOut:
        return cls(
            name=channel.name,
            url=channel.url,
            format=str(channel.format),
            has_secret=channel.has_secret,
            kinds=None if channel.kinds is None else [str(k) for k in channel.kinds],
            metrics=None if channel.metrics is None else list(channel.metrics),
            enabled=channel.enabled,
            created_at=channel.created_at,
            updated_at=channel.updated_at,
            pending=channel.pending,
            undeliverable=channel.undeliverable,
            last_attempt_at=channel.last_attempt_at,
            last_state=channel.last_state,
            last_result=channel.last_result,
        )


class TestResultOut(BaseModel):
    ok: bool
    detail: str = Field(description="What the receiver answered (e.g. `HTTP 200`), or why not.")

    @classmethod
    def of(cls, result: PostResult) -> TestResultOut:
        return cls(ok=result.ok, detail=result.detail)


class FreshnessBoardOut(BaseModel):
    datasets: dict[str, FreshnessOut]
    metrics: dict[str, FreshnessOut]

    @classmethod
    def of(cls, board: FreshnessBoard) -> FreshnessBoardOut:
        return cls(datasets=_shown(board.datasets), metrics=_shown(board.metrics))


def _shown(judged: dict[str, Freshness]) -> dict[str, FreshnessOut]:
    return {key: FreshnessOut.from_freshness(value) for key, value in judged.items()}
