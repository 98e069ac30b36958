"""The intake's repository port and the data it reads and writes (SPEC §5.1-§5.4)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from metrics_orchestrator.domain.model import MetricDependency, RunTrigger, TriggerPolicy
from metrics_orchestrator.domain.orchestration import InputFacts, UpdateVersion
from metrics_orchestrator.domain.run_request import ConsumedUpdate


@dataclass(frozen=True, slots=True)
class MetricForIntake:
    id: str
    code: str
    expression_type: str
    expression_json: dict[str, Any]
    required_days: int
    trigger_policy: TriggerPolicy
    enabled: bool


@dataclass(frozen=True, slots=True)
class MetricInputs:
    """Everything the rules and the run request need about one metric's inputs."""

    metric: MetricForIntake
    dependencies: tuple[MetricDependency, ...]
    facts: tuple[InputFacts, ...]
    updates: dict[UUID, ConsumedUpdate]
    pending_run_id: UUID | None


@dataclass(frozen=True, slots=True)
class NewDatasetUpdate:
    id: UUID
    event_key: str
    dataset_id: str
    bucket: str | None  # None: the dataset's bucket
    version_manifest_path: str
    projections_path: str
    occurred_at: datetime | None
    received_at: datetime
    effective_at: datetime
    payload: dict[str, Any]


class RecordOutcome(StrEnum):
    """What recording a received update found."""

    INSERTED = "inserted"
    DUPLICATE = "duplicate"
    UNKNOWN_DATASET = "unknown dataset"
    DISABLED_DATASET = "dataset is disabled"


@dataclass(frozen=True, slots=True)
class RecordedUpdates:
    """What recording a batch of updates found."""

    # per dataset named by the batch: its freshest update before the batch
    freshest_before: dict[str, UpdateVersion | None]
    # per update, in order: the outcome, and the receipt sequence it got if inserted
    outcomes: list[tuple[RecordOutcome, int | None]]


@dataclass(frozen=True, slots=True)
class HeldUpdate:
    update_id: UUID
    received_at: datetime


@dataclass(frozen=True, slots=True)
class WaitingRun:
    run_id: UUID
    metric_id: str
    is_new_run: bool
    held: dict[str, HeldUpdate | None]


@dataclass(frozen=True, slots=True)
class QueuedRun:
    run_id: UUID
    metric_id: str
    is_new_run: bool
    trigger: RunTrigger
    fingerprint: str
    payload: dict[str, Any]
    lineage: dict[str, UUID]


class UpdateNotStorable(Exception):
    """The database refused what one update would write (its data, not a conflict): the
    update is rejected on its own, the rest of its batch is kept."""


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    bucket: str
    enabled: bool


class IntakeRepository(Protocol):
    def dataset_for_update(self, dataset_id: str) -> DatasetInfo | None: ...

    def record_updates(self, updates: Sequence[NewDatasetUpdate]) -> RecordedUpdates:
        """Lock the named datasets (id order), then insert, in order, the updates of known,
        enabled datasets unless their event key exists (or repeats earlier in `updates`)."""
        ...

    def set_freshest(self, freshest: dict[str, UUID]) -> None:
        """Store each dataset's freshest update, as the domain chose it."""
        ...

    def lock_for_batch(self, dataset_ids: Sequence[str]) -> dict[str, list[MetricForIntake]]:
        """Everything a batch of updates of these datasets can touch, locked in the global
        intake order: the datasets, then their enabled dependent metrics, then those
        metrics' pending runs, each in id order. Per dataset: its locked dependents, in id
        order."""
        ...

    def isolated(self) -> AbstractContextManager[None]:
        """A savepoint: what fails inside is rolled back alone; a refusal of the data is
        raised as UpdateNotStorable, a conflict as TransientDatabaseError."""
        ...

    def lock_dependent_metrics(self, dataset_ids: Sequence[str]) -> list[MetricForIntake]:
        """Enabled metrics depending on any of the datasets, row-locked in id order, and then
        their open pending runs (so none is canceled while this transaction decides)."""
        ...

    def lock_metric_by_code(self, code: str) -> MetricForIntake | None: ...

    def dependent_metrics(self, dataset_id: str) -> list[MetricForIntake]:
        """Like lock_dependent_metrics, without locks (for read-only views)."""
        ...

    def metric_by_code(self, code: str) -> MetricForIntake | None: ...

    def load_inputs(self, metrics: Sequence[MetricForIntake]) -> list[MetricInputs]: ...

    def existing_automatic_fingerprints(
        self, candidates: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]: ...

    def save_waiting(self, runs: Sequence[WaitingRun], now: datetime) -> None:
        """Create new pending runs, replace what each holds; StaleRun if one is no longer
        pending."""
        ...

    def save_queued(self, runs: Sequence[QueuedRun], now: datetime) -> None:
        """Insert new queued runs, promote pending ones (StaleRun if one is no longer
        pending), write lineage and the metrics' last automatic run."""
        ...

    def notify_queued(self) -> None: ...

    def pipelined(self) -> AbstractContextManager[None]:
        """Writes inside may be sent together, without waiting for each other's results."""
        ...
