"""Entities of the catalog and of run tracking, and the run lifecycle (SPEC §2, §5.5)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from metrics_orchestrator.domain.errors import Conflict, IllegalTransition, StaleRun

# Upper bounds of a metric's settings: a century of freshness keeps date arithmetic in range.
# The one home of the days bound: an expression's windows take it too (`expressions.MAX_DAYS`);
# migration 003's CHECK backs it in the schema.
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


class Cause(StrEnum):
    """Why a run changes status: the "cause" column of SPEC §5.5."""

    READY = "ready"  # run formation found every input (§5.3)
    CANCEL = "cancel"  # the API, a changed definition, or a late success superseding a retry
    PUBLISHED = "published"  # the dispatcher published the request (§5.4)
    DISPATCH_GAVE_UP = "dispatch_gave_up"
    WORKER_ALIVE = "worker_alive"  # a started or heartbeat event
    COMPLETED = "completed"  # a completed event (it may arrive before started)
    START_TIMEOUT = "start_timeout"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"


@dataclass(frozen=True, slots=True)
class Move:
    sources: frozenset[RunStatus]
    targets: frozenset[RunStatus]


def _move(sources: set[RunStatus], targets: set[RunStatus]) -> Move:
    return Move(frozenset(sources), frozenset(targets))


_S = RunStatus
# SPEC §5.5, the one place the lifecycle is written down: per cause, the statuses a run may
# leave and the ones it may enter. SQL that changes a status takes its from-statuses from
# here (`change_for`) and every write checks the rows it changed. A late `completed` event
# after a timeout still records the outcome, so timed_out is terminal yet has exits.
LIFECYCLE: dict[Cause, Move] = {
    Cause.READY: _move({_S.PENDING_DEPENDENCIES}, {_S.QUEUED}),
    Cause.CANCEL: _move(
        {_S.PENDING_DEPENDENCIES, _S.QUEUED, _S.DISPATCHED, _S.RUNNING}, {_S.CANCELED}
    ),
    Cause.PUBLISHED: _move({_S.QUEUED}, {_S.DISPATCHED}),
    Cause.DISPATCH_GAVE_UP: _move({_S.QUEUED}, {_S.FAILED}),
    Cause.WORKER_ALIVE: _move({_S.DISPATCHED}, {_S.RUNNING}),
    Cause.COMPLETED: _move({_S.DISPATCHED, _S.RUNNING, _S.TIMED_OUT}, {_S.SUCCEEDED, _S.FAILED}),
    Cause.START_TIMEOUT: _move({_S.DISPATCHED}, {_S.TIMED_OUT}),
    Cause.HEARTBEAT_TIMEOUT: _move({_S.RUNNING}, {_S.TIMED_OUT}),
}

# Writes that keep a run where it is, each under the cause that makes it: a started or
# heartbeat event of a running run renews its last sign of life; run formation that finds a
# waiting run still waiting gives it newer held inputs. They are no transitions of SPEC §5.5
# (so not in LIFECYCLE, which is the spec's table), yet they are status writes like the others:
# `change_for` names them, and their SQL checks the rows they changed.
STAYS: dict[Cause, frozenset[RunStatus]] = {
    Cause.READY: frozenset({_S.PENDING_DEPENDENCIES}),
    Cause.WORKER_ALIVE: frozenset({_S.RUNNING}),
}


def check_transition(current: RunStatus, target: RunStatus, cause: Cause) -> None:
    """Raise IllegalTransition unless SPEC §5.5 allows `current -> target` for `cause`."""
    move = LIFECYCLE[cause]
    if current not in move.sources or target not in move.targets:
        sources = ", ".join(sorted(move.sources))
        raise IllegalTransition(
            f"run cannot move from {current} to {target} {_CAUSE_PHRASES[cause]} "
            f"(allowed from {sources})"
        )


_CAUSE_PHRASES = {
    Cause.READY: "when its inputs are ready",
    Cause.CANCEL: "on cancel",
    Cause.PUBLISHED: "on publish",
    Cause.DISPATCH_GAVE_UP: "when dispatch gives up",
    Cause.WORKER_ALIVE: "on a started or heartbeat event",
    Cause.COMPLETED: "on a completed event",
    Cause.START_TIMEOUT: "on a start timeout",
    Cause.HEARTBEAT_TIMEOUT: "on a heartbeat timeout",
}


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One allowed move of SPEC §5.5, as the SQL that applies it takes it: from, to, why."""

    cause: Cause
    source: RunStatus
    target: RunStatus


def change_for(
    cause: Cause, source: RunStatus | None = None, target: RunStatus | None = None
) -> StatusChange:
    """The change `cause` makes from `source` to `target`, checked against the table.

    Either may be left out where the table gives the cause only one (a timeout, a publish).
    A run kept in its status by `cause` (STAYS) is named with both, `source` == `target`.
    """
    if source is not None and source == target and source in STAYS.get(cause, frozenset()):
        return StatusChange(cause, source, target)
    move = LIFECYCLE[cause]
    chosen_source = source if source is not None else _only(move.sources, cause, "source")
    chosen_target = target if target is not None else _only(move.targets, cause, "target")
    check_transition(chosen_source, chosen_target, cause)
    return StatusChange(cause, chosen_source, chosen_target)


def _only(statuses: frozenset[RunStatus], cause: Cause, what: str) -> RunStatus:
    if len(statuses) != 1:
        raise ValueError(f"{cause.value} has several {what} statuses; name one")
    (status,) = statuses
    return status


def check_rows_changed(changed: int, expected: int, change: StatusChange) -> None:
    """Every status write checks how many rows it changed (SPEC §5.5): fewer means a race.

    The run moved on between the decision and the write (for example canceled a moment
    before): StaleRun rolls the transaction back, to be decided again on fresh facts.
    """
    if changed != expected:
        raise StaleRun(
            f"{change.cause.value}: {expected} run(s) were to move from {change.source} to "
            f"{change.target}, {changed} did"
        )


def check_metric_can_run(metric_code: str, enabled: bool) -> None:
    """SPEC §5.6: a disabled metric gets no runs of any kind, manual runs and retries included."""
    if not enabled:
        raise Conflict(f"metric {metric_code!r} is disabled: it gets no runs until it is enabled")


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
    # SPEC §9: late when its freshest version is older than expected_every + grace
    expected_every: timedelta | None = None
    grace: timedelta = timedelta(0)


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
    # the digest of its canonical expression and resolved inputs (SPEC §8): each run records
    # the one it was formed with ("" until the catalog stores one)
    definition_version: str = ""
    # SPEC §9: overdue when the data time of its latest success is older than this
    max_data_age: timedelta | None = None

    @property
    def required_datasets(self) -> tuple[str, ...]:
        """Datasets this metric reads, each once, in the order its series first use them."""
        return tuple(dict.fromkeys(d.dataset_id for d in self.dependencies))


@dataclass(frozen=True, slots=True)
class DatasetUpdate:
    """One version of a dataset, as announced by a projection update and stored (SPEC §4.1, §5.2).

    The one type of an update from intake to the run request and back in reads: the rules
    order it (`order_key`, "freshest wins"), a run request names where it is (its bucket and
    paths), lineage and pending rows point at it. `seq` is its receipt order, 0 until it is
    recorded; `bucket` is "" until recorded when the announcement named none (the dataset's).
    """

    id: UUID
    event_key: str
    dataset_id: str
    bucket: str
    version_manifest_path: str
    projections_path: str
    occurred_at: datetime | None
    received_at: datetime
    seq: int = 0
    # A version of a metric's output (`metric:X`, SPEC §8): the run that wrote it, and when
    # that run's chain was formed; both None for a projection update.
    run_id: UUID | None = None
    formed_at: datetime | None = None
    # Derived once, at construction: the rules read them for every metric an update concerns.
    effective_at: datetime = field(init=False, repr=False, compare=False)
    # "Freshest wins": latest effective time, ties to the later receipt (SPEC §5.2); among a
    # metric output's versions, the latest formed run wins instead (§8).
    order_key: tuple[datetime, datetime, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        effective = effective_time(self.occurred_at, self.received_at)
        first = self.formed_at if self.formed_at is not None else effective
        object.__setattr__(self, "effective_at", effective)
        object.__setattr__(self, "order_key", (first, self.received_at, self.seq))

    def is_newer_than(self, other: DatasetUpdate | None) -> bool:
        return other is None or self.order_key > other.order_key

    def recorded(self, seq: int, bucket: str) -> DatasetUpdate:
        """The update as stored: with its receipt sequence and the bucket it was stored with."""
        return replace(self, seq=seq, bucket=bucket)


def effective_time(occurred_at: datetime | None, received_at: datetime) -> datetime:
    """When a version counts as produced: its occurred_at, else when we heard of it (§5.2)."""
    return occurred_at if occurred_at is not None else received_at


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
    # False when the worker reported a FAILURE that would fail the same way again (SPEC §4.2)
    retryable: bool = True
    lineage: dict[str, UUID] = field(default_factory=dict)
