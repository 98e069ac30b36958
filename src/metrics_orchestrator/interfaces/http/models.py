"""Request and response bodies of the HTTP API (SPEC §6.3), with their OpenAPI schemas.

The catalog's request bodies are the application's input specs (application/catalog_spec.py,
shared with catalog files and the CLI): pydantic checks their shape and types strictly, the
application services then check meaning (expressions, references) and report every problem
with its JSON path. Response models are built from the application's read models.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

# The request bodies of the catalog are the application's input specs (one model per concept).
from metrics_orchestrator.application.catalog_spec import MAX_KEY as MAX_KEY
from metrics_orchestrator.application.catalog_spec import NO_NUL as NO_NUL
from metrics_orchestrator.application.catalog_spec import Grace, Objective, Text
from metrics_orchestrator.application.incidents import FreshnessBoard
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.ports.queries import MetricRunSummary
from metrics_orchestrator.application.ports.runs import PendingInput, RunSummary
from metrics_orchestrator.application.queries import DURATION_RUNS, MetricData
from metrics_orchestrator.application.refresh import StaleRefresh
from metrics_orchestrator.application.runs import RunDetail
from metrics_orchestrator.application.verdicts import ImpactAction
from metrics_orchestrator.domain.freshness import Freshness, FreshnessState
from metrics_orchestrator.domain.inbox import MAX_DISMISS_REASON
from metrics_orchestrator.domain.metric_state import MetricState, StateVerdict
from metrics_orchestrator.domain.model import (
    Dataset,
    DatasetUpdate,
    Metric,
    MetricRun,
    RunStatus,
    RunTrigger,
    TriggerPolicy,
)
from metrics_orchestrator.domain.orchestration import InputStatus, MetricDecision


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _ReadModelOut(BaseModel):
    """A response that copies a read model whose attributes have the same names and meaning:
    build it with `Model.model_validate(read_model)`."""

    model_config = ConfigDict(from_attributes=True)


# --- errors ---------------------------------------------------------------------------------


class FieldErrorOut(BaseModel):
    path: str = Field(description="JSON path of the offending field ('' for the whole body).")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldErrorOut] | None = Field(
        default=None, description="Every validation problem, each with its JSON path."
    )
    event_key: str | None = Field(
        default=None, description="Key of a rejected event, for GET /events and replay."
    )


# --- catalog --------------------------------------------------------------------------------


class SeriesOut(_ReadModelOut):
    code: str
    name: str
    description: str
    unit: str
    frequency: str


class SeriesPage(BaseModel):
    items: list[SeriesOut]
    next_cursor: str | None


class FreshnessOut(BaseModel):
    """A freshness objective judged now (SPEC §9)."""

    state: FreshnessState = Field(description="ok, late (a dataset) or overdue (a metric).")
    due_at: datetime = Field(
        description="When it falls (or fell) due: the countdown while ok, `since` otherwise."
    )
    since: datetime | None = Field(description="Late or overdue since; None when ok.")
    why: str

    @classmethod
    def of(cls, freshness: Freshness | None) -> FreshnessOut | None:
        return None if freshness is None else cls.from_freshness(freshness)

    @classmethod
    def from_freshness(cls, freshness: Freshness) -> FreshnessOut:
        return cls(
            state=freshness.state,
            due_at=freshness.due_at,
            since=freshness.since,
            why=freshness.why,
        )


class DatasetOut(_ReadModelOut):
    id: str
    name: str
    description: str
    bucket: str
    enabled: bool
    series: list[str]
    expected_every: Objective | None = Field(
        default=None, description="SPEC §9: a new version is expected this often (ISO-8601)."
    )
    grace: Grace = Field(default=timedelta(0), description="Slack after expected_every.")
    freshness: FreshnessOut | None = Field(
        default=None, description="The objective judged now; None without an objective."
    )

    @classmethod
    def of(cls, dataset: Dataset, board: FreshnessBoard) -> DatasetOut:
        shown = cls.model_validate(dataset)
        return shown.model_copy(
            update={"freshness": FreshnessOut.of(board.datasets.get(dataset.id))}
        )


class DatasetUpdateOut(_ReadModelOut):
    id: UUID
    event_key: str
    bucket: str
    version_manifest_path: str
    projections_path: str
    occurred_at: datetime | None
    received_at: datetime
    effective_at: datetime


class DatasetDetailOut(DatasetOut):
    recent_updates: list[DatasetUpdateOut] = Field(
        description="The latest updates, freshest first (SPEC §5.2 order)."
    )


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None


class DependencyOut(_ReadModelOut):
    series_code: str
    dataset_id: str


class MetricOut(BaseModel):
    id: str
    code: str
    expression_type: str
    expression: dict[str, Any] = Field(description="Canonical form (SPEC §3).")
    frequency: str
    unit: str
    description: str
    required_days: int
    trigger_policy: TriggerPolicy
    max_attempts: int
    enabled: bool
    dependencies: list[DependencyOut]
    required_datasets: list[str]
    state: MetricState = Field(
        description="What a person needs to know, in one word: healthy (the newest run "
        "succeeded), waiting (the next run waits for an input with no fresh version, or it "
        "never ran), running (a run is queued, dispatched or running), failing (the newest "
        "run failed or timed out; a retry may be scheduled) or disabled. See docs/ui.md."
    )
    state_reason: str = Field(description="Why, in one sentence (e.g. which input it waits for).")
    data_time: datetime | None = Field(
        description="The data time of its latest succeeded run (SPEC §8): the oldest effective "
        "time of the external dataset versions behind it, directly or through upstream metrics. "
        "None if it never succeeded."
    )
    data_age_seconds: float | None = Field(
        description="Seconds from data_time to now, by the control plane's clock."
    )
    stale: bool = Field(
        description="Its latest success used an older definition, missed a newer input version "
        "with no run on its way, or reads a stale metric (SPEC §8)."
    )
    stale_reason: str | None = Field(
        description="'definition changed', 'newer input: <datasets>' or "
        "'upstream stale: <metrics>'; None when not stale."
    )
    last_status: RunStatus | None = Field(
        description="The status of its newest run (by creation); None if it never ran."
    )
    last_run_at: datetime | None = Field(description="When its newest run was created.")
    last_success_at: datetime | None = Field(
        description="When its latest succeeded run (the one data_time is from) completed; "
        "None if it never succeeded."
    )
    p50_duration_seconds: float | None = Field(
        description=f"The median started-to-completed time of its last {DURATION_RUNS} "
        "succeeded runs; "
        "None if none of them has both times."
    )
    max_data_age: Objective | None = Field(
        default=None, description="SPEC §9: the data behind it is never older (ISO-8601)."
    )
    freshness: FreshnessOut | None = Field(
        default=None, description="The objective judged now; None without an objective."
    )

    @classmethod
    def of(
        cls,
        metric: Metric,
        state: StateVerdict,
        data: MetricData,
        runs: MetricRunSummary,
        freshness: Freshness | None = None,
    ) -> MetricOut:
        return cls(
            id=metric.id,
            code=metric.code,
            expression_type=metric.expression_type,
            expression=metric.expression_json,
            frequency=metric.frequency,
            unit=metric.unit,
            description=metric.description,
            required_days=metric.required_days,
            trigger_policy=metric.trigger_policy,
            max_attempts=metric.max_attempts,
            enabled=metric.enabled,
            dependencies=[DependencyOut.model_validate(d) for d in metric.dependencies],
            required_datasets=list(metric.required_datasets),
            state=state.state,
            state_reason=state.reason,
            data_time=data.data_time,
            data_age_seconds=data.data_age_seconds,
            stale=data.staleness.stale,
            stale_reason=str(data.staleness) if data.staleness.stale else None,
            last_status=runs.last_status,
            last_run_at=runs.last_run_at,
            last_success_at=runs.last_success_at,
            p50_duration_seconds=runs.p50_duration_seconds,
            max_data_age=metric.max_data_age,
            freshness=FreshnessOut.of(freshness),
        )


class MetricPage(BaseModel):
    items: list[MetricOut]
    next_cursor: str | None


class RefreshOut(BaseModel):
    metric_code: str
    run_id: UUID = Field(description="The manual run queued on the freshest inputs.")


class StaleRefreshOut(BaseModel):
    runs: dict[str, list[UUID]] = Field(
        description="Per metric refreshed (the stale metrics none of whose upstream metrics is "
        "stale), the runs queued; the chain brings the rest up to date."
    )
    refused: dict[str, str] = Field(
        description="Per stale metric that could not run (disabled, an input never updated), why."
    )

    @classmethod
    def of(cls, refresh: StaleRefresh) -> StaleRefreshOut:
        return cls(
            runs={code: list(ids) for code, ids in refresh.runs.items()},
            refused=dict(refresh.refused),
        )


# --- readiness and impact -------------------------------------------------------------------


class UpdateRefOut(BaseModel):
    update_id: UUID
    version_manifest_path: str | None
    effective_at: datetime
    received_at: datetime


class UpstreamOut(BaseModel):
    """For an input that is a metric's output (`metric:X`): what X itself is doing (SPEC §8)."""

    metric_code: str
    state: MetricState
    reason: str = Field(
        description="Why, in one sentence: disabled, its last run failed (and when), or what "
        "it waits for itself."
    )
    waiting_for: list[str] = Field(description="The inputs X's next run still needs.")

    @classmethod
    def of(cls, code: str, verdict: StateVerdict) -> UpstreamOut:
        return cls(
            metric_code=code,
            state=verdict.state,
            reason=verdict.reason,
            waiting_for=list(verdict.waiting_for),
        )


class InputReadinessOut(BaseModel):
    dataset_id: str
    series_codes: list[str]
    status: InputStatus = Field(description="fresh, stale (too old) or missing (no update yet).")
    is_new: bool = Field(
        description="The freshest update is newer than the one the last automatic run used."
    )
    freshest_update: UpdateRefOut | None
    fresh_until: datetime | None = Field(description="When the freshest update stops being fresh.")
    last_run_update_id: UUID | None = Field(
        description="The update of this dataset the metric's last automatic run used."
    )
    upstream: UpstreamOut | None = Field(
        default=None, description="For a metric's output (`metric:X`): X's state and why."
    )


class ReadinessOut(BaseModel):
    metric_code: str
    trigger_policy: TriggerPolicy
    required_days: int
    evaluated_at: datetime
    outcome: MetricDecision = Field(
        description="What intake would decide now: ready (queue a run), waiting (hold a "
        "pending run) or unchanged (nothing new since the last automatic run)."
    )
    ready: bool
    waiting_for: list[str] = Field(description="Datasets that block a run under the policy.")
    explanation: str
    pending_run_id: UUID | None
    inputs: list[InputReadinessOut]


class ImpactMetricOut(BaseModel):
    metric_code: str
    action: ImpactAction
    waiting_for: list[str]


class DownstreamMetricOut(BaseModel):
    metric_code: str
    depth: int = Field(
        description="1: reads the output of a metric that would run or wait at once."
    )


class ImpactOut(BaseModel):
    dataset_id: str
    evaluated_at: datetime
    would_run: list[str] = Field(description="Codes of the metrics that would be queued at once.")
    would_wait: list[str] = Field(description="Codes of the metrics that would wait.")
    metrics: list[ImpactMetricOut]
    downstream: list[DownstreamMetricOut] = Field(
        default_factory=list,
        description="Every metric below them (reading their outputs, directly or through "
        "others), with its depth, shallowest first (SPEC §8).",
    )


# --- runs -----------------------------------------------------------------------------------


class RunOut(BaseModel):
    id: UUID
    metric_id: str
    metric_code: str
    status: RunStatus
    trigger: RunTrigger
    attempt: int
    retry_of: UUID | None
    inputs_fingerprint: str | None
    created_at: datetime
    queued_at: datetime | None
    not_before: datetime | None
    dispatched_at: datetime | None
    started_at: datetime | None
    last_heartbeat_at: datetime | None
    completed_at: datetime | None
    progress: float | None
    dispatch_attempts: int
    status_reason: str | None
    error: str | None
    retryable: bool = Field(
        description="False when the worker reported a FAILURE that would fail the same way "
        "again (`retryable: false`): such a run gets no automatic retry."
    )
    version_ts: str | None
    output_manifest: str | None
    row_count: int | None

    @classmethod
    def fields_of(cls, run: MetricRun, metric_code: str) -> dict[str, Any]:
        """The run's attributes under the same names, plus the code of its metric."""
        # RunOut's fields, not cls's: RunDetailOut adds fields the run does not have.
        copied = {name: getattr(run, name) for name in RunOut.model_fields if name != "metric_code"}
        return {**copied, "metric_code": metric_code}

    @classmethod
    def of(cls, summary: RunSummary) -> RunOut:
        return cls(**cls.fields_of(summary.run, summary.metric_code))


class PendingInputOut(BaseModel):
    dataset_id: str
    received: bool = Field(description="Whether the run already holds an update of it.")
    update_id: UUID | None
    received_at: datetime | None
    version_manifest_path: str | None

    @classmethod
    def of(cls, pending: PendingInput) -> PendingInputOut:
        update = pending.update
        return cls(
            dataset_id=pending.dataset_id,
            received=update is not None,
            update_id=update.id if update else None,
            received_at=update.received_at if update else None,
            version_manifest_path=update.version_manifest_path if update else None,
        )


class LineageOut(_ReadModelOut):
    dataset_id: str
    update_id: UUID
    event_key: str
    bucket: str
    version_manifest_path: str
    projections_path: str
    occurred_at: datetime | None
    received_at: datetime
    effective_at: datetime

    @classmethod
    def of(cls, update: DatasetUpdate) -> LineageOut:
        return cls(
            dataset_id=update.dataset_id,
            update_id=update.id,
            event_key=update.event_key,
            bucket=update.bucket,
            version_manifest_path=update.version_manifest_path,
            projections_path=update.projections_path,
            occurred_at=update.occurred_at,
            received_at=update.received_at,
            effective_at=update.effective_at,
        )


class AttemptOut(_ReadModelOut):
    id: UUID
    attempt: int
    trigger: str
    status: RunStatus
    retry_of: UUID | None
    created_at: datetime
    completed_at: datetime | None


class RunDetailOut(RunOut):
    waiting_since: datetime | None = Field(
        description="For a pending run: when it started waiting (its creation)."
    )
    waiting_for: list[str] = Field(description="For a pending run: datasets not received yet.")
    pending: list[PendingInputOut] = Field(description="What a pending run holds, per dataset.")
    lineage: list[LineageOut] = Field(description="The dataset updates the run consumed.")
    attempts: list[AttemptOut] = Field(description="The whole attempt chain, first attempt first.")
    request_payload: dict[str, Any] | None = Field(
        description="The metric_run_requested message (SPEC §4.3), once queued."
    )
    data_time: datetime | None = Field(
        description="For a succeeded run: the oldest effective time of the external dataset "
        "versions behind it, directly or through the upstream runs it consumed (SPEC §8)."
    )
    definition_version: str | None = Field(
        description="The digest of its metric's definition the run was formed with (SPEC §8)."
    )

    @classmethod
    def of_detail(cls, detail: RunDetail) -> RunDetailOut:
        run = detail.run
        pending = run.status is RunStatus.PENDING_DEPENDENCIES
        return cls(
            **cls.fields_of(run, detail.metric_code),
            waiting_since=run.created_at if pending else None,
            waiting_for=[p.dataset_id for p in detail.pending if p.update is None]
            if pending
            else [],
            pending=[PendingInputOut.of(p) for p in detail.pending],
            lineage=[LineageOut.of(e) for e in detail.lineage],
            attempts=[AttemptOut.model_validate(a) for a in detail.attempts],
            request_payload=run.request_payload,
            data_time=detail.data_time,
            definition_version=detail.definition_version,
        )


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class CancelIn(_Request):
    reason: Text | None = Field(default=None, description="Recorded as the status reason.")


# --- events ---------------------------------------------------------------------------------


class DismissIn(_Request):
    reason: str = Field(
        min_length=1,
        max_length=MAX_DISMISS_REASON,
        pattern=NO_NUL,
        description="Why the event will never be valid; kept in the event log.",
    )


class ProjectionUpdateIn(BaseModel):
    """SPEC §4.1. Documentation only: the raw body goes to intake as the queue's would."""

    event: Literal["projection_update"] | None = None
    dataset_id: str
    bucket: str | None = None
    version_manifest_path: str
    projections_path: str
    occurred_at: datetime | None = None


class EventResultOut(BaseModel):
    event_type: str
    status: EventStatus
    event_key: str | None
    error: str | None
    update_id: UUID | None = Field(description="The dataset update recorded, when processed.")
    queued_runs: list[UUID]
    pending_runs: list[UUID]


class EventOut(_ReadModelOut):
    id: int
    event_key: str
    event_type: str
    status: EventStatus
    source: str
    error: str | None
    payload: dict[str, Any] | None
    raw_body: str | None = Field(
        description="Kept for rejected events, which replay from it. A page of `GET /events` "
        "holds its first 4,096 characters (`raw_body_truncated`); `GET /events/{event_key}` "
        "the whole."
    )
    raw_body_length: int | None = Field(description="Characters of the whole raw body.")
    raw_body_truncated: bool = Field(description="`raw_body` is only its start.")
    received_at: datetime
    processed_at: datetime
    replayed_at: datetime | None
    replay_attempts: int = Field(description="Replays that were rejected again.")
    dismissed_at: datetime | None
    dismiss_reason: str | None


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


# --- operations -----------------------------------------------------------------------------


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    database: Literal["reachable"]
    pending_migrations: list[str]
