"""What routes receive: the container the app was created with, and shared parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from metrics_orchestrator.application.queries import MAX_PAGE_SIZE
from metrics_orchestrator.bootstrap import Container
from metrics_orchestrator.interfaces.http.auth import require_token
from metrics_orchestrator.interfaces.http.models import NO_NUL

DEFAULT_PAGE_SIZE = 50


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(container_of)]
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
