"""Readiness (SPEC §6.3 `GET /health/ready`): is the database reachable and its schema current?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DatabaseUnreachable(Exception):
    """The database did not answer within the probe's time."""


class SchemaProbe(Protocol):
    def pending_migrations(self) -> list[str]:
        """Names of the migrations not applied yet; DatabaseUnreachable if it cannot tell."""
        ...


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str | None
    pending_migrations: tuple[str, ...] = ()


class HealthService:
    def __init__(self, probe: SchemaProbe) -> None:
        self._probe = probe

    def readiness(self) -> Readiness:
        try:
            pending = self._probe.pending_migrations()
        except DatabaseUnreachable as exc:
            return Readiness(False, f"database unreachable: {exc}")
        if pending:
            return Readiness(
                False,
                f"migrations pending: {', '.join(pending)}; run `metrics-orchestrator migrate`",
                tuple(pending),
            )
        return Readiness(True, None)
