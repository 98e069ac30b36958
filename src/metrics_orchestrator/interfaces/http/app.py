"""The FastAPI application (SPEC §6.3). Everything it serves comes from the container.

The dashboard mounts itself onto it (interfaces/web/app.py); this module does not know it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response

from metrics_orchestrator import __version__
from metrics_orchestrator.bootstrap import Container
from metrics_orchestrator.domain import log_events
from metrics_orchestrator.interfaces.http import (
    routes_catalog,
    routes_events,
    routes_incidents,
    routes_ops,
    routes_runs,
)
from metrics_orchestrator.interfaces.http.guards import (
    HOST_CHECK_EXEMPT,
    UNSAFE_METHODS,
    RequestGuard,
    TrustedOrigins,
)
from metrics_orchestrator.interfaces.http.problems import (
    PROBLEM_MEDIA_TYPE,
    install_problem_handlers,
)

DESCRIPTION = """\
Reactive control plane for metric computations: the catalog, runs and their lineage, the
event log, incidents and notifications, and operations. Errors are RFC 9457
`application/problem+json`. When the server has `API_TOKEN` set, every POST, PUT, PATCH and
DELETE needs `Authorization: Bearer <token>`. A request body is JSON (`Content-Type:
application/json`; 415 otherwise; a POST or DELETE without a body needs none), at most 1 MiB
(413); a request from a browser page must come from this service's own origin (403), and the
Host must be one this service is reached by (421; see `PUBLIC_URL`).
"""

TAGS = [
    {"name": "metrics", "description": "Metrics, their readiness and manual runs."},
    {"name": "datasets", "description": "Datasets, series, and the impact of a new version."},
    {"name": "runs", "description": "Run lifecycle: detail, cancel, retry."},
    {"name": "events", "description": "Projection-update intake, the event log, replay."},
    {"name": "operations", "description": "Health, readiness and Prometheus metrics."},
    {
        "name": "incidents",
        "description": "Incidents, freshness objectives and notification channels (SPEC §9).",
    },
]


class MetricsOrchestratorApi(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = _with_problem_media_type(super().openapi())
        return self.openapi_schema


def create_app(container: Container) -> FastAPI:
    app = MetricsOrchestratorApi(
        title="metrics-orchestrator",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url=None,  # served by the dashboard, from vendored assets (works offline)
        redoc_url=None,
    )
    _provide(app, container)
    settings = container.settings
    # Added before the access log, so the log (outermost) records refused requests too.
    app.add_middleware(
        RequestGuard, trusted=TrustedOrigins.of(settings.http_host, settings.public_url)
    )
    app.middleware("http")(log_request)
    install_problem_handlers(app)
    for module in (routes_ops, routes_catalog, routes_runs, routes_events, routes_incidents):
        app.include_router(module.router)
    return app


def _provide(app: FastAPI, container: Container) -> None:
    """The services the routes depend on (interfaces/http/dependencies.py), one by one."""
    state = app.state
    state.catalog = container.catalog
    state.intake = container.intake
    state.runs = container.runs
    state.router = container.router
    state.queries = container.queries
    state.health = container.health
    state.exposition = container.telemetry
    state.clock = container.clock
    state.outputs = container.outputs
    state.run_logs = container.run_logs
    state.incidents = container.incidents
    state.notifications = container.notifications
    token = container.settings.api_token
    state.api_token = token.get_secret_value() if token is not None else None


access_log = structlog.get_logger("metrics_orchestrator.http.access")


async def log_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """One INFO line per request: method, path, status, duration and client.

    Deliberately no headers (Authorization carries the API token) and no bodies.
    """
    started = time.perf_counter()
    status = 500  # what the client gets if the handler raises past the problem handlers
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        access_log.info(
            log_events.ON_HTTP_REQUEST,
            message=f"{request.method} {request.url.path} {status}",
            method=request.method,
            path=request.url.path,
            query=request.url.query or None,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            client=request.client.host if request.client else None,
        )


def _with_problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Error responses are documented as application/problem+json, which is what they are,
    with the statuses the request guards answer before any route (interfaces/http/guards.py)."""
    for path, path_item in schema.get("paths", {}).items():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            for status in _guard_statuses(path, method):
                responses.setdefault(str(status), _problem(GUARD_DESCRIPTIONS[status]))
            for status, response in responses.items():
                content = response.get("content", {})
                if status[:1] in {"4", "5"} and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    return schema


GUARD_DESCRIPTIONS = {
    403: "Sent from a browser page of another site (Origin, Referer or Sec-Fetch-Site).",
    413: "Request body too large.",
    415: "The request body is not JSON (`Content-Type: application/json`).",
    421: "The Host is not one this service is reached by (see PUBLIC_URL).",
}


def _guard_statuses(path: str, method: str) -> list[int]:
    statuses = [] if path in HOST_CHECK_EXEMPT else [421]
    if method.upper() in UNSAFE_METHODS:
        statuses += [403, 413, 415]
    return statuses


def _problem(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}
