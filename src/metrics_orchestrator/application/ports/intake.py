"""The intake's repository port and the data it reads and writes (SPEC §5.1-§5.4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from metrics_orchestrator.domain.metric_outputs import InputBehind, OutputFacts
from metrics_orchestrator.domain.model import DatasetUpdate, Metric, RunTrigger
from metrics_orchestrator.domain.orchestration import InputFacts

# An update to record, with the announcement's payload (stored beside it, never read back
# by the rules).
Announced = tuple[DatasetUpdate, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class MetricInputs:
    """Everything the rules and the run request need about one metric's inputs: the metric
    (its dependencies in the order of its expression), per required dataset its freshest
    update and the one its last automatic run used, and its open pending run."""

    metric: Metric
    facts: tuple[InputFacts, ...]
    pending_run_id: UUID | None


class RecordOutcome(StrEnum):
    """What recording a received update found."""

    INSERTED = "inserted"
    DUPLICATE = "duplicate"
    UNKNOWN_DATASET = "unknown dataset"
    DISABLED_DATASET = "dataset is disabled"


@dataclass(frozen=True, slots=True)
class RecordedUpdate:
    """What recording one update found; an inserted one comes back as stored (its receipt
    sequence and the bucket it was stored with: its own, or its dataset's)."""

    outcome: RecordOutcome
    update: DatasetUpdate | None = None


@dataclass(frozen=True, slots=True)
class RecordedUpdates:
    """What recording a batch of updates found."""

    # per dataset named by the batch: its freshest update before the batch
    freshest_before: dict[str, DatasetUpdate | None]
    # per update, in order
    outcomes: list[RecordedUpdate]


@dataclass(frozen=True, slots=True)
class WaitingRun:
    run_id: UUID
    metric_id: str
    is_new_run: bool
    held: dict[str, DatasetUpdate | None]


@dataclass(frozen=True, slots=True)
class QueuedRun:
    run_id: UUID
    metric_id: str
    is_new_run: bool
    trigger: RunTrigger
    fingerprint: str
    payload: dict[str, Any]
    lineage: dict[str, UUID]
    # the metric's definition it was formed with (SPEC §8)
    definition_version: str = ""


@dataclass(frozen=True, slots=True)
class QueuedRunWrite:
    """A run queued by a transaction: inserted as queued, or an existing pending run promoted.

    `created_at` is None for an existing pending run. `held` is, for a run that waited
    earlier in the same transaction, what it waited for (its pending rows). Every run that
    waited keeps those rows, filled by the repository from its lineage with the updates it
    consumed.
    """

    run: QueuedRun
    queued_at: datetime
    created_at: datetime | None
    held: dict[str, DatasetUpdate | None] | None = None

    @property
    def existed_before_transaction(self) -> bool:
        """A run pending before this transaction: promoted, not inserted. Not the same fact
        as `QueuedRun.is_new_run` ("did not exist before this arrival", which counts the
        transition); a run that waited earlier in this batch is neither."""
        return self.created_at is None


@dataclass(frozen=True, slots=True)
class PendingRunWrite:
    """A run left waiting by a transaction, with what it holds now; `created_at` is None for
    a run that was already pending (checked to be still pending)."""

    run_id: UUID
    metric_id: str
    created_at: datetime | None
    held: dict[str, DatasetUpdate | None]

    @property
    def existed_before_transaction(self) -> bool:
        """A run already pending before this transaction: checked, not inserted."""
        return self.created_at is None


@dataclass(frozen=True, slots=True)
class IntakeWrites:
    """Everything one intake transaction decided, to be written together."""

    freshest: dict[str, UUID] = field(default_factory=dict)
    queued: list[QueuedRunWrite] = field(default_factory=list)
    waiting: list[PendingRunWrite] = field(default_factory=list)
    # per metric, its last automatic run after the transaction
    last_automatic: dict[str, UUID] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """What a batch of updates found on arrival, with everything it can touch locked."""

    # per dataset of the batch: its enabled dependent metrics, in id order
    dependents: dict[str, list[str]]
    recorded: RecordedUpdates
    # every dependent metric's inputs, before the batch
    inputs: list[MetricInputs]


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    bucket: str
    enabled: bool


class IntakeRepository(Protocol):
    def dataset_for_update(self, dataset_id: str) -> DatasetInfo | None: ...

    def lock_for_batch(self, dataset_ids: Sequence[str]) -> None:
        """Everything a batch of updates of these datasets can touch, locked in the global
        intake order: the datasets, then their enabled dependent metrics, then those
        metrics' pending runs, each in id order."""
        ...

    def record_and_load(self, updates: Sequence[Announced]) -> BatchFacts:
        """Take the locks of `lock_for_batch` for the updates' datasets, insert, in order,
        the updates of known, enabled datasets unless their event key exists (or repeats
        earlier in `updates`), and load the facts of every dependent metric."""
        ...

    def lock_metric_by_code(self, code: str) -> Metric | None: ...

    def dependent_metrics(self, dataset_id: str) -> list[Metric]:
        """The enabled metrics reading the dataset, in id order (for read-only views)."""
        ...

    def metric_by_code(self, code: str) -> Metric | None: ...

    def load_inputs(self, metrics: Sequence[Metric]) -> list[MetricInputs]: ...

    def existing_automatic_fingerprints(
        self, candidates: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]: ...

    def save(self, writes: IntakeWrites) -> None:
        """Write what a transaction decided: freshest updates, new pending and queued runs,
        promotions (StaleRun if one is no longer pending), holds, lineage and the metrics'
        last automatic run."""
        ...

    def run_output(self, run_id: UUID, manifest: str | None) -> OutputFacts | None:
        """A run's output as a version-to-be of its metric's pseudo-dataset (SPEC §8)."""
        ...

    def inputs_behind(self, run_id: UUID) -> list[InputBehind]:
        """What a run consumed, for its data time (SPEC §8)."""
        ...
