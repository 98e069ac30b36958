"""Worker feedback (SPEC §4.2, §5.5): started / heartbeat / completed events applied to runs.

Everything that changes a run locks its row, so any number of replicas may process feedback
side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

import structlog

from metrics_orchestrator.application.incidents import IncidentBook
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventRecord, EventStatus
from metrics_orchestrator.application.ports.runs import LockedRun, RunCompletion
from metrics_orchestrator.application.telemetry import NullTelemetry, Telemetry
from metrics_orchestrator.application.transactions import transact as _transact
from metrics_orchestrator.domain import log_events
from metrics_orchestrator.domain.errors import Conflict, IllegalTransition, ValidationError
from metrics_orchestrator.domain.events import DecodedEvent, body_digest_key
from metrics_orchestrator.domain.feedback import (
    WorkerFeedback,
    late_heartbeat_key,
    parse_feedback,
    status_change,
)
from metrics_orchestrator.domain.messages.run_completed import RunCompleted
from metrics_orchestrator.domain.messages.run_heartbeat import RunHeartbeat
from metrics_orchestrator.domain.messages.run_started import RunStarted
from metrics_orchestrator.domain.metric_outputs import data_time, output_version
from metrics_orchestrator.domain.model import (
    Cause,
    RunStatus,
    StatusChange,
    change_for,
    check_rows_changed,
)
from metrics_orchestrator.domain.retries import supersedes_retry
from metrics_orchestrator.domain.status_reasons import completion_reason, superseded_reason

log = structlog.get_logger(__name__)


# --- worker feedback (SPEC §4.2, §5.5) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedbackOutcome:
    """What handling one worker event did; `run_status` is the run's status afterwards."""

    status: EventStatus
    event_key: str
    event_type: str
    run_id: UUID | None = None
    reason: str | None = None
    previous_status: RunStatus | None = None
    run_status: RunStatus | None = None
    # the automatic retry a late success canceled (SPEC §5.5)
    superseded_retry: UUID | None = None


@dataclass(frozen=True, slots=True)
class _ReceivedFeedback:
    event: DecodedEvent
    key: str
    source: str
    received_at: datetime
    replay_of: int | None = None


class FeedbackService:
    """Applies started / heartbeat / completed events to runs, exactly once per message body."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        intake: IntakeService,
        *,
        telemetry: Telemetry | None = None,
        incidents: IncidentBook | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        # a success ends its metric's incidents; a rejected event opens one (SPEC §9)
        self._incidents = incidents or IncidentBook()
        # a success's output is a new version of its metric's pseudo-dataset (SPEC §8)
        self._intake = intake
        self._telemetry = telemetry or NullTelemetry()

    def handle(
        self,
        decoded: DecodedEvent,
        *,
        source: str,
        received_at: datetime,
        replay_of: int | None = None,
    ) -> FeedbackOutcome:
        """Apply one worker event and record its outcome in the event log, in one transaction.

        `decoded` must be a worker event type (ValueError otherwise): routing is the caller's.
        `replay_of`: the inbox entry this is a replay of (rejected again, that entry is updated).
        """
        received = _ReceivedFeedback(
            event=decoded,
            key=body_digest_key(decoded.event_type, decoded.raw_body),
            source=source,
            received_at=received_at,
            replay_of=replay_of,
        )
        try:
            feedback = parse_feedback(decoded.event_type, decoded.payload)
        except ValidationError as exc:
            invalid = str(exc)
            outcome = _transact(
                self._uow_factory,
                lambda uow: self._finish(uow, received, EventStatus.REJECTED, reason=invalid),
            )
        else:
            outcome = _transact(
                self._uow_factory,
                lambda uow: self._apply(uow, received, feedback),
                self._telemetry,
            )
        _log_feedback(outcome)
        return outcome

    def _apply(
        self, uow: UnitOfWork, received: _ReceivedFeedback, feedback: WorkerFeedback
    ) -> FeedbackOutcome:
        run = uow.runs.lock(feedback.run_id)
        if run is None:
            return self._finish(
                uow, received, EventStatus.REJECTED, reason=f"unknown run {feedback.run_id}"
            )
        # Checked under the run's row lock, so a copy handled concurrently by another
        # replica is seen once the first commits.
        if uow.events.was_processed(received.key):
            return self._finish(uow, received, EventStatus.DUPLICATE, run=run)
        try:
            change = status_change(feedback, run.status)
            _check_metric_code(feedback, run)
        except (IllegalTransition, Conflict) as exc:
            late_key = late_heartbeat_key(feedback, run.status)
            if late_key is not None:
                late = replace(received, key=late_key)
                return self._late_heartbeat(uow, late, run, refusal=str(exc))
            return self._finish(uow, received, EventStatus.REJECTED, run=run, reason=str(exc))
        self._write(uow, feedback, run, change, received.received_at)
        uow.changes.moved(change)
        superseded = None
        if isinstance(feedback, RunCompleted):
            superseded = self._supersede_retry(uow, run, feedback)
            if feedback.succeeded:
                self._record_output(uow, run, feedback, received)
                self._incidents.metric_succeeded(uow, run.metric_code, run.id, self._clock.now())
        return self._finish(
            uow,
            received,
            EventStatus.PROCESSED,
            run=run,
            target=change.target,
            superseded=superseded,
        )

    def _late_heartbeat(
        self, uow: UnitOfWork, received: _ReceivedFeedback, run: LockedRun, *, refusal: str
    ) -> FeedbackOutcome:
        """One event_log entry per ended run for all its late heartbeats (issue 20): the
        first is rejected with the reason, the rest are duplicates of it."""
        if uow.events.latest_with_key(received.key) is not None:
            return self._finish(uow, received, EventStatus.DUPLICATE, run=run)
        reason = f"{refusal}; later heartbeats of this run are recorded as duplicates of this one"
        return self._finish(uow, received, EventStatus.REJECTED, run=run, reason=reason)

    def _write(
        self,
        uow: UnitOfWork,
        feedback: WorkerFeedback,
        run: LockedRun,
        change: StatusChange,
        received_at: datetime,
    ) -> None:
        now, runs = self._clock.now(), uow.runs
        if isinstance(feedback, RunStarted):
            changed = runs.record_start(
                run.id,
                change,
                started_at=feedback.started_at or received_at,
                seen_at=received_at,
                at=now,
            )
        elif isinstance(feedback, RunHeartbeat):
            changed = runs.record_heartbeat(
                run.id,
                change,
                ts=feedback.ts,
                progress=feedback.progress,
                seen_at=received_at,
                at=now,
            )
        else:
            completion = _completion(feedback, run, received_at)
            if feedback.succeeded:
                completion = replace(
                    completion, data_time=data_time(uow.intake.inputs_behind(run.id))
                )
            changed = runs.record_completion(run.id, change, completion, at=now)
        check_rows_changed(changed, 1, change)

    def _record_output(
        self, uow: UnitOfWork, run: LockedRun, feedback: RunCompleted, received: _ReceivedFeedback
    ) -> None:
        """The output of a success becomes a version of `metric:X`, and X's dependents are
        formed from it exactly as from a projection update, in this transaction (SPEC §8)."""
        output = uow.intake.run_output(run.id, feedback.output_manifest)
        version = output_version(output, received.received_at) if output else None
        if version is not None:
            self._intake.record_output_in(uow, version, received.event.payload, self._clock.now())

    def _supersede_retry(
        self, uow: UnitOfWork, run: LockedRun, feedback: RunCompleted
    ) -> UUID | None:
        """A late SUCCESS cancels the timed-out run's retry if it was not dispatched yet."""
        if run.status is not RunStatus.TIMED_OUT:
            return None
        retry = uow.runs.lock_automatic_retry(run.id)
        if retry is None or not supersedes_retry(run.status, feedback.succeeded, retry.status):
            return None
        change = change_for(Cause.CANCEL, retry.status)
        reason = superseded_reason(run.attempt)
        check_rows_changed(
            uow.runs.cancel(retry.id, change, reason=reason, at=self._clock.now()), 1, change
        )
        uow.changes.moved(change)
        return retry.id

    def _finish(
        self,
        uow: UnitOfWork,
        received: _ReceivedFeedback,
        status: EventStatus,
        *,
        run: LockedRun | None = None,
        target: RunStatus | None = None,
        reason: str | None = None,
        superseded: UUID | None = None,
    ) -> FeedbackOutcome:
        record = EventRecord(
            event_key=received.key,
            event_type=received.event.event_type,
            status=status,
            source=received.source,
            received_at=received.received_at,
            payload=received.event.payload,
            raw_body=received.event.raw_body,
            error=reason,
            replaces=received.replay_of if status is EventStatus.REJECTED else None,
        )
        now = self._clock.now()
        uow.events.record(record, processed_at=now)
        self._incidents.events_recorded(uow, [record], now)
        return FeedbackOutcome(
            status=status,
            event_key=received.key,
            event_type=received.event.event_type,
            run_id=run.id if run else None,
            reason=reason,
            previous_status=run.status if run else None,
            run_status=target or (run.status if run else None),
            superseded_retry=superseded,
        )


def _check_metric_code(feedback: WorkerFeedback, run: LockedRun) -> None:
    """A completion naming another metric comes from a confused worker: do not trust it."""
    if isinstance(feedback, RunCompleted) and feedback.metric_code not in (None, run.metric_code):
        raise Conflict(
            f"metricCode {feedback.metric_code!r} does not match run {run.id}, "
            f"which computes {run.metric_code!r}"
        )


def _completion(feedback: RunCompleted, run: LockedRun, received_at: datetime) -> RunCompletion:
    reason = completion_reason(run.status, feedback.succeeded)
    return RunCompletion(
        status=feedback.target_status,
        progress=1.0 if feedback.succeeded else None,
        completed_at=received_at,
        version_ts=feedback.version_ts,
        output_manifest=feedback.output_manifest,
        row_count=feedback.row_count,
        error=feedback.error,
        status_reason=reason,
        # a success has nothing to retry; only a failure's word on it is kept
        retryable=feedback.retryable or feedback.succeeded,
    )


def _log_feedback(outcome: FeedbackOutcome) -> None:
    context = {
        "run_id": str(outcome.run_id) if outcome.run_id else None,
        "event_type": outcome.event_type,
        "event_key": outcome.event_key,
    }
    if outcome.status is EventStatus.REJECTED:
        log.warning(
            log_events.ON_EVENT_REJECTED,
            message="worker event rejected",
            reason=outcome.reason,
            **context,
        )
    elif outcome.status is EventStatus.DUPLICATE:
        log.info(log_events.ON_DUPLICATE_EVENT, message="worker event already processed", **context)
    elif (
        outcome.run_status is RunStatus.RUNNING and outcome.previous_status is not RunStatus.RUNNING
    ):
        log.info(log_events.ON_RUN_STARTED, message="run started", **context)
    elif outcome.run_status is RunStatus.RUNNING:
        log.debug(log_events.ON_RUN_HEARTBEAT, message="run alive", **context)
    else:
        # a worker's failure is something to look at; a success is routine
        level = log.warning if outcome.run_status is RunStatus.FAILED else log.info
        level(
            log_events.ON_RUN_COMPLETED,
            message=f"run {outcome.run_status}",
            status=str(outcome.run_status),
            previous_status=str(outcome.previous_status),
            **context,
        )
    if outcome.superseded_retry is not None:
        log.info(
            log_events.ON_RUN_CANCELED,
            message="retry canceled: the attempt it retries succeeded late",
            run_id=str(outcome.superseded_retry),
            retry_of=context["run_id"],
        )
