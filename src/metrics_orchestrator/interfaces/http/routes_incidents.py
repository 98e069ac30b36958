"""Incidents, notification channels, deliveries and freshness (SPEC §9): one line per route."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from metrics_orchestrator.application.catalog_spec import MAX_KEY, NO_NUL, ChannelSpec
from metrics_orchestrator.domain.incidents import IncidentKind
from metrics_orchestrator.interfaces.http.dependencies import (
    AUTHENTICATED,
    IncidentsDep,
    NotificationsDep,
)
from metrics_orchestrator.interfaces.http.incident_models import (
    ChannelIn,
    ChannelOut,
    DeliveryOut,
    FreshnessBoardOut,
    IncidentDetailOut,
    IncidentPageOut,
    TestResultOut,
)
from metrics_orchestrator.interfaces.http.problems import problem_responses

router = APIRouter(responses=problem_responses(422, 503))

ChannelName = Annotated[
    str, Path(min_length=1, max_length=MAX_KEY, pattern=NO_NUL, description="The channel's name.")
]
PageSize = Annotated[int, Query(ge=1, le=500)]


@router.get("/incidents", tags=["incidents"], summary="Incidents, newest first")
def list_incidents(
    incidents: IncidentsDep,
    open: bool = False,
    kind: IncidentKind | None = None,
    subject: Annotated[str | None, Query(max_length=4000, pattern=NO_NUL)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: PageSize = 50,
) -> IncidentPageOut:
    page = incidents.page(open_only=open, kind=kind, subject=subject, before=before, limit=limit)
    return IncidentPageOut.of(page)


@router.get(
    "/incidents/{incident_id}",
    tags=["incidents"],
    summary="One incident, its occurrences (runs, events) and its notifications",
    responses=problem_responses(404),
)
def get_incident(
    incident_id: Annotated[int, Path(ge=1, le=2**62)], incidents: IncidentsDep
) -> IncidentDetailOut:
    return IncidentDetailOut.of_detail(incidents.detail(incident_id))


@router.get("/freshness", tags=["incidents"], summary="Every freshness objective, judged now")
def freshness(incidents: IncidentsDep) -> FreshnessBoardOut:
    return FreshnessBoardOut.of(incidents.freshness())


@router.get("/notifications/channels", tags=["incidents"], summary="Channels (never their secrets)")
def list_channels(notifications: NotificationsDep) -> list[ChannelOut]:
    return [ChannelOut.of(c) for c in notifications.channels()]


@router.put(
    "/notifications/channels/{name}",
    tags=["incidents"],
    summary="Create or replace a channel",
    description="`format` json (signed with `secret` when given: X-Signature-256) or slack; "
    "`kinds` and `metrics` (globs on metric codes) filter what it hears. A PUT replaces the "
    "channel: a secret left out means none.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401),
)
def put_channel(name: ChannelName, body: ChannelIn, notifications: NotificationsDep) -> ChannelOut:
    spec = ChannelSpec.checked({"name": name, **body.model_dump(exclude_none=True)})
    notifications.configure([spec.to_settings()])
    return next(ChannelOut.of(c) for c in notifications.channels() if c.name == name)


@router.delete(
    "/notifications/channels/{name}",
    tags=["incidents"],
    summary="Disable a channel (its deliveries stay listed)",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404),
    status_code=204,
)
def disable_channel(name: ChannelName, notifications: NotificationsDep) -> None:
    notifications.disable(name)


@router.post(
    "/notifications/channels/{name}/test",
    tags=["incidents"],
    summary="Post a test notification now and say what the receiver answered",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404),
)
def test_channel(name: ChannelName, notifications: NotificationsDep) -> TestResultOut:
    return TestResultOut.of(notifications.test(name))


@router.get(
    "/notifications/deliveries", tags=["incidents"], summary="Notification deliveries, newest first"
)
def list_deliveries(
    notifications: NotificationsDep,
    state: Literal["pending", "delivered", "undeliverable"] | None = None,
    limit: PageSize = 100,
) -> list[DeliveryOut]:
    return [DeliveryOut.of(d) for d in notifications.deliveries(state=state, limit=limit)]
