"""Dashboard pages: the rejected-events inbox with replay and dismiss, and signing in for the
buttons."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.domain.errors import Conflict, NotFound, ValidationError
from metrics_orchestrator.interfaces.http.auth import token_matches
from metrics_orchestrator.interfaces.web.deps import ApiToken, Queries, Router
from metrics_orchestrator.interfaces.web.presenters import action_button
from metrics_orchestrator.interfaces.web.rendering import render, render_error
from metrics_orchestrator.interfaces.web.security import (
    COOKIE_MAX_AGE,
    TOKEN_COOKIE,
    check_button,
    check_same_origin,
    is_signed_in,
)

router = APIRouter(include_in_schema=False)

EVENTS_PAGE_SIZE = 50
MAX_FORM_BYTES = 8192


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


@router.post("/ui/events/replay")
async def replay(request: Request, event_router: Router, token: ApiToken) -> Response:
    check_button(request, token)
    event_key = (await _form(request)).get("event_key", "")
    try:
        routed = event_router.replay(event_key)
    except NotFound:
        return render_error(request, 404, f"unknown event {event_key!r}", token)
    except Conflict as exc:
        return _to_events(f"not replayed: {exc}")
    if routed.error and str(routed.status) == "rejected":
        return _to_events(f"replayed {event_key}: rejected again ({routed.error})")
    return _to_events(f"replayed {event_key}: {routed.status}")


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
        return _to_events(f"not dismissed: {exc}")
    return _to_events(f"dismissed {event_key}")


def _to_events(notice: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/events?notice={quote(notice)}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (small: one or two fields)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


@router.get("/ui/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, token: ApiToken) -> HTMLResponse:
    context = {"title": "Sign in", "next": _safe_next(request.query_params.get("next", "/"))}
    return render(request, "sign_in.html", context, token=token)


@router.post("/ui/sign-in")
async def sign_in(request: Request, token: ApiToken) -> Response:
    check_same_origin(request)
    form = await _form(request)
    target = _safe_next(form.get("next", "/"))
    if token is None:
        return RedirectResponse(target, status_code=303)
    if not token_matches(token, form.get("token", "")):
        context = {"title": "Sign in", "next": target, "problem": "that is not the API token"}
        return render(request, "sign_in.html", context, token=token, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/ui/sign-out")
def sign_out(request: Request) -> Response:
    check_same_origin(request)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only a path on this site (no `//host` or scheme): no open redirect after sign-in."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
