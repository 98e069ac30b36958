"""Projection-update intake and run formation (SPEC §5.1-§5.4).

One update is processed as:
1. record the update (`ON CONFLICT (event_key) DO NOTHING`: a second copy is a duplicate) and,
   if it is new, let the domain's `freshest` decide whether it is its dataset's freshest;
2. lock the enabled metrics that depend on its dataset, in id order, and their pending runs;
3. load, for all of them at once, the freshest update of every input and the update their
   last automatic run used;
4. let the domain (`evaluate_metric`) decide per metric: ready, waiting or unchanged;
5. write the decisions set-based: queued runs with lineage, fingerprint and the complete
   request payload (the outbox), and pending runs with what they hold.
Nothing is published here; the dispatcher does that after commit.

`ingest_many` processes up to `MAX_BATCH` updates in ONE transaction with exactly the outcome
of processing them one by one, in arrival order (SPEC §7): it first locks everything any of
them can touch (their datasets, then their dependent metrics and pending runs, each in id
order: the same global order as every other intake transaction, so concurrent batches cannot
deadlock), then runs the five steps above for each update in turn, each seeing the effects
of the ones before it. Each update runs in a savepoint of its own: one the database refuses
to store is rolled back alone and recorded as rejected; the others are kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

import structlog

from metrics_orchestrator.application import log_events
from metrics_orchestrator.application.ports import (
    Clock,
    UnitOfWork,
    UnitOfWorkFactory,
    in_transaction,
)
from metrics_orchestrator.application.ports.events import EventRecord, EventStatus
from metrics_orchestrator.application.ports.intake import (
    HeldUpdate,
    MetricForIntake,
    MetricInputs,
    NewDatasetUpdate,
    QueuedRun,
    RecordOutcome,
    UpdateNotStorable,
    WaitingRun,
)
from metrics_orchestrator.application.telemetry import NEW_RUN, NullTelemetry, Telemetry
from metrics_orchestrator.domain.errors import Conflict, DomainError, NotFound, ValidationError
from metrics_orchestrator.domain.events import (
    PROJECTION_UPDATE,
    DecodedEvent,
    ProjectionUpdate,
)
from metrics_orchestrator.domain.model import (
    RunStatus,
    RunTrigger,
    check_metric_can_run,
    effective_time,
)
from metrics_orchestrator.domain.orchestration import (
    Evaluation,
    InputFacts,
    Outcome,
    UpdateVersion,
    evaluate_metric,
    freshest,
    inputs_fingerprint,
)
from metrics_orchestrator.domain.run_request import build_run_request

logger = structlog.get_logger(__name__)

# Most events `ingest_many` takes per transaction: an SQS receive returns at most 10 messages.
MAX_BATCH = 10


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


@dataclass(frozen=True, slots=True)
class _Received:
    """One event of a batch: its key and update, or why it cannot be one."""

    event: DecodedEvent
    key: str
    update: ProjectionUpdate | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Recorded:
    update_id: UUID
    outcome: RecordOutcome


@dataclass(frozen=True, slots=True)
class _Context:
    source: str
    received_at: datetime


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
        (result,) = self.ingest_many([event], source=source, received_at=received_at)
        return result

    def ingest_many(
        self, events: Sequence[DecodedEvent], *, source: str, received_at: datetime
    ) -> list[IntakeResult]:
        """Process up to `MAX_BATCH` events in one transaction; one result per event, in order.

        The outcome is the one-by-one outcome (SPEC §7): the events are evaluated in arrival
        order, each seeing what the ones before it recorded and queued, so a single-input
        metric runs on every new version the batch brings. An invalid body, an unknown
        dataset, a duplicate or an update the database refuses concerns only that event.
        """
        if not 1 <= len(events) <= MAX_BATCH:
            raise ValueError(f"between 1 and {MAX_BATCH} events per batch, got {len(events)}")
        received = [_receive(event) for event in events]
        context = _Context(source, received_at)
        results = in_transaction(
            self._uow_factory,
            lambda uow: self._ingest_batch_in(uow, received, context),
            attempts=self._attempts,
            on_retry=_log_retry,
        )
        # Reported after commit, so a retried transaction is counted once.
        for result in results:
            for (from_status, to_status), count in result.transitions.items():
                self._telemetry.run_transition(from_status, to_status, count)
        return results

    def _ingest_batch_in(
        self, uow: UnitOfWork, received: Sequence[_Received], context: _Context
    ) -> list[IntakeResult]:
        datasets = sorted({item.update.dataset_id for item in received if item.update})
        # Every lock the batch needs, up front and in the global order (datasets, then
        # metrics, then pending runs, each by id): taking them update by update would let
        # two batches each hold what the other waits for. What is locked here cannot change
        # before commit, so each update takes its dependents from it (no statement of its
        # own); a pending run created by an earlier update of the batch is this
        # transaction's own row.
        dependents = uow.intake.lock_for_batch(datasets) if datasets else {}
        return [self._ingest_isolated(uow, item, dependents, context) for item in received]

    def _ingest_isolated(
        self,
        uow: UnitOfWork,
        item: _Received,
        dependents: dict[str, list[MetricForIntake]],
        context: _Context,
    ) -> IntakeResult:
        """One event of the batch, in a savepoint: refused, it is rolled back and rejected."""
        now = self._clock.now()
        if item.update is None:
            return self._rejected(uow, item, item.error or "invalid event", context, now)
        try:
            with uow.intake.isolated():
                metrics = dependents.get(item.update.dataset_id, [])
                return self._ingest_in(uow, item, item.update, metrics, context, now)
        except (UpdateNotStorable, DomainError) as exc:
            reason = f"the update cannot be stored: {exc}"
            return self._rejected(uow, item, reason, context, now)

    def _ingest_in(
        self,
        uow: UnitOfWork,
        item: _Received,
        update: ProjectionUpdate,
        metrics: Sequence[MetricForIntake],
        context: _Context,
        now: datetime,
    ) -> IntakeResult:
        recorded = _record_update(uow, item, update, context.received_at)
        if recorded.outcome in (RecordOutcome.UNKNOWN_DATASET, RecordOutcome.DISABLED_DATASET):
            reason = f"{recorded.outcome.value} {update.dataset_id!r}"
            return self._rejected(uow, item, reason, context, now)
        if recorded.outcome is RecordOutcome.DUPLICATE:
            return self._duplicate(uow, item, update, context, now)
        plan = self._plan(uow, metrics, now)
        with uow.intake.pipelined():
            self._apply(uow, plan, now)
            self._record(uow, item, EventStatus.PROCESSED, None, context, now)
        logger.info(
            log_events.ON_PROJECTION_UPDATE,
            message="projection update processed",
            dataset_id=update.dataset_id,
            event_key=item.key,
            metrics=len(metrics),
            queued=len(plan.queued),
            waiting=len(plan.waiting),
        )
        return IntakeResult(
            EventStatus.PROCESSED,
            item.key,
            update_id=recorded.update_id,
            queued_runs=tuple(r.run_id for r in plan.queued),
            pending_runs=tuple(r.run_id for r in plan.waiting),
            transitions=_transitions(plan),
        )

    def _duplicate(
        self,
        uow: UnitOfWork,
        item: _Received,
        update: ProjectionUpdate,
        context: _Context,
        now: datetime,
    ) -> IntakeResult:
        self._record(uow, item, EventStatus.DUPLICATE, None, context, now)
        logger.info(
            log_events.ON_DUPLICATE_EVENT,
            message="duplicate projection update",
            event_key=item.key,
            dataset_id=update.dataset_id,
        )
        return IntakeResult(EventStatus.DUPLICATE, item.key)

    def _plan(self, uow: UnitOfWork, metrics: Sequence[MetricForIntake], now: datetime) -> _Plan:
        plan = _Plan()
        if not metrics:
            return plan
        inputs = uow.intake.load_inputs(metrics)
        evaluations = [
            (mi, evaluate_metric(mi.metric.trigger_policy, mi.metric.required_days, mi.facts, now))
            for mi in inputs
        ]
        ready = [(mi.metric.id, ev.fingerprint) for mi, ev in evaluations if ev.fingerprint]
        # SPEC §5.3: never twice automatically on the same input set
        already_run = uow.intake.existing_automatic_fingerprints(ready)
        for mi, ev in evaluations:
            if ev.fingerprint is not None:
                if (mi.metric.id, ev.fingerprint) not in already_run:
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
        check_metric_can_run(metric.code, metric.enabled)
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

    # -- the event log -------------------------------------------------------------------

    def _rejected(
        self, uow: UnitOfWork, item: _Received, reason: str, context: _Context, now: datetime
    ) -> IntakeResult:
        self._record(uow, item, EventStatus.REJECTED, reason, context, now)
        logger.warning(
            log_events.ON_EVENT_REJECTED,
            message="projection update rejected",
            event_key=item.key,
            error=reason,
        )
        return IntakeResult(EventStatus.REJECTED, item.key, error=reason)

    @staticmethod
    def _record(
        uow: UnitOfWork,
        item: _Received,
        status: EventStatus,
        error: str | None,
        context: _Context,
        now: datetime,
    ) -> None:
        uow.events.record(
            EventRecord(
                event_key=item.key,
                event_type=PROJECTION_UPDATE,
                status=status,
                source=context.source,
                received_at=context.received_at,
                payload=item.event.payload,
                # the raw body is what a replay re-reads; processed events keep the payload only
                raw_body=item.event.raw_body if status is EventStatus.REJECTED else None,
                error=error,
            ),
            processed_at=now,
        )


def _receive(event: DecodedEvent) -> _Received:
    try:
        update = event.projection_update()
    except ValidationError as exc:
        return _Received(event, _key_of_invalid(event), None, str(exc))
    return _Received(event, update.event_key, update)


def _record_update(
    uow: UnitOfWork, item: _Received, update: ProjectionUpdate, received_at: datetime
) -> _Recorded:
    """The id given to the update and what recording it found.

    An inserted update competes with its dataset's freshest so far (SPEC §5.2, decided by
    `freshest`); a winner is stored for run formation to read.
    """
    row = NewDatasetUpdate(
        id=uuid4(),
        event_key=update.event_key,
        dataset_id=update.dataset_id,
        bucket=update.bucket or None,
        version_manifest_path=update.version_manifest_path,
        projections_path=update.projections_path,
        occurred_at=update.occurred_at,
        received_at=received_at,
        effective_at=effective_time(update.occurred_at, received_at),
        payload=item.event.payload,
    )
    found = uow.intake.record_updates([row])
    ((outcome, seq),) = found.outcomes
    if outcome is RecordOutcome.INSERTED and seq is not None:
        version = UpdateVersion(row.id, row.dataset_id, row.effective_at, received_at, seq)
        if freshest([found.freshest_before.get(row.dataset_id), version]) is version:
            uow.intake.set_freshest({row.dataset_id: version.id})
    return _Recorded(row.id, outcome)


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
    # natural when its parts are valid identifiers/paths, else the body's digest (SPEC §5.1)
    return event.event_key


def _log_retry(attempt: int, error: Exception) -> None:
    logger.warning(
        log_events.ON_TRANSACTION_RETRY,
        message="transient conflict; retrying",
        attempt=attempt,
        error=str(error),
    )
