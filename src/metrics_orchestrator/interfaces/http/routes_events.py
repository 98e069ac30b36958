"""Events (SPEC §5.8, §6.3): HTTP intake of projection updates, the event log and replay."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, TypeVar
from urllib.parse import unquote

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool

from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.router import RoutedEvent
from metrics_orchestrator.domain.errors import NotFound
from metrics_orchestrator.domain.events import PROJECTION_UPDATE, body_digest_key, event_text
from metrics_orchestrator.interfaces.http.dependencies import (
    AUTHENTICATED,
    DEFAULT_PAGE_SIZE,
    Cursor,
    Limit,
    QueriesDep,
    RouterDep,
)
from metrics_orchestrator.interfaces.http.guards import MAX_REQUEST_BODY, read_body
from metrics_orchestrator.interfaces.http.models import (
    NO_NUL,
    DismissIn,
    EventOut,
    EventPage,
    EventResultOut,
    ProjectionUpdateIn,
)
from metrics_orchestrator.interfaces.http.problems import ApiProblem, problem_responses

router = APIRouter(responses=problem_responses(422, 503))
T = TypeVar("T")

# Bodies up to MAX_REQUEST_BODY reach intake, which itself rejects (and records) anything over
# MAX_BODY_BYTES; beyond it the request is refused before it is read any further.
EVENT_REJECTED = "event-rejected"
EventKey = Annotated[
    str, Path(min_length=1, max_length=4000, pattern=NO_NUL, description="The event's key.")
]

_PROJECTION_UPDATE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": ProjectionUpdateIn.model_json_schema(ref_template="#/components/schemas/")
        }
    },
}


@router.post(
    "/events/projection-update",
    tags=["events"],
    summary="Receive a projection update, exactly as from the queue",
    description="The raw body goes through the same intake as the SQS consumer (SPEC §4.1, "
    "§5.1): raw or SNS-enveloped JSON, recorded in the event log. A rejected event answers "
    "422 with its `event_key`; it is listed by GET /events and can be replayed.",
    dependencies=AUTHENTICATED,
    openapi_extra={"requestBody": _PROJECTION_UPDATE_BODY},
    responses=problem_responses(401, 413),
)
async def receive_projection_update(request: Request, router: RouterDep) -> EventResultOut:
    # The bytes go to the one decoding boundary as they are: whatever they hold, the router
    # records one event_log row, and a rejection is a 422 (worker events included: they
    # belong on the run-feedback queue).
    body = await read_body(request, MAX_REQUEST_BODY)
    routed = await run_in_threadpool(
        partial(router.handle, body, source="http", only=PROJECTION_UPDATE)
    )
    return _result_or_problem(routed, _event_key(routed, body))


@router.get("/events", tags=["events"], summary="The event log, newest first")
def list_events(
    queries: QueriesDep,
    status: EventStatus | None = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> EventPage:
    page = queries.list_events(status=status, limit=limit, cursor=cursor)
    return EventPage(
        items=[EventOut.model_validate(e) for e in page.events], next_cursor=page.next_cursor
    )


@router.get(
    "/events/{event_key:path}",
    tags=["events"],
    summary="One event of the log, its raw body whole",
    description="The newest entry with this key (a page of `GET /events` holds only the start "
    "of each raw body). 404 when the log has none.",
    responses=problem_responses(404),
)
def get_event(event_key: EventKey, queries: QueriesDep) -> EventOut:
    event, _ = _by_key(event_key, queries.event_with_key)
    return EventOut.model_validate(event)


@router.post(
    "/events/{event_key:path}/replay",
    tags=["events"],
    summary="Re-run a rejected event through intake",
    description="For example once the catalog knows the event's dataset. The key may be sent "
    "raw (it contains ':' and '/') or percent-encoded.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404, 409),
)
def replay_event(event_key: EventKey, router: RouterDep) -> EventResultOut:
    routed, event_key = _by_key(event_key, router.replay)
    key = routed.intake.event_key if routed.intake is not None else event_key
    return _result_or_problem(routed, key)


@router.post(
    "/events/{event_key:path}/dismiss",
    tags=["events"],
    summary="Take a rejected event that can never be valid out of the inbox",
    description="The entry stays in the event log with status `dismissed` and the reason "
    "given (GET /events?status=dismissed). Only a rejected event awaiting replay can be "
    "dismissed. The key may be sent raw or percent-encoded, as for replay.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404, 409),
)
def dismiss_event(event_key: EventKey, body: DismissIn, router: RouterDep) -> EventOut:
    dismissed, _ = _by_key(event_key, lambda key: router.dismiss(key, body.reason))
    return EventOut.model_validate(dismissed)


def _by_key(event_key: str, act: Callable[[str], T]) -> tuple[T, str]:
    """`act` on the event with this key, as sent or, when none has it, percent-decoded once (a
    client that encoded the key twice, as some proxies re-encode '%', still finds it); the
    result and the key that found it. NotFound when neither does."""
    try:
        return act(event_key), event_key
    except NotFound:
        decoded = unquote(event_key)
        if decoded == event_key:
            raise
        return act(decoded), decoded


def _event_key(routed: RoutedEvent, body: bytes) -> str:
    if routed.event_key is not None:
        return routed.event_key
    return body_digest_key(routed.event_type, event_text(body))


def _result_or_problem(routed: RoutedEvent, event_key: str) -> EventResultOut:
    """The outcome of intake; a rejection is a 422 problem carrying the event's key."""
    if routed.status is EventStatus.REJECTED:
        raise ApiProblem(
            422, EVENT_REJECTED, f"event rejected: {routed.error}", event_key=event_key
        )
    intake = routed.intake
    return EventResultOut(
        event_type=routed.event_type,
        status=routed.status,
        event_key=event_key,
        error=routed.error,
        update_id=intake.update_id if intake else None,
        queued_runs=list(intake.queued_runs) if intake else [],
        pending_runs=list(intake.pending_runs) if intake else [],
    )
