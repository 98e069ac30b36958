"""What routes receive: each the one service it uses, and shared parameters.

`create_app` puts the services on `app.state`; each dependency below hands a route one of
them, so a route names what it needs and nothing else (no container to reach through).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.health import HealthService
from metrics_orchestrator.application.intake import Orchestrator
from metrics_orchestrator.application.outputs import OutputService
from metrics_orchestrator.application.pagination import MAX_PAGE_SIZE
from metrics_orchestrator.application.ports import Clock
from metrics_orchestrator.application.queries import QueryService
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.application.runs import RunOperations
from metrics_orchestrator.application.telemetry import Exposition
from metrics_orchestrator.interfaces.http.auth import require_token
from metrics_orchestrator.interfaces.http.models import NO_NUL

DEFAULT_PAGE_SIZE = 50


def catalog_service(request: Request) -> CatalogService:
    service: CatalogService = request.app.state.catalog
    return service


def orchestrator(request: Request) -> Orchestrator:
    service: Orchestrator = request.app.state.orchestrator
    return service


def run_operations(request: Request) -> RunOperations:
    service: RunOperations = request.app.state.runs
    return service


def event_router(request: Request) -> EventRouter:
    service: EventRouter = request.app.state.router
    return service


def query_service(request: Request) -> QueryService:
    service: QueryService = request.app.state.queries
    return service


def health_service(request: Request) -> HealthService:
    service: HealthService = request.app.state.health
    return service


def output_service(request: Request) -> OutputService:
    service: OutputService = request.app.state.outputs
    return service


def clock(request: Request) -> Clock:
    service: Clock = request.app.state.clock
    return service


def exposition(request: Request) -> Exposition:
    service: Exposition = request.app.state.exposition
    return service


CatalogDep = Annotated[CatalogService, Depends(catalog_service)]
OrchestratorDep = Annotated[Orchestrator, Depends(orchestrator)]
RunsDep = Annotated[RunOperations, Depends(run_operations)]
RouterDep = Annotated[EventRouter, Depends(event_router)]
QueriesDep = Annotated[QueryService, Depends(query_service)]
HealthDep = Annotated[HealthService, Depends(health_service)]
ExpositionDep = Annotated[Exposition, Depends(exposition)]
ClockDep = Annotated[Clock, Depends(clock)]
OutputsDep = Annotated[OutputService, Depends(output_service)]

Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size (max {MAX_PAGE_SIZE}).")
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1000,
        pattern=NO_NUL,
        description="Opaque: the `next_cursor` of the previous page.",
    ),
]
# Mutating routes list this in `dependencies=`.
AUTHENTICATED = [Depends(require_token)]
