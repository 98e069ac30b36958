"""`refresh --stale` (SPEC §8): a manual run of every stale metric none of whose upstream
metrics is stale; when they succeed, their outputs bring the rest of the chain up to date."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.queries import QueryService
from metrics_orchestrator.domain.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class StaleRefresh:
    runs: dict[str, tuple[UUID, ...]]  # per metric refreshed, the runs queued
    refused: dict[str, str]  # per stale root that cannot run now, why


def refresh_stale(queries: QueryService, intake: IntakeService) -> StaleRefresh:
    """One manual run per root of the stale part of the graph, each in its own transaction
    (as `metrics run` makes it); a root that cannot run (disabled, an input never updated, gone
    since it was judged) is reported, not fatal, so the other roots still run."""
    runs: dict[str, tuple[UUID, ...]] = {}
    refused: dict[str, str] = {}
    for code in queries.refresh_roots():
        try:
            runs[code] = (intake.request_manual_run(code),)
        except (Conflict, NotFound) as exc:
            refused[code] = str(exc)
    return StaleRefresh(runs, refused)
