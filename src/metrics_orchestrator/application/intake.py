"""Projection-update intake and run formation (SPEC §5.1-§5.4, §7).

`ingest_many` takes up to `MAX_BATCH` updates (`ingest` is a batch of one) in ONE transaction
with exactly the outcome of processing them one by one, in arrival order (SPEC §7):
1. one round trip (`record_and_load`): lock the updates' datasets, then their enabled dependent
   metrics, then those metrics' pending runs, each in id order (the global order of every
   intake transaction, so concurrent batches wait and never deadlock); record the updates
   (`ON CONFLICT (event_key) DO NOTHING`: a second copy is a duplicate); load every dependent
   metric's facts (freshest input updates, the inputs of its last automatic run, its pending
   run);
2. `IntakeState` (application/intake_state.py) takes the inserted updates in arrival order and
   asks the domain (`freshest`, `evaluate_metric`) what each does, each seeing what the ones
   before it decided;
3. one pipeline writes the decisions set-based (queued runs with lineage, fingerprint and the
   complete request payload: the outbox; pending runs with what they hold) and one
   `event_log` row per event.
If the database refuses the batch's writes, the batch is rolled back to a savepoint and done
again one update per savepoint: the refused one is recorded as rejected, the others are kept.
Nothing is published here; the dispatcher does that after commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import structlog

from metrics_orchestrator.application.incidents import IncidentBook
from metrics_orchestrator.application.intake_state import ArrivalPlan, IntakeState
from metrics_orchestrator.application.ports import (
    Clock,
    DataRefused,
    UnitOfWork,
    UnitOfWorkFactory,
    in_transaction,
)
from metrics_orchestrator.application.ports.events import EventRecord, EventStatus
from metrics_orchestrator.application.ports.intake import (
    BatchFacts,
    IntakeWrites,
    MetricInputs,
    QueuedRun,
    QueuedRunWrite,
    RecordedUpdate,
    RecordedUpdates,
    RecordOutcome,
)
from metrics_orchestrator.application.telemetry import NEW_RUN, NullTelemetry, Telemetry
from metrics_orchestrator.domain import log_events
from metrics_orchestrator.domain.errors import Conflict, DomainError, NotFound, ValidationError
from metrics_orchestrator.domain.events import PROJECTION_UPDATE, DecodedEvent
from metrics_orchestrator.domain.messages.run_requested import build_run_request
from metrics_orchestrator.domain.messaging import MAX_BATCH as MAX_BATCH
from metrics_orchestrator.domain.model import (
    DatasetUpdate,
    RunStatus,
    RunTrigger,
    check_metric_can_run,
)
from metrics_orchestrator.domain.orchestration import (
    Evaluation,
    InputFacts,
    evaluate_metric,
    inputs_fingerprint,
)

logger = structlog.get_logger(__name__)


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


@dataclass(frozen=True, slots=True)
class _Received:
    """One event of a batch: its key and the update it announces, or why it cannot be one."""

    event: DecodedEvent
    key: str
    update: DatasetUpdate | None
    error: str | None = None


# An event of a batch and the moment it is processed (its runs' and event row's time).
_Arrival = tuple[_Received, datetime]


@dataclass(frozen=True, slots=True)
class _Context:
    source: str
    received_at: datetime
    # the inbox entry a replay came from: rejected again, that entry is updated
    replay_of: int | None = None


class IntakeService:
    """The heart of the product: updates in, runs out (SPEC §5.1-§5.4)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        output_base_path: Callable[[str], str],
        *,
        transaction_attempts: int = 5,
        telemetry: Telemetry | None = None,
        incidents: IncidentBook | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        # rejected events open incidents; new versions may end a dataset's lateness (SPEC §9)
        self._incidents = incidents or IncidentBook()
        self._clock = clock
        self._output_base_path = output_base_path
        self._attempts = transaction_attempts
        self._telemetry = telemetry or NullTelemetry()

    # -- intake -------------------------------------------------------------------------

    def ingest(
        self,
        event: DecodedEvent,
        *,
        source: str,
        received_at: datetime,
        replay_of: int | None = None,
    ) -> IntakeResult:
        """Process one decoded projection_update event; every outcome is recorded (a replay
        rejected again updates the inbox entry `replay_of` instead of adding one)."""
        (result,) = self.ingest_many(
            [event], source=source, received_at=received_at, replay_of=replay_of
        )
        return result

    def ingest_many(
        self,
        events: Sequence[DecodedEvent],
        *,
        source: str,
        received_at: datetime,
        replay_of: int | None = None,
    ) -> list[IntakeResult]:
        """Process up to `MAX_BATCH` events in one transaction; one result per event, in order.

        The outcome is the one-by-one outcome (SPEC §7): the events are evaluated in arrival
        order, each seeing what the ones before it recorded and queued, so a single-input
        metric runs on every new version the batch brings. An invalid body, an unknown
        dataset, a duplicate or an update the database refuses concerns only that event.
        """
        if not 1 <= len(events) <= MAX_BATCH:
            raise ValueError(f"between 1 and {MAX_BATCH} events per batch, got {len(events)}")
        received = [_receive(event, received_at) for event in events]
        context = _Context(source, received_at, replay_of)
        results = in_transaction(
            self._uow_factory,
            lambda uow: _recorded(uow, self._ingest_batch_in(uow, received, context)),
            attempts=self._attempts,
            on_retry=_log_retry,
            telemetry=self._telemetry,
        )
        # Logged after commit: a log write that blocks (a pipe nobody reads) never does so
        # holding the batch's locks.
        for item, result in zip(received, results, strict=True):
            _log_outcome(item, result)
        return results

    def _ingest_batch_in(
        self, uow: UnitOfWork, received: Sequence[_Received], context: _Context
    ) -> list[IntakeResult]:
        arrivals = [(item, self._clock.now()) for item in received]
        if len(arrivals) > 1:
            try:
                with uow.savepoint():
                    return self._ingest_together(uow, arrivals, context)
            except (DataRefused, DomainError):
                pass  # one of them cannot be stored: find which, one at a time
            # Every lock the batch needs, again up front and in the global order (datasets,
            # then metrics, then pending runs, each by id): taking them event by event
            # would let two batches each hold what the other waits for.
            datasets = sorted({item.update.dataset_id for item, _ in arrivals if item.update})
            if datasets:
                uow.intake.lock_for_batch(datasets)
        return [self._ingest_alone(uow, arrival, context) for arrival in arrivals]

    def _ingest_alone(self, uow: UnitOfWork, arrival: _Arrival, context: _Context) -> IntakeResult:
        """One event, in a savepoint: refused, it is rolled back and rejected."""
        try:
            with uow.savepoint():
                (result,) = self._ingest_together(uow, [arrival], context)
                return result
        except (DataRefused, DomainError) as exc:
            item, now = arrival
            result = _rejection(item, f"the update cannot be stored: {exc}")
            record = _event_record(item, result, context)
            uow.events.record(record, now)
            self._incidents.events_recorded(uow, [record], now)
            return result

    def _ingest_together(
        self, uow: UnitOfWork, arrivals: Sequence[_Arrival], context: _Context
    ) -> list[IntakeResult]:
        """Events in arrival order, each deciding as if alone; written together at the end."""
        announced = {
            n: (item.update, item.event.payload)
            for n, (item, _) in enumerate(arrivals)
            if item.update is not None
        }
        # a batch of bodies that are no updates at all has nothing to lock or record
        facts = uow.intake.record_and_load(list(announced.values())) if announced else _no_facts()
        found = dict(zip(announced, facts.recorded.outcomes, strict=True))
        state = self._state(uow, facts)
        results = []
        for n, (item, now) in enumerate(arrivals):
            if item.update is None:
                result = _rejection(item, item.error or "invalid event")
            else:
                metrics = facts.dependents.get(item.update.dataset_id, [])
                result = self._arrive(state, item.update, now, found[n], metrics)
            results.append(result)
        writes = state.writes()
        records = [
            (_event_record(item, r, context), now)
            for (item, now), r in zip(arrivals, results, strict=True)
        ]
        with uow.pipelined():
            uow.intake.save(writes)
            uow.events.record_many(records)
        at = arrivals[-1][1]
        self._incidents.events_recorded(uow, [record for record, _ in records], at)
        updated = [u.dataset_id for u, _ in announced.values()]
        self._incidents.datasets_updated(uow, updated, at)
        return results

    def _state(self, uow: UnitOfWork, facts: BatchFacts) -> IntakeState:
        """The intake state of a batch, as loaded: automatic runs are formed on it."""
        return IntakeState(
            facts.inputs,
            facts.recorded.freshest_before,
            already_run=uow.intake.existing_automatic_fingerprints,
            make_run=lambda mi, candidates, fingerprint, at, reuse: self._queued_run(
                mi, candidates, RunTrigger.AUTOMATIC, at, reuse=reuse, fingerprint=fingerprint
            ),
        )

    @staticmethod
    def _arrive(
        state: IntakeState,
        update: DatasetUpdate,
        now: datetime,
        recorded: RecordedUpdate,
        metrics: Sequence[str],
    ) -> IntakeResult:
        """One update recorded (or not), and what its dependent metrics do now."""
        if recorded.outcome in (RecordOutcome.UNKNOWN_DATASET, RecordOutcome.DISABLED_DATASET):
            reason = f"{recorded.outcome.value} {update.dataset_id!r}"
            return IntakeResult(EventStatus.REJECTED, update.event_key, error=reason)
        if recorded.outcome is RecordOutcome.DUPLICATE or recorded.update is None:
            return IntakeResult(EventStatus.DUPLICATE, update.event_key)
        arrived = state.arrive(recorded.update, metrics, now)
        return IntakeResult(
            EventStatus.PROCESSED,
            update.event_key,
            update_id=recorded.update.id,
            queued_runs=tuple(r.run_id for r in arrived.queued),
            pending_runs=tuple(r.run_id for r in arrived.waiting),
            transitions=_transitions(arrived),
        )

    def record_output_in(
        self, uow: UnitOfWork, output: DatasetUpdate, payload: Mapping[str, Any], now: datetime
    ) -> IntakeResult:
        """A version of a metric's output (SPEC §8), in the transaction of the completion that
        made it: recorded, and its dependents' runs formed by the rules of a projection update
        (§5). The completion's own event row is the feedback's; a second copy of the same
        output records nothing."""
        facts = uow.intake.record_and_load([(output, payload)])
        (recorded,) = facts.recorded.outcomes
        state = self._state(uow, facts)
        dependents = facts.dependents.get(output.dataset_id, [])
        result = self._arrive(state, output, now, recorded, dependents)
        uow.intake.save(state.writes())
        return _recorded(uow, [result])[0]

    def _queued_run(
        self,
        mi: MetricInputs,
        candidates: dict[str, DatasetUpdate],
        trigger: RunTrigger,
        now: datetime,
        *,
        reuse: UUID | None = None,
        fingerprint: str | None = None,
    ) -> QueuedRun:
        """`reuse`: the pending run that becomes this run."""
        run_id = reuse or uuid4()
        payload = build_run_request(
            run_id=run_id,
            attempt=1,
            requested_at=now,
            metric_code=mi.metric.code,
            expression_type=mi.metric.expression_type,
            expression_json=mi.metric.expression_json,
            dependencies=mi.metric.dependencies,
            consumed=candidates,
            output_base_path=self._output_base_path(mi.metric.code),
        )
        return QueuedRun(
            run_id=run_id,
            metric_id=mi.metric.id,
            is_new_run=reuse is None,
            trigger=trigger,
            fingerprint=fingerprint or inputs_fingerprint(candidates),
            payload=payload,
            lineage={ds: c.id for ds, c in candidates.items()},
            definition_version=mi.metric.definition_version,
        )

    # -- manual runs --------------------------------------------------------------------

    def request_manual_run(self, metric_code: str) -> UUID:
        """A run on the freshest update of each input, fresh or not; never deduplicated."""
        return in_transaction(
            self._uow_factory,
            lambda uow: self._manual_run_in(uow, metric_code),
            attempts=self._attempts,
            on_retry=_log_retry,
            telemetry=self._telemetry,
        )

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
        uow.intake.save(IntakeWrites(queued=[QueuedRunWrite(run, queued_at=now, created_at=now)]))
        uow.changes.created(RunStatus.QUEUED)
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
        # an update that would be the freshest: received now, after every recorded one
        hypothetical = DatasetUpdate(uuid4(), "", dataset_id, "", "", "", now, now, 2**62)
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


def _receive(event: DecodedEvent, received_at: datetime) -> _Received:
    try:
        announced = event.projection_update()
    except ValidationError as exc:
        # its key: natural when its parts are valid identifiers/paths, else the body's
        # digest (SPEC §5.1)
        return _Received(event, event.event_key, None, str(exc))
    return _Received(event, announced.event_key, announced.dataset_update(received_at))


def _no_facts() -> BatchFacts:
    return BatchFacts(dependents={}, recorded=RecordedUpdates({}, []), inputs=[])


def _rejection(item: _Received, reason: str) -> IntakeResult:
    return IntakeResult(EventStatus.REJECTED, item.key, error=reason)


def _event_record(item: _Received, result: IntakeResult, context: _Context) -> EventRecord:
    rejected = result.status is EventStatus.REJECTED
    return EventRecord(
        event_key=item.key,
        event_type=PROJECTION_UPDATE,
        status=result.status,
        source=context.source,
        received_at=context.received_at,
        payload=item.event.payload,
        # the raw body is what a replay re-reads; processed events keep the payload only
        raw_body=item.event.raw_body if rejected else None,
        error=result.error,
        replaces=context.replay_of if rejected else None,
    )


def _log_outcome(item: _Received, result: IntakeResult) -> None:
    dataset_id = item.update.dataset_id if item.update else None
    if result.status is EventStatus.REJECTED:
        logger.warning(
            log_events.ON_EVENT_REJECTED,
            message="projection update rejected",
            event_key=item.key,
            error=result.error,
        )
    elif result.status is EventStatus.DUPLICATE:
        logger.info(
            log_events.ON_DUPLICATE_EVENT,
            message="duplicate projection update",
            event_key=item.key,
            dataset_id=dataset_id,
        )
    else:
        logger.info(
            log_events.ON_PROJECTION_UPDATE,
            message="projection update processed",
            dataset_id=dataset_id,
            event_key=item.key,
            # the runs it queued or left waiting, by id: one line per update, not per run
            # (a line per run was a tenth of the intake's CPU at fan-out 10)
            queued_runs=[str(run_id) for run_id in result.queued_runs],
            waiting_runs=[str(run_id) for run_id in result.pending_runs],
        )


def _recorded(uow: UnitOfWork, results: list[IntakeResult]) -> list[IntakeResult]:
    """The batch's run transitions, recorded once its savepoints are settled (a batch
    written together and then refused is not counted; its one-by-one retry is)."""
    for result in results:
        for (from_status, to_status), count in result.transitions.items():
            uow.changes.transition(from_status, to_status, count)
    return results


def _transitions(plan: ArrivalPlan) -> dict[tuple[str, str], int]:
    pending, queued = RunStatus.PENDING_DEPENDENCIES.value, RunStatus.QUEUED.value
    counted: Counter[tuple[str, str]] = Counter()
    for run in plan.queued:
        counted[(NEW_RUN if run.is_new_run else pending, queued)] += 1
    for waiting in plan.waiting:
        if waiting.is_new_run:
            counted[(NEW_RUN, pending)] += 1
    return dict(counted)


def _log_retry(attempt: int, error: Exception) -> None:
    logger.warning(
        log_events.ON_TRANSACTION_RETRY,
        message="transient conflict; retrying",
        attempt=attempt,
        error=str(error),
    )
