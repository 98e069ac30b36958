"""Projection-update intake and run formation (SPEC §5.1-§5.4).

One update is processed in one transaction:
1. record the update (`ON CONFLICT (event_key) DO NOTHING`: a second copy is a duplicate);
2. lock the enabled metrics that depend on its dataset, in id order;
3. load, for all of them at once, the freshest update of every input and the update their
   last automatic run used;
4. let the domain (`evaluate_metric`) decide per metric: ready, waiting or unchanged;
5. write the decisions set-based: queued runs with lineage, fingerprint and the complete
   request payload (the outbox), and pending runs with what they hold.
Nothing is published here; the dispatcher does that after commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

import structlog

from metrics_orchestrator.application import log_events
from metrics_orchestrator.application.events import EventRecord, EventStatus
from metrics_orchestrator.application.ports import (
    Clock,
    TransientDatabaseError,
    UnitOfWork,
    UnitOfWorkFactory,
    in_transaction,
)
from metrics_orchestrator.application.telemetry import NEW_RUN, NullTelemetry, Telemetry
from metrics_orchestrator.domain.errors import Conflict, NotFound, ValidationError
from metrics_orchestrator.domain.events import (
    PROJECTION_UPDATE,
    DecodedEvent,
    ProjectionUpdate,
    body_digest_key,
    parse_projection_update,
)
from metrics_orchestrator.domain.model import (
    MetricDependency,
    RunStatus,
    RunTrigger,
    TriggerPolicy,
)
from metrics_orchestrator.domain.orchestration import (
    Evaluation,
    InputFacts,
    Outcome,
    UpdateVersion,
    evaluate_metric,
    inputs_fingerprint,
)
from metrics_orchestrator.domain.run_request import ConsumedUpdate, build_run_request

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class MetricForIntake:
    id: str
    code: str
    expression_type: str
    expression_json: dict[str, Any]
    required_days: int
    trigger_policy: TriggerPolicy


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
    bucket: str
    version_manifest_path: str
    projections_path: str
    occurred_at: datetime | None
    received_at: datetime
    payload: dict[str, Any]


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


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    bucket: str
    enabled: bool


class IntakeRepository(Protocol):
    def dataset_for_update(self, dataset_id: str) -> DatasetInfo | None: ...

    def insert_update(self, update: NewDatasetUpdate) -> bool:
        """Insert unless the event key exists; True when this call inserted it."""
        ...

    def lock_dependent_metrics(self, dataset_id: str) -> list[MetricForIntake]:
        """Enabled metrics depending on the dataset, row-locked in id order."""
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

    def save_waiting(self, runs: Sequence[WaitingRun], now: datetime) -> None: ...

    def save_queued(self, runs: Sequence[QueuedRun], now: datetime) -> None: ...

    def notify_queued(self) -> None: ...


@dataclass(frozen=True, slots=True)
class IntakeResult:
    status: EventStatus
    event_key: str
    error: str | None = None
    update_id: UUID | None = None
    queued_runs: tuple[UUID, ...] = ()
    pending_runs: tuple[UUID, ...] = ()
    # (from status, to status) -> number of runs; from NEW_RUN for runs created now
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass(slots=True)
class _Plan:
    waiting: list[WaitingRun] = field(default_factory=list)
    queued: list[QueuedRun] = field(default_factory=list)


class Orchestrator:
    """The heart of the product: updates in, runs out (SPEC §5.1-§5.4)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        output_base_path: Callable[[str], str],
        *,
        transaction_attempts: int = 5,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._output_base_path = output_base_path
        self._attempts = transaction_attempts
        self._telemetry = telemetry or NullTelemetry()

    # -- intake -------------------------------------------------------------------------

    def ingest(self, event: DecodedEvent, *, source: str, received_at: datetime) -> IntakeResult:
        """Process one decoded projection_update event; every outcome is recorded."""
        try:
            update = parse_projection_update(event.payload)
        except ValidationError as exc:
            return self._reject(event, _key_of_invalid(event), str(exc), source, received_at)
        result = in_transaction(
            self._uow_factory,
            lambda uow: self._ingest_in(uow, update, event, source, received_at),
            attempts=self._attempts,
            on_retry=_log_retry,
        )
        # Reported after commit, so a retried transaction is counted once.
        for (from_status, to_status), count in result.transitions.items():
            self._telemetry.run_transition(from_status, to_status, count)
        return result

    def _ingest_in(
        self,
        uow: UnitOfWork,
        update: ProjectionUpdate,
        event: DecodedEvent,
        source: str,
        received_at: datetime,
    ) -> IntakeResult:
        key = update.event_key
        dataset = uow.intake.dataset_for_update(update.dataset_id)
        if dataset is None or not dataset.enabled:
            reason = "unknown dataset" if dataset is None else "dataset is disabled"
            return self._record_rejection(
                uow, event, key, f"{reason} {update.dataset_id!r}", source, received_at
            )
        update_id = uuid4()
        inserted = uow.intake.insert_update(
            NewDatasetUpdate(
                id=update_id,
                event_key=key,
                dataset_id=update.dataset_id,
                bucket=update.bucket or dataset.bucket,
                version_manifest_path=update.version_manifest_path,
                projections_path=update.projections_path,
                occurred_at=update.occurred_at,
                received_at=received_at,
                payload=event.payload,
            )
        )
        now = self._clock.now()
        if not inserted:
            self._record(uow, event, key, EventStatus.DUPLICATE, None, source, received_at, now)
            logger.info(
                log_events.ON_DUPLICATE_EVENT,
                message="duplicate projection update",
                event_key=key,
                dataset_id=update.dataset_id,
            )
            return IntakeResult(EventStatus.DUPLICATE, key)

        metrics = uow.intake.lock_dependent_metrics(update.dataset_id)
        plan = self._plan(uow, metrics, now)
        self._apply(uow, plan, now)
        self._record(uow, event, key, EventStatus.PROCESSED, None, source, received_at, now)
        logger.info(
            log_events.ON_PROJECTION_UPDATE,
            message="projection update processed",
            dataset_id=update.dataset_id,
            event_key=key,
            metrics=len(metrics),
            queued=len(plan.queued),
            waiting=len(plan.waiting),
        )
        return IntakeResult(
            EventStatus.PROCESSED,
            key,
            update_id=update_id,
            queued_runs=tuple(r.run_id for r in plan.queued),
            pending_runs=tuple(r.run_id for r in plan.waiting),
            transitions=_transitions(plan),
        )

    def _plan(self, uow: UnitOfWork, metrics: Sequence[MetricForIntake], now: datetime) -> _Plan:
        plan = _Plan()
        if not metrics:
            return plan
        inputs = uow.intake.load_inputs(metrics)
        evaluations = [
            (mi, evaluate_metric(mi.metric.trigger_policy, mi.metric.required_days, mi.facts, now))
            for mi in inputs
        ]
        ready = [(mi, ev) for mi, ev in evaluations if ev.outcome is Outcome.READY]
        already_run = uow.intake.existing_automatic_fingerprints(
            [(mi.metric.id, _fingerprint(ev)) for mi, ev in ready]
        )
        for mi, ev in evaluations:
            if ev.outcome is Outcome.READY:
                if (mi.metric.id, _fingerprint(ev)) not in already_run:
                    plan.queued.append(
                        self._queued_run(mi, ev.candidates, RunTrigger.AUTOMATIC, now)
                    )
            elif ev.outcome is Outcome.WAITING:
                plan.waiting.append(_waiting_run(mi, ev))
        return plan

    def _apply(self, uow: UnitOfWork, plan: _Plan, now: datetime) -> None:
        if plan.waiting:
            uow.intake.save_waiting(plan.waiting, now)
        if plan.queued:
            uow.intake.save_queued(plan.queued, now)
            uow.intake.notify_queued()
        for run in plan.queued:
            logger.info(
                log_events.ON_RUN_QUEUED,
                message="run queued",
                run_id=str(run.run_id),
                metric_code=run.payload["metricCode"],
                trigger=run.trigger.value,
            )
        for waiting in plan.waiting:
            logger.debug(
                log_events.ON_RUN_PENDING,
                message="run waiting for inputs",
                run_id=str(waiting.run_id),
                metric_id=waiting.metric_id,
                waiting_for=[ds for ds, held in waiting.held.items() if held is None],
            )

    def _queued_run(
        self,
        mi: MetricInputs,
        candidates: dict[str, UpdateVersion],
        trigger: RunTrigger,
        now: datetime,
    ) -> QueuedRun:
        reuse_pending = trigger is RunTrigger.AUTOMATIC and mi.pending_run_id is not None
        run_id = mi.pending_run_id if reuse_pending and mi.pending_run_id else uuid4()
        consumed = {ds: mi.updates[c.id] for ds, c in candidates.items()}
        payload = build_run_request(
            run_id=run_id,
            attempt=1,
            requested_at=now,
            metric_code=mi.metric.code,
            expression_type=mi.metric.expression_type,
            expression_json=mi.metric.expression_json,
            dependencies=mi.dependencies,
            consumed=consumed,
            output_base_path=self._output_base_path(mi.metric.code),
        )
        return QueuedRun(
            run_id=run_id,
            metric_id=mi.metric.id,
            is_new_run=not reuse_pending,
            trigger=trigger,
            fingerprint=inputs_fingerprint(candidates),
            payload=payload,
            lineage={ds: c.id for ds, c in candidates.items()},
        )

    # -- manual runs --------------------------------------------------------------------

    def request_manual_run(self, metric_code: str) -> UUID:
        """A run on the freshest update of each input, fresh or not; never deduplicated."""
        run_id = in_transaction(
            self._uow_factory,
            lambda uow: self._manual_run_in(uow, metric_code),
            attempts=self._attempts,
            on_retry=_log_retry,
        )
        self._telemetry.run_transition(NEW_RUN, RunStatus.QUEUED.value)
        return run_id

    def _manual_run_in(self, uow: UnitOfWork, metric_code: str) -> UUID:
        metric = uow.intake.lock_metric_by_code(metric_code)
        if metric is None:
            raise NotFound(f"unknown metric {metric_code!r}")
        (mi,) = uow.intake.load_inputs([metric])
        missing = [f.dataset_id for f in mi.facts if f.freshest is None]
        if missing:
            raise Conflict(
                f"metric {metric_code!r} cannot run: no update yet for {', '.join(missing)}"
            )
        now = self._clock.now()
        # A manual run ignores freshness and history: the operator asked for it explicitly.
        latest = {f.dataset_id: f.freshest for f in mi.facts if f.freshest is not None}
        run = self._queued_run(mi, latest, RunTrigger.MANUAL, now)
        uow.intake.save_queued([run], now)
        uow.intake.notify_queued()
        logger.info(
            log_events.ON_RUN_QUEUED,
            message="manual run queued",
            run_id=str(run.run_id),
            metric_code=metric_code,
            trigger="manual",
        )
        return run.run_id

    # -- read-only views (SPEC §6.3 readiness and impact) ---------------------------------

    def readiness(self, metric_code: str) -> tuple[MetricInputs, Evaluation]:
        """What the rules would decide for this metric now, without writing anything."""
        with self._uow_factory() as uow:
            metric = uow.intake.metric_by_code(metric_code)
            if metric is None:
                raise NotFound(f"unknown metric {metric_code!r}")
            (mi,) = uow.intake.load_inputs([metric])
        return mi, evaluate_metric(
            metric.trigger_policy, metric.required_days, mi.facts, self._clock.now()
        )

    def impact(self, dataset_id: str) -> list[tuple[MetricInputs, Evaluation]]:
        """If a new version of the dataset arrived now, what each dependent metric would do."""
        now = self._clock.now()
        with self._uow_factory() as uow:
            if uow.intake.dataset_for_update(dataset_id) is None:
                raise NotFound(f"unknown dataset {dataset_id!r}")
            metrics = uow.intake.dependent_metrics(dataset_id)
            inputs = uow.intake.load_inputs(metrics) if metrics else []
        hypothetical = UpdateVersion(uuid4(), dataset_id, now, now, 2**62)
        results = []
        for mi in inputs:
            facts = [
                InputFacts(f.dataset_id, hypothetical, f.last_used)
                if f.dataset_id == dataset_id
                else f
                for f in mi.facts
            ]
            results.append(
                (mi, evaluate_metric(mi.metric.trigger_policy, mi.metric.required_days, facts, now))
            )
        return results

    # -- rejections ---------------------------------------------------------------------

    def _reject(
        self, event: DecodedEvent, key: str, reason: str, source: str, received_at: datetime
    ) -> IntakeResult:
        return in_transaction(
            self._uow_factory,
            lambda uow: self._record_rejection(uow, event, key, reason, source, received_at),
            attempts=self._attempts,
        )

    def _record_rejection(
        self,
        uow: UnitOfWork,
        event: DecodedEvent,
        key: str,
        reason: str,
        source: str,
        received_at: datetime,
    ) -> IntakeResult:
        now = self._clock.now()
        self._record(uow, event, key, EventStatus.REJECTED, reason, source, received_at, now)
        logger.warning(
            log_events.ON_EVENT_REJECTED,
            message="projection update rejected",
            event_key=key,
            error=reason,
        )
        return IntakeResult(EventStatus.REJECTED, key, error=reason)

    @staticmethod
    def _record(
        uow: UnitOfWork,
        event: DecodedEvent,
        key: str,
        status: EventStatus,
        error: str | None,
        source: str,
        received_at: datetime,
        now: datetime,
    ) -> None:
        uow.events.record(
            EventRecord(
                event_key=key,
                event_type=PROJECTION_UPDATE,
                status=status,
                source=source,
                received_at=received_at,
                payload=event.payload,
                # the raw body is what a replay re-reads; processed events keep the payload only
                raw_body=event.raw_body if status is EventStatus.REJECTED else None,
                error=error,
            ),
            processed_at=now,
        )


def _fingerprint(evaluation: Evaluation) -> str:
    return inputs_fingerprint(evaluation.candidates)


def _transitions(plan: _Plan) -> dict[tuple[str, str], int]:
    pending, queued = RunStatus.PENDING_DEPENDENCIES.value, RunStatus.QUEUED.value
    counted: Counter[tuple[str, str]] = Counter()
    for run in plan.queued:
        counted[(NEW_RUN if run.is_new_run else pending, queued)] += 1
    for waiting in plan.waiting:
        if waiting.is_new_run:
            counted[(NEW_RUN, pending)] += 1
    return dict(counted)


def _waiting_run(mi: MetricInputs, ev: Evaluation) -> WaitingRun:
    held = {
        ds: HeldUpdate(u.id, u.received_at) if u is not None else None
        for ds, u in ev.held(mi.metric.trigger_policy).items()
    }
    run_id = mi.pending_run_id or uuid4()
    return WaitingRun(run_id, mi.metric.id, mi.pending_run_id is None, held)


def _key_of_invalid(event: DecodedEvent) -> str:
    dataset_id = event.payload.get("dataset_id")
    manifest = event.payload.get("version_manifest_path")
    if isinstance(dataset_id, str) and dataset_id and isinstance(manifest, str) and manifest:
        return f"{dataset_id}:{manifest}"
    return body_digest_key(PROJECTION_UPDATE, event.raw_body)


def _log_retry(attempt: int, error: TransientDatabaseError) -> None:
    logger.warning(
        log_events.ON_TRANSACTION_RETRY,
        message="transient conflict; retrying",
        attempt=attempt,
        error=str(error),
    )
