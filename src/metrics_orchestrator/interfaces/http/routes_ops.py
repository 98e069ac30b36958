"""Operations endpoints: liveness, readiness and Prometheus metrics (SPEC §6.3, §6.4)."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Response
from psycopg.conninfo import make_conninfo
from starlette.concurrency import run_in_threadpool

from metrics_orchestrator.infrastructure.postgres.migrations import pending_migrations
from metrics_orchestrator.interfaces.http.dependencies import ContainerDep
from metrics_orchestrator.interfaces.http.models import HealthOut, ReadyOut
from metrics_orchestrator.interfaces.http.problems import ApiProblem, problem_responses

router = APIRouter(tags=["operations"])

# A readiness probe must answer quickly, whatever state the database is in.
READINESS_CONNECT_TIMEOUT_SECONDS = 3


@router.get("/health", summary="Liveness: the process answers")
def health() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/health/ready",
    summary="Readiness: the database is reachable and every migration is applied",
    responses=problem_responses(503),
)
async def ready(container: ContainerDep) -> ReadyOut:
    url = make_conninfo(container.database_url, connect_timeout=READINESS_CONNECT_TIMEOUT_SECONDS)
    try:
        pending = await run_in_threadpool(pending_migrations, url)
    except psycopg.Error as exc:
        raise ApiProblem(503, "not-ready", f"database unreachable: {_first_line(exc)}") from None
    if pending:
        names = [f"{m.version}_{m.name}" for m in pending]
        raise ApiProblem(
            503,
            "not-ready",
            f"migrations pending: {', '.join(names)}; run `metrics-orchestrator migrate`",
            pending_migrations=names,
        )
    return ReadyOut(status="ready", database="reachable", pending_migrations=[])


@router.get(
    "/prometheus",
    summary="Prometheus metrics (text exposition)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def prometheus(container: ContainerDep) -> Response:
    body, content_type = container.telemetry.render()
    return Response(content=body, media_type=content_type)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
