"""Dashboard pages: the rejected-events inbox with replay and dismiss, and signing in for the
buttons."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.domain.errors import Conflict, NotFound, ValidationError
from metrics_orchestrator.interfaces.http.auth import token_matches
from metrics_orchestrator.interfaces.http.guards import read_body
from metrics_orchestrator.interfaces.web.deps import ApiToken, Queries, Router
from metrics_orchestrator.interfaces.web.presenters import action_button
from metrics_orchestrator.interfaces.web.rendering import render, render_error
from metrics_orchestrator.interfaces.web.security import (
    check_button,
    is_signed_in,
    redirect_with_notice,
    sign_in,
    sign_out,
)

router = APIRouter(include_in_schema=False)

EVENTS_PAGE_SIZE = 50
MAX_FORM_BYTES = 8192
MAX_EVENT_ID = 2**63 - 1  # event_log.id is a bigint


@router.get("/ui/events", response_class=HTMLResponse)
def events_page(request: Request, queries: Queries, token: ApiToken) -> HTMLResponse:
    cursor = request.query_params.get("cursor") or None
    try:
        page = queries.list_events(
            status=EventStatus.REJECTED, limit=EVENTS_PAGE_SIZE, cursor=cursor
        )
    except ValidationError:
        return render_error(request, 422, "that page cursor is not one this dashboard made", token)
    context = {
        "title": "Rejected events",
        "events": page.events,
        "replay": action_button(is_signed_in(request, token)),
        "next_url": f"/ui/events?{urlencode({'cursor': page.next_cursor})}"
        if page.next_cursor
        else None,
    }
    return render(request, "events.html", context, token=token, active="/ui/events")


@router.get("/ui/events/{event_id:int}", response_class=HTMLResponse)
def event_page(request: Request, event_id: int, queries: Queries, token: ApiToken) -> HTMLResponse:
    """One event in full: where the inbox's excerpts link to."""
    try:
        if event_id > MAX_EVENT_ID:
            raise NotFound(f"unknown event {event_id}")
        event = queries.get_event(event_id)
    except NotFound:
        return render_error(request, 404, f"unknown event {event_id}", token)
    context = {"title": f"Event {event.id}", "event": event}
    return render(request, "event.html", context, token=token, active="/ui/events")


@router.post("/ui/events/replay")
async def replay(request: Request, event_router: Router, token: ApiToken) -> Response:
    check_button(request, token)
    event_key = (await _form(request)).get("event_key", "")
    try:
        routed = event_router.replay(event_key)
    except NotFound:
        return render_error(request, 404, f"unknown event {event_key!r}", token)
    except Conflict as exc:
        return _to_events(f"not replayed: {exc}", token)
    if routed.error and str(routed.status) == "rejected":
        return _to_events(f"replayed {event_key}: rejected again ({routed.error})", token)
    return _to_events(f"replayed {event_key}: {routed.status}", token)


@router.post("/ui/events/dismiss")
async def dismiss(request: Request, event_router: Router, token: ApiToken) -> Response:
    check_button(request, token)
    form = await _form(request)
    event_key = form.get("event_key", "")
    try:
        event_router.dismiss(event_key, form.get("reason", ""))
    except NotFound:
        return render_error(request, 404, f"unknown event {event_key!r}", token)
    except (Conflict, ValidationError) as exc:
        return _to_events(f"not dismissed: {exc}", token)
    return _to_events(f"dismissed {event_key}", token)


def _to_events(notice: str, token: str | None) -> RedirectResponse:
    return redirect_with_notice("/ui/events", notice, token)


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (small: one or two fields; 413 beyond)."""
    body = await read_body(request, MAX_FORM_BYTES)
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


@router.get("/ui/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, token: ApiToken) -> HTMLResponse:
    context = {"title": "Sign in", "next": _safe_next(request.query_params.get("next", "/"))}
    return render(request, "sign_in.html", context, token=token)


@router.post("/ui/sign-in")
async def sign_in_form(request: Request, token: ApiToken) -> Response:
    form = await _form(request)
    target = _safe_next(form.get("next", "/"))
    if token is None:
        return RedirectResponse(target, status_code=303)
    if not token_matches(token, form.get("token", "")):
        context = {"title": "Sign in", "next": target, "problem": "that is not the API token"}
        return render(request, "sign_in.html", context, token=token, status_code=401)
    response = RedirectResponse(target, status_code=303)
    sign_in(response, request, token)
    return response


@router.post("/ui/sign-out")
def sign_out_form() -> Response:
    response = RedirectResponse("/", status_code=303)
    sign_out(response)
    return response


def _safe_next(target: str) -> str:
    """Only a path on this site (no `//host` or scheme): no open redirect after sign-in."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
