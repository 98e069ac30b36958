"""The read models' repository port (SPEC §6.3, §6.4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from metrics_orchestrator.domain.model import DatasetUpdate


@dataclass(frozen=True, slots=True)
class RunGauges:
    """Point-in-time counts read at scrape time."""

    pending_runs: int  # runs in pending_dependencies
    dispatcher_backlog: int  # queued runs whose not_before has passed


class QueryRepository(Protocol):
    def recent_dataset_updates(self, dataset_id: str, limit: int) -> list[DatasetUpdate]:
        """The dataset's updates, freshest first (SPEC §5.2 order)."""
        ...

    def run_gauges(self, now: datetime) -> RunGauges: ...
