"""How dashboard routes receive the application services: one small dependency per service.

Each reads `request.app.state.container` here and nowhere else, so replacing the container
with narrow providers (interfaces/http/dependencies.py) is a change to this module only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.intake import Orchestrator
from metrics_orchestrator.application.ports import Clock
from metrics_orchestrator.application.queries import QueryService
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.application.runs import RunOperations
from metrics_orchestrator.bootstrap import Container


def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def runs_service(request: Request) -> RunOperations:
    return _container(request).runs


def query_service(request: Request) -> QueryService:
    return _container(request).queries


def orchestrator_service(request: Request) -> Orchestrator:
    return _container(request).orchestrator


def catalog_service(request: Request) -> CatalogService:
    return _container(request).catalog


def event_router(request: Request) -> EventRouter:
    return _container(request).router


def clock(request: Request) -> Clock:
    return _container(request).clock


def api_token(request: Request) -> str | None:
    """The configured API token (None or empty: buttons need no sign-in)."""
    secret = _container(request).settings.api_token
    token = secret.get_secret_value() if secret is not None else None
    return token or None


Runs = Annotated[RunOperations, Depends(runs_service)]
Queries = Annotated[QueryService, Depends(query_service)]
Orchestration = Annotated[Orchestrator, Depends(orchestrator_service)]
Catalog = Annotated[CatalogService, Depends(catalog_service)]
Router = Annotated[EventRouter, Depends(event_router)]
ClockDep = Annotated[Clock, Depends(clock)]
ApiToken = Annotated[str | None, Depends(api_token)]
