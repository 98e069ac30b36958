"""What routes receive: each the one service it uses, and shared parameters.

`create_app` puts the services on `app.state`; each dependency below hands a route one of
them, so a route names what it needs and nothing else (no container to reach through).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.health import HealthService
from metrics_orchestrator.application.incidents import IncidentQueries
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.notifier import NotificationService
from metrics_orchestrator.application.outputs import OutputService
from metrics_orchestrator.application.pagination import MAX_PAGE_SIZE
from metrics_orchestrator.application.ports import Clock
from metrics_orchestrator.application.queries import QueryService
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.application.run_logs import RunLogs
from metrics_orchestrator.application.runs import RunOperations
from metrics_orchestrator.application.telemetry import Exposition
from metrics_orchestrator.interfaces.http.auth import require_token
from metrics_orchestrator.interfaces.http.models import NO_NUL

DEFAULT_PAGE_SIZE = 50


def _from_state(name: str) -> Callable[[Request], Any]:
    """A dependency returning the service `create_app` stored as `app.state.<name>`."""

    def provide(request: Request) -> Any:
        return getattr(request.app.state, name)

    provide.__name__ = f"{name}_service"
    return provide


CatalogDep = Annotated[CatalogService, Depends(_from_state("catalog"))]
IntakeDep = Annotated[IntakeService, Depends(_from_state("intake"))]
RunsDep = Annotated[RunOperations, Depends(_from_state("runs"))]
RouterDep = Annotated[EventRouter, Depends(_from_state("router"))]
QueriesDep = Annotated[QueryService, Depends(_from_state("queries"))]
HealthDep = Annotated[HealthService, Depends(_from_state("health"))]
ExpositionDep = Annotated[Exposition, Depends(_from_state("exposition"))]
ClockDep = Annotated[Clock, Depends(_from_state("clock"))]
OutputsDep = Annotated[OutputService, Depends(_from_state("outputs"))]
RunLogsDep = Annotated[RunLogs, Depends(_from_state("run_logs"))]
IncidentsDep = Annotated[IncidentQueries, Depends(_from_state("incidents"))]
NotificationsDep = Annotated[NotificationService, Depends(_from_state("notifications"))]

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
