"""Operations endpoints: liveness, readiness and Prometheus metrics (SPEC §6.3, §6.4)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from metrics_orchestrator.interfaces.http.dependencies import ExpositionDep, HealthDep
from metrics_orchestrator.interfaces.http.models import HealthOut, ReadyOut
from metrics_orchestrator.interfaces.http.problems import ApiProblem, problem_responses

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process answers")
def health() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/health/ready",
    summary="Readiness: the database is reachable, accepts writes, and every migration is applied",
    responses=problem_responses(503),
)
async def ready(health: HealthDep) -> ReadyOut:
    verdict = await run_in_threadpool(health.check)
    if not verdict.ready:
        detail = verdict.reason or "not ready"
        if verdict.pending_migrations:
            raise ApiProblem(
                503, "not-ready", detail, pending_migrations=list(verdict.pending_migrations)
            )
        raise ApiProblem(503, "not-ready", detail)
    return ReadyOut(status="ready", database="reachable", pending_migrations=[])


@router.get(
    "/prometheus",
    summary="Prometheus metrics (text exposition)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def prometheus(exposition: ExpositionDep) -> Response:
    body, content_type = exposition.render()
    return Response(content=body, media_type=content_type)
