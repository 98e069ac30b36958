"""The dispatcher's ports: its repository, the publisher and the wake-up listener (SPEC §5.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from metrics_orchestrator.domain.messages.run_requested import requested_metric_code
from metrics_orchestrator.domain.model import RunStatus, StatusChange


@dataclass(frozen=True, slots=True)
class RunRequestMessage:
    run_id: UUID
    attempt: int
    metric_code: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    run_id: UUID
    ok: bool
    error: str | None = None


class RunRequestPublisher(Protocol):
    def publish_batch(self, messages: Sequence[RunRequestMessage]) -> list[PublishOutcome]:
        """Publish every message; report one outcome per message, in any order."""
        ...


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A queued, due run locked by the current transaction."""

    run_id: UUID
    attempt: int
    status: RunStatus
    # None when the stored payload is not a JSON object (a bug upstream): never publishable.
    payload: dict[str, Any] | None
    dispatch_attempts: int

    @property
    def metric_code(self) -> str:
        """The code the stored request carries (the one published and echoed back)."""
        return requested_metric_code(self.payload)


@dataclass(frozen=True, slots=True)
class DispatchRetry:
    run_id: UUID
    error: str
    not_before: datetime


@dataclass(frozen=True, slots=True)
class DispatchGiveUp:
    run_id: UUID
    error: str


class DispatchRepository(Protocol):
    """Claiming and marking queued runs. Every method runs in the caller's transaction."""

    def claim_dispatchable(self, status: RunStatus, now: datetime, limit: int) -> list[ClaimedRun]:
        """Lock up to `limit` runs in `status` due at `now`, oldest first, skipping locked ones."""
        ...

    # Each write changes runs only while still in change.source; it returns how many it changed.

    def mark_dispatched(
        self, run_ids: Sequence[UUID], change: StatusChange, now: datetime
    ) -> int: ...

    def schedule_dispatch_retries(
        self, retries: Sequence[DispatchRetry], status: RunStatus, now: datetime
    ) -> int: ...

    def give_up_dispatch(
        self, give_ups: Sequence[DispatchGiveUp], change: StatusChange, now: datetime
    ) -> int: ...


class RunQueuedListener(Protocol):
    """Waits for a `metric_run_queued` notification."""

    def wait(self, timeout: float) -> bool:
        """True when a notification arrived within `timeout` seconds."""
        ...

    def close(self) -> None: ...
