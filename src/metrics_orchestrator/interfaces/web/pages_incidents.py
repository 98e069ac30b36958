"""Dashboard pages about incidents and notifications (SPEC §9): the incidents list, one
incident with its occurrences and notifications, the channels with "Send test", and the way
from an event key (an incident's subject) to the event's page."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from metrics_orchestrator.domain.errors import NotFound
from metrics_orchestrator.domain.incidents import IncidentKind
from metrics_orchestrator.interfaces.web.deps import (
    ApiToken,
    ClockDep,
    Incidents,
    Notifications,
    Queries,
)
from metrics_orchestrator.interfaces.web.incident_views import (
    DELIVERY_CLASSES,
    KIND_LABELS,
    incident_rows,
    occurrence_link,
    subject_href,
)
from metrics_orchestrator.interfaces.web.presenters import action_button
from metrics_orchestrator.interfaces.web.rendering import render, render_error
from metrics_orchestrator.interfaces.web.security import (
    check_button,
    is_signed_in,
    redirect_with_notice,
)

router = APIRouter(include_in_schema=False)

INCIDENTS_PAGE_SIZE = 50
OCCURRENCES_SHOWN = 50
MAX_INCIDENT_ID = 2**63 - 1  # incidents.id is a bigint
# an event key or a subject from a URL: as long as the API accepts (routes_events.EventKey)
MAX_KEY_LENGTH = 4000
SHOW = ("open", "all")
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # as migration 007 checks it


@router.get("/ui/incidents", response_class=HTMLResponse)
def incidents_page(
    request: Request, incidents: Incidents, clock: ClockDep, token: ApiToken
) -> HTMLResponse:
    """Newest first, open ones by default; filter by kind or subject; keyset pages (`before`)."""
    filters = {k: request.query_params.get(k, "").strip() for k in ("show", "kind", "subject")}
    filters["show"] = filters["show"] or "open"
    before_text = request.query_params.get("before", "").strip()
    problem = _filter_problem(filters, before_text)
    if problem:
        return render_error(request, 422, problem, token)
    page = incidents.page(
        open_only=filters["show"] == "open",
        kind=IncidentKind(filters["kind"]) if filters["kind"] else None,
        subject=filters["subject"] or None,
        before=int(before_text) if before_text else None,
        limit=INCIDENTS_PAGE_SIZE,
    )
    query = {k: v for k, v in filters.items() if v}
    context = {
        "title": "Incidents",
        "rows": incident_rows(page.incidents),
        "filters": filters,
        "kinds": list(KIND_LABELS.items()),
        "next_url": f"/ui/incidents?{urlencode({**query, 'before': page.next_before})}"
        if page.next_before
        else None,
        "newest_url": f"/ui/incidents?{urlencode(query)}" if before_text else None,
        "now": clock.now(),
    }
    return render(request, "incidents.html", context, token=token, active="/ui/incidents")


def _filter_problem(filters: dict[str, str], before: str) -> str:
    """Why the list cannot be served as asked (a 422 page says it), or nothing."""
    if filters["show"] not in SHOW:
        return f"show must be open or all, not {filters['show']!r}"
    if filters["kind"] and filters["kind"] not in set(IncidentKind):
        known = ", ".join(IncidentKind)
        return f"unknown incident kind {filters['kind']!r} (one of {known})"
    if not _usable_text(filters["subject"], allow_empty=True):
        return "subject is too long or holds a NUL character"
    if before and not (before.isdigit() and 0 < int(before) <= MAX_INCIDENT_ID):
        return f"before must be an incident id, not {before!r}"
    return ""


def _usable_text(text: str, *, allow_empty: bool = False) -> bool:
    """Text the database can compare (no NUL) and an index can hold."""
    return (allow_empty or bool(text)) and len(text) <= MAX_KEY_LENGTH and "\x00" not in text


@router.get("/ui/incidents/{incident_id:int}", response_class=HTMLResponse)
def incident_page(
    request: Request, incident_id: int, incidents: Incidents, clock: ClockDep, token: ApiToken
) -> HTMLResponse:
    unknown = f"unknown incident {incident_id}"
    if not 0 < incident_id <= MAX_INCIDENT_ID:
        return render_error(request, 404, unknown, token)
    try:
        detail = incidents.detail(incident_id, occurrences=OCCURRENCES_SHOWN)
    except NotFound:
        return render_error(request, 404, unknown, token)
    incident = detail.incident
    context = {
        "title": f"Incident {incident.id}",
        "incident": incident,
        "kind_label": KIND_LABELS[incident.kind],
        "subject_href": subject_href(incident.kind, incident.subject),
        "occurrences": [(o, occurrence_link(o)) for o in detail.occurrences],
        "deliveries": detail.deliveries,
        "delivery_classes": DELIVERY_CLASSES,
        "now": clock.now(),
    }
    return render(request, "incident.html", context, token=token, active="/ui/incidents")


@router.get("/ui/channels", response_class=HTMLResponse)
def channels_page(
    request: Request, notifications: Notifications, clock: ClockDep, token: ApiToken
) -> HTMLResponse:
    context = {
        "title": "Notification channels",
        "channels": notifications.channels(),
        "kind_labels": KIND_LABELS,
        "delivery_classes": DELIVERY_CLASSES,
        "send_test": action_button(is_signed_in(request, token)),
        "now": clock.now(),
    }
    return render(request, "channels.html", context, token=token, active="/ui/incidents")


@router.post("/ui/channels/{name}/test")
def send_test(
    request: Request, name: str, notifications: Notifications, token: ApiToken
) -> Response:
    """Post a test notification to the channel now (as `notify test`) and say how it went."""
    check_button(request, token)
    unknown = f"unknown channel {name!r}"
    if not CHANNEL_NAME.fullmatch(name):
        return render_error(request, 404, unknown, token)
    try:
        result = notifications.test(name)
    except NotFound:
        return render_error(request, 404, unknown, token)
    outcome = "delivered" if result.ok else "not delivered"
    return redirect_with_notice(
        "/ui/channels", f"test notification to {name}: {outcome} ({result.detail})", token
    )


@router.get("/ui/events/by-key")
def event_by_key(request: Request, queries: Queries, token: ApiToken) -> Response:
    """An event-rejected incident knows its event by key: this finds the event's page."""
    key = request.query_params.get("key", "")
    if not _usable_text(key):
        return render_error(request, 404, "unknown event", token)
    try:
        event = queries.event_with_key(key)
    except NotFound:
        return render_error(request, 404, f"unknown event {key!r}", token)
    return RedirectResponse(f"/ui/events/{event.id}", status_code=303)
