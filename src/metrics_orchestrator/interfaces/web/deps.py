"""How dashboard routes receive the application services: the API's own providers.

The same narrow dependencies as the JSON API (interfaces/http/dependencies.py), under the
names the dashboard's routes use, plus the API token the buttons need.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from metrics_orchestrator.interfaces.http.dependencies import (
    CatalogDep,
    ClockDep,
    IntakeDep,
    OutputsDep,
    QueriesDep,
    RouterDep,
    RunsDep,
)


def api_token(request: Request) -> str | None:
    """The configured API token (None or empty: buttons need no sign-in)."""
    token: str | None = request.app.state.api_token
    return token or None


Runs = RunsDep
Queries = QueriesDep
Orchestration = IntakeDep
Catalog = CatalogDep
Router = RouterDep
Outputs = OutputsDep
ApiToken = Annotated[str | None, Depends(api_token)]

__all__ = [
    "ApiToken",
    "Catalog",
    "ClockDep",
    "Orchestration",
    "Outputs",
    "Queries",
    "Router",
    "Runs",
]
