"""The read models' repository port (SPEC §6.3, §6.4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from metrics_orchestrator.domain.model import DatasetUpdate, RunStatus


@dataclass(frozen=True, slots=True)
class RunGauges:
    """Point-in-time counts read at scrape time."""

    pending_runs: int  # runs in pending_dependencies
    dispatcher_backlog: int  # queued runs whose not_before has passed


@dataclass(frozen=True, slots=True)
class HourlyRunCount:
    """Runs created in one hour (truncated) that now have `status`."""

    hour: datetime
    status: RunStatus
    count: int


@dataclass(frozen=True, slots=True)
class RunWaits:
    oldest_pending_since: datetime | None  # creation of the longest-waiting pending run
    dispatcher_backlog: int
    rejected_events: int  # rejected and not replayed since


@dataclass(frozen=True, slots=True)
class RunMatch:
    """A run whose id starts with a typed prefix, with what tells it apart from others."""

    id: UUID
    metric_code: str
    status: RunStatus
    attempt: int
    created_at: datetime


class QueryRepository(Protocol):
    def recent_dataset_updates(self, dataset_id: str, limit: int) -> list[DatasetUpdate]:
        """The dataset's updates, freshest first (SPEC §5.2 order)."""
        ...

    def run_gauges(self, now: datetime) -> RunGauges: ...

    def runs_by_status(self) -> dict[RunStatus, int]: ...

    def runs_by_hour_and_status(self, since: datetime) -> list[HourlyRunCount]: ...

    def run_waits(self, now: datetime) -> RunWaits: ...

    def latest_run_status_by_metric(self) -> dict[str, RunStatus | None]:
        """Every metric's code and its newest run's status (None: it never ran)."""
        ...

    def runs_in_id_range(self, lowest: UUID, highest: UUID, limit: int) -> list[RunMatch]:
        """Runs with lowest <= id <= highest, in id order, at most `limit`."""
        ...
