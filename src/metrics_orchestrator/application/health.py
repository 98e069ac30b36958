"""Readiness (SPEC §6.3 `GET /health/ready`): is the database reachable, writable, and current?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DatabaseUnreachable(Exception):
    """The database did not answer within the probe's time."""


@dataclass(frozen=True, slots=True)
class DatabaseState:
    pending_migrations: list[str]
    # A standby (during a failover) or a database set read-only answers, but refuses every
    # write: intake, feedback and buttons would all fail.
    read_only: bool


class SchemaProbe(Protocol):
    def database_state(self) -> DatabaseState:
        """Pending migrations and whether writes are refused; DatabaseUnreachable if unknown."""
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
            state = self._probe.database_state()
        except DatabaseUnreachable as exc:
            return Readiness(False, f"database unreachable: {exc}")
        if state.read_only:
            return Readiness(
                False, "the database accepts no writes (read-only: a standby, or set read-only)"
            )
        pending = state.pending_migrations
        if pending:
            return Readiness(
                False,
                f"migrations pending: {', '.join(pending)}; run `metrics-orchestrator migrate`",
                tuple(pending),
            )
        return Readiness(True, None)
