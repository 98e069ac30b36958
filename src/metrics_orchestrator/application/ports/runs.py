"""The run lifecycle's repository port and the data it reads and writes (SPEC §5.5-§5.7)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from metrics_orchestrator.domain.model import DatasetUpdate, MetricRun, RunStatus, StatusChange
from metrics_orchestrator.domain.retries import EndedRun


@dataclass(frozen=True, slots=True)
class LockedRun:
    """The part of a run, locked FOR UPDATE, that lifecycle decisions need."""

    id: UUID
    status: RunStatus
    attempt: int
    metric_code: str
    metric_enabled: bool
    has_request: bool


@dataclass(frozen=True, slots=True)
class LockedRetry:
    """A run's automatic retry, locked FOR UPDATE: enough to supersede it (SPEC §5.5)."""

    id: UUID
    status: RunStatus


@dataclass(frozen=True, slots=True)
class RunCompletion:
    status: RunStatus
    progress: float | None  # a success is complete; a failure keeps the last progress
    completed_at: datetime
    version_ts: str | None
    output_manifest: str | None
    row_count: int | None
    error: str | None
    status_reason: str | None
    retryable: bool = True
    # a success: the oldest external data behind its output (SPEC §8)
    data_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class TimedOutRun:
    id: UUID
    metric_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RetryCandidate:
    """An ended run whose retry the sweeper has not decided yet, with the rule's facts."""

    id: UUID
    facts: EndedRun
    # the run's metric_run_requested, which its retry re-sends under a new identity
    request_payload: dict[str, Any] | None
    # what an incident says of a final failure (SPEC §9)
    metric_code: str = ""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NewRetry:
    """A retry the domain decided: its id, the run it retries, when it may be dispatched."""

    id: UUID
    retry_of: UUID
    not_before: datetime
    # the retry's metric_run_requested (domain/messages/run_requested.py build_retry_request)
    request_payload: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ScheduledRetry:
    id: UUID
    retry_of: UUID
    metric_id: str
    attempt: int
    not_before: datetime | None


@dataclass(frozen=True, slots=True)
class PendingInput:
    """One dataset a pending run waits for, and the update it holds so far (if any)."""

    dataset_id: str
    update: DatasetUpdate | None


@dataclass(frozen=True, slots=True)
class AttemptSummary:
    id: UUID
    attempt: int
    trigger: str
    status: RunStatus
    retry_of: UUID | None
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest attempt of a retry chain."""

    id: UUID
    attempt: int


@dataclass(frozen=True, slots=True)
class RunSummary:
    run: MetricRun
    metric_code: str


@dataclass(frozen=True, slots=True)
class RunPageKey:
    """Keyset position in the (created_at DESC, id DESC) order of runs."""

    created_at: datetime
    id: UUID


class RunRepository(Protocol):
    """Persistence of metric runs beyond intake."""

    def lock(self, run_id: UUID) -> LockedRun | None:
        """Lock the run row FOR UPDATE; None when no such run exists."""
        ...

    def get(self, run_id: UUID) -> RunSummary | None: ...

    # Status writes change the run only if it is still in `change.source`, and return how
    # many rows they changed: the caller checks it (check_rows_changed).

    def record_start(
        self,
        run_id: UUID,
        change: StatusChange,
        *,
        started_at: datetime,
        seen_at: datetime,
        at: datetime,
    ) -> int:
        """started_at becomes the earliest reported start; last_seen_at our receipt time."""
        ...

    def record_heartbeat(
        self,
        run_id: UUID,
        change: StatusChange,
        *,
        ts: datetime,
        progress: float | None,
        seen_at: datetime,
        at: datetime,
    ) -> int:
        """last_heartbeat_at never moves backwards; progress follows the newest heartbeat."""
        ...

    def record_completion(
        self, run_id: UUID, change: StatusChange, completion: RunCompletion, *, at: datetime
    ) -> int: ...

    def cancel(self, run_id: UUID, change: StatusChange, *, reason: str, at: datetime) -> int: ...

    def lock_automatic_retry(self, run_id: UUID) -> LockedRetry | None:
        """Lock the automatic retry of `run_id` FOR UPDATE, if it has one."""
        ...

    def latest_attempt(self, run_id: UUID) -> ChainHead | None:
        """The newest attempt of the chain `run_id` belongs to; None for an unknown run."""
        ...

    def create_manual_retry(
        self, run_id: UUID, *, new_id: UUID, request_payload: dict[str, Any] | None, at: datetime
    ) -> UUID:
        """Copy the run as a queued manual retry (fingerprint, lineage) with `request_payload`."""
        ...

    def time_out(
        self,
        change: StatusChange,
        *,
        cutoff: datetime,
        error: str,
        at: datetime,
        limit: int,
    ) -> list[TimedOutRun]:
        """Time out, set-based, runs in change.source silent since before `cutoff`."""
        ...

    def retry_candidates(self, statuses: Collection[RunStatus], limit: int) -> list[RetryCandidate]:
        """Ended runs in `statuses` whose retry is undecided, locked (others' skipped)."""
        ...

    def insert_retries(self, retries: Sequence[NewRetry], *, at: datetime) -> list[ScheduledRetry]:
        """Store the decided retries (same inputs and lineage, next attempt)."""
        ...

    def mark_retries_decided(self, run_ids: Sequence[UUID], at: datetime) -> None: ...

    def pending_inputs(self, run_id: UUID) -> list[PendingInput]: ...

    def lineage(self, run_id: UUID) -> list[DatasetUpdate]:
        """The dataset updates a run consumed, by dataset."""
        ...

    def attempt_chain(self, run_id: UUID) -> list[AttemptSummary]: ...

    def list(
        self,
        *,
        statuses: Collection[RunStatus] | None,
        metric_code: str | None,
        since: datetime | None,
        until: datetime | None,
        after: RunPageKey | None,
        limit: int,
    ) -> list[RunSummary]:
        """Newest first by (created_at, id), strictly after `after` in that order: the runs in
        one of `statuses` (any when None), created at or after `since` and before `until`."""
        ...
