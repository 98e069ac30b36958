"""How dashboard routes receive the application services: the API's own providers.

The same narrow dependencies as the JSON API (interfaces/http/dependencies.py), under the
names the dashboard's routes use, plus the API token the buttons need.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from metrics_orchestrator.application.incidents import IncidentQueries
from metrics_orchestrator.application.notifier import NotificationService
from metrics_orchestrator.interfaces.http.dependencies import (
    CatalogDep,
    ClockDep,
    IntakeDep,
    OutputsDep,
    QueriesDep,
    RouterDep,
    RunLogsDep,
    RunsDep,
)


def api_token(request: Request) -> str | None:
    """The configured API token (None or empty: buttons need no sign-in)."""
    token: str | None = request.app.state.api_token
    return token or None


def incident_queries(request: Request) -> IncidentQueries:
    """Incidents and freshness as people read them (SPEC §9); set by create_app_with_dashboard."""
    queries: IncidentQueries = request.app.state.incidents
    return queries


def notification_service(request: Request) -> NotificationService:
    service: NotificationService = request.app.state.notifications
    return service


Runs = RunsDep
Queries = QueriesDep
Orchestration = IntakeDep
Catalog = CatalogDep
Router = RouterDep
Outputs = OutputsDep
RunLogs = RunLogsDep
ApiToken = Annotated[str | None, Depends(api_token)]
Incidents = Annotated[IncidentQueries, Depends(incident_queries)]
Notifications = Annotated[NotificationService, Depends(notification_service)]

__all__ = [
    "ApiToken",
    "Catalog",
    "ClockDep",
    "Incidents",
    "Notifications",
    "Orchestration",
    "Outputs",
    "Queries",
    "Router",
    "RunLogs",
    "Runs",
]
