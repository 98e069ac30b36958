"""Service health (SPEC §6.3 `GET /health/ready`): is the database reachable, writable, current?

Not to be confused with a metric's readiness ("why not yet", `IntakeService.readiness`): this is
the probe a load balancer asks; the HTTP path keeps the customary name `/health/ready`.
"""

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
class ServiceHealth:
    ready: bool
    reason: str | None
    pending_migrations: tuple[str, ...] = ()


class HealthService:
    def __init__(self, probe: SchemaProbe) -> None:
        self._probe = probe

    def check(self) -> ServiceHealth:
        try:
            state = self._probe.database_state()
        except DatabaseUnreachable as exc:
            return ServiceHealth(False, f"database unreachable: {exc}")
        if state.read_only:
            return ServiceHealth(
                False, "the database accepts no writes (read-only: a standby, or set read-only)"
            )
        pending = state.pending_migrations
        if pending:
            return ServiceHealth(
                False,
                f"migrations pending: {', '.join(pending)}; run `metrics-orchestrator migrate`",
                tuple(pending),
            )
        return ServiceHealth(True, None)
