"""Entities of the catalog and of run tracking, and the run lifecycle (SPEC §2, §5.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from metrics_orchestrator.domain.errors import IllegalTransition

# Upper bounds of a metric's settings: a century of freshness keeps date arithmetic in range.
MAX_REQUIRED_DAYS = 36_500
MAX_ATTEMPTS = 100


class TriggerPolicy(StrEnum):
    ALL_NEW = "all_new"
    ANY_NEW = "any_new"


class RunTrigger(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"
    RETRY = "retry"


class RunStatus(StrEnum):
    PENDING_DEPENDENCIES = "pending_dependencies"
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELED}
)

# SPEC §5.5, the one place the lifecycle is written down. A late `completed` event after a
# timeout still records the outcome, so timed_out is terminal yet has exits.
ALLOWED_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING_DEPENDENCIES: frozenset({RunStatus.QUEUED, RunStatus.CANCELED}),
    RunStatus.QUEUED: frozenset({RunStatus.DISPATCHED, RunStatus.FAILED, RunStatus.CANCELED}),
    RunStatus.DISPATCHED: frozenset(
        {
            RunStatus.RUNNING,
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.TIMED_OUT,
            RunStatus.CANCELED,
        }
    ),
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELED}
    ),
    RunStatus.TIMED_OUT: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELED: frozenset(),
}

CANCELABLE_STATUSES = frozenset(
    s for s, targets in ALLOWED_TRANSITIONS.items() if RunStatus.CANCELED in targets
)


def can_transition(current: RunStatus, target: RunStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def check_transition(current: RunStatus, target: RunStatus) -> None:
    """Raise IllegalTransition unless SPEC §5.5 allows `current -> target`."""
    if not can_transition(current, target):
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "none"
        raise IllegalTransition(
            f"run cannot move from {current} to {target} (allowed from {current}: {allowed})"
        )


@dataclass(frozen=True, slots=True)
class Series:
    code: str
    name: str = ""
    description: str = ""
    unit: str = ""
    frequency: str = ""


@dataclass(frozen=True, slots=True)
class Dataset:
    id: str
    name: str = ""
    description: str = ""
    bucket: str = ""
    enabled: bool = True
    series: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricDependency:
    series_code: str
    dataset_id: str


@dataclass(frozen=True, slots=True)
class Metric:
    id: str
    code: str
    expression_type: str
    expression_json: dict[str, Any]
    required_days: int
    frequency: str = ""
    unit: str = ""
    description: str = ""
    trigger_policy: TriggerPolicy = TriggerPolicy.ALL_NEW
    max_attempts: int = 3
    enabled: bool = True
    dependencies: tuple[MetricDependency, ...] = ()

    @property
    def required_datasets(self) -> tuple[str, ...]:
        """Datasets this metric reads, each once, in the order its series first use them."""
        return tuple(dict.fromkeys(d.dataset_id for d in self.dependencies))


@dataclass(frozen=True, slots=True)
class DatasetUpdate:
    id: UUID
    event_key: str
    dataset_id: str
    bucket: str
    version_manifest_path: str
    projections_path: str
    occurred_at: datetime | None
    received_at: datetime
    seq: int = 0

    @property
    def effective_at(self) -> datetime:
        """When the version was produced, or when we heard of it (SPEC §5.2)."""
        return self.occurred_at if self.occurred_at is not None else self.received_at


@dataclass(slots=True)
class MetricRun:
    id: UUID
    metric_id: str
    status: RunStatus
    trigger: RunTrigger
    attempt: int
    created_at: datetime
    retry_of: UUID | None = None
    inputs_fingerprint: str | None = None
    request_payload: dict[str, Any] | None = None
    not_before: datetime | None = None
    progress: float | None = None
    dispatch_attempts: int = 0
    status_reason: str | None = None
    error: str | None = None
    queued_at: datetime | None = None
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    completed_at: datetime | None = None
    version_ts: str | None = None
    output_manifest: str | None = None
    row_count: int | None = None
    lineage: dict[str, UUID] = field(default_factory=dict)

    def move_to(self, target: RunStatus) -> None:
        check_transition(self.status, target)
        self.status = target
