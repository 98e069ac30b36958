"""Run lifecycle use cases (SPEC §5.5-§5.7): worker feedback, the sweeper, cancel and retry.

Everything that changes a run locks its row (or skips rows others hold), so any number of
replicas may process feedback and sweep side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID, uuid4

import structlog

from metrics_orchestrator.application import log_events
from metrics_orchestrator.application.pagination import (
    check_page_size,
    cut_page,
    decode_run_cursor,
    encode_run_cursor,
)
from metrics_orchestrator.application.ports import (
    Clock,
    UnitOfWork,
    UnitOfWorkFactory,
    in_transaction,
)
from metrics_orchestrator.application.ports.events import EventRecord, EventStatus
from metrics_orchestrator.application.ports.runs import (
    AttemptSummary,
    LineageEntry,
    LockedRun,
    NewRetry,
    PendingInput,
    RunCompletion,
    RunPageKey,
    RunRepository,
    RunSummary,
    ScheduledRetry,
    TimedOutRun,
)
from metrics_orchestrator.application.telemetry import NEW_RUN, NullTelemetry, Telemetry
from metrics_orchestrator.domain.errors import (
    Conflict,
    IllegalTransition,
    NotFound,
    ValidationError,
)
from metrics_orchestrator.domain.events import DecodedEvent, body_digest_key
from metrics_orchestrator.domain.feedback import (
    RunCompleted,
    RunHeartbeat,
    RunStarted,
    WorkerFeedback,
    parse_feedback,
    status_change,
)
from metrics_orchestrator.domain.model import (
    Cause,
    MetricRun,
    RunStatus,
    StatusChange,
    change_for,
    check_metric_can_run,
    check_rows_changed,
)
from metrics_orchestrator.domain.retries import (
    RETRYABLE_STATUSES,
    check_manual_retry,
    retry_not_before,
    superseded_reason,
    supersedes_retry,
)
from metrics_orchestrator.domain.run_request import format_timestamp

log = structlog.get_logger(__name__)
T = TypeVar("T")


# status_reason codes of worker outcomes; the sweeper writes its cause ('start_timeout',
# 'heartbeat_timeout'), the dispatcher 'dispatch_failed', cancel the operator's reason.
REASON_WORKER_FAILURE = "worker_failure"
REASON_COMPLETED_AFTER_TIMEOUT = "completed_after_timeout"


# --- what the repository reads and writes -------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunDetail:
    run: MetricRun
    metric_code: str
    pending: tuple[PendingInput, ...]
    lineage: tuple[LineageEntry, ...]
    attempts: tuple[AttemptSummary, ...]

    @property
    def request_payload(self) -> dict[str, object] | None:
        return self.run.request_payload


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
class _Received:
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
        *,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
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
        received = _Received(
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
            outcome = _transact(self._uow_factory, lambda uow: self._apply(uow, received, feedback))
        _log_feedback(outcome)
        moved = outcome.previous_status is not None and outcome.run_status is not None
        if moved and outcome.previous_status != outcome.run_status:
            self._telemetry.run_transition(str(outcome.previous_status), str(outcome.run_status))
        if outcome.superseded_retry is not None:
            self._telemetry.run_transition(RunStatus.QUEUED.value, RunStatus.CANCELED.value)
        return outcome

    def _apply(
        self, uow: UnitOfWork, received: _Received, feedback: WorkerFeedback
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
            return self._finish(uow, received, EventStatus.REJECTED, run=run, reason=str(exc))
        self._write(uow.runs, feedback, run, change, received.received_at)
        superseded = None
        if isinstance(feedback, RunCompleted):
            superseded = self._supersede_retry(uow.runs, run, feedback)
        return self._finish(
            uow,
            received,
            EventStatus.PROCESSED,
            run=run,
            target=change.target,
            superseded=superseded,
        )

    def _write(
        self,
        runs: RunRepository,
        feedback: WorkerFeedback,
        run: LockedRun,
        change: StatusChange,
        received_at: datetime,
    ) -> None:
        now = self._clock.now()
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
            changed = runs.record_completion(
                run.id, change, _completion(feedback, run, received_at), at=now
            )
        check_rows_changed(changed, 1, change)

    def _supersede_retry(
        self, runs: RunRepository, run: LockedRun, feedback: RunCompleted
    ) -> UUID | None:
        """A late SUCCESS cancels the timed-out run's retry if it was not dispatched yet."""
        if run.status is not RunStatus.TIMED_OUT:
            return None
        retry = runs.lock_automatic_retry(run.id)
        if retry is None or not supersedes_retry(run.status, feedback.succeeded, retry.status):
            return None
        change = change_for(Cause.CANCEL, retry.status)
        reason = superseded_reason(run.attempt)
        check_rows_changed(
            runs.cancel(retry.id, change, reason=reason, at=self._clock.now()), 1, change
        )
        return retry.id

    def _finish(
        self,
        uow: UnitOfWork,
        received: _Received,
        status: EventStatus,
        *,
        run: LockedRun | None = None,
        target: RunStatus | None = None,
        reason: str | None = None,
        superseded: UUID | None = None,
    ) -> FeedbackOutcome:
        uow.events.record(
            EventRecord(
                event_key=received.key,
                event_type=received.event.event_type,
                status=status,
                source=received.source,
                received_at=received.received_at,
                payload=received.event.payload,
                raw_body=received.event.raw_body,
                error=reason,
                replaces=received.replay_of if status is EventStatus.REJECTED else None,
            ),
            processed_at=self._clock.now(),
        )
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
    if run.status is RunStatus.TIMED_OUT:
        reason: str | None = REASON_COMPLETED_AFTER_TIMEOUT
    elif not feedback.succeeded:
        reason = REASON_WORKER_FAILURE
    else:
        reason = None
    return RunCompletion(
        status=feedback.target_status,
        progress=1.0 if feedback.succeeded else None,
        completed_at=received_at,
        version_ts=feedback.version_ts,
        output_manifest=feedback.output_manifest,
        row_count=feedback.row_count,
        error=feedback.error,
        status_reason=reason,
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
        log.info(
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


# --- the sweeper (SPEC §5.5 timeouts, §5.6 retries, §5.7) ---------------------------------


@dataclass(frozen=True, slots=True)
class SweepReport:
    timed_out: tuple[TimedOutRun, ...] = ()
    retries: tuple[ScheduledRetry, ...] = ()


class Sweeper:
    """Times out silent runs and schedules retries; safe to run in every replica at once.

    Each step is one set-based statement that skips rows another transaction holds, so
    concurrent sweepers split the work instead of repeating it. A retry's uniqueness is
    also enforced by the `metric_runs_one_retry_per_run` index.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        *,
        start_timeout: timedelta,
        heartbeat_timeout: timedelta,
        retry_base_delay: timedelta,
        batch_size: int = 500,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._telemetry = telemetry or NullTelemetry()
        self._uow_factory = uow_factory
        self._clock = clock
        self._timeouts = (
            (Cause.START_TIMEOUT, start_timeout, "RUN_START_TIMEOUT", "no start"),
            (Cause.HEARTBEAT_TIMEOUT, heartbeat_timeout, "RUN_HEARTBEAT_TIMEOUT", "no heartbeat"),
        )
        self._retry_base_delay = retry_base_delay
        self._batch_size = batch_size

    def sweep_once(self) -> SweepReport:
        now = self._clock.now()
        report = _transact(self._uow_factory, lambda uow: self._sweep(uow, now))
        _log_sweep(report)
        for reason, source in (("start_timeout", "dispatched"), ("heartbeat_timeout", "running")):
            count = sum(run.reason == reason for run in report.timed_out)
            if count:
                self._telemetry.run_transition(source, RunStatus.TIMED_OUT.value, count)
        if report.retries:
            self._telemetry.run_transition(NEW_RUN, RunStatus.QUEUED.value, len(report.retries))
        return report

    def run(self, stop: threading.Event, interval: timedelta) -> None:
        """Sweep every `interval` until `stop` is set; a full batch sweeps again at once."""
        while not stop.is_set():
            try:
                report = self.sweep_once()
            except Exception:
                log.exception(log_events.ON_SWEEPER_ERROR, message="sweep failed; will retry")
                report = SweepReport()
            if not self._saturated(report):
                stop.wait(interval.total_seconds())

    def _saturated(self, report: SweepReport) -> bool:
        return len(report.retries) >= self._batch_size or len(report.timed_out) >= self._batch_size

    def _sweep(self, uow: UnitOfWork, now: datetime) -> SweepReport:
        timed_out: list[TimedOutRun] = []
        for cause, timeout, setting, what in self._timeouts:
            timed_out += uow.runs.time_out(
                change_for(cause),
                cutoff=now - timeout,
                error=f"{what} within {_duration(timeout)} ({setting})",
                at=now,
                limit=self._batch_size,
            )
        retries = self._schedule_retries(uow, now)
        return SweepReport(timed_out=tuple(timed_out), retries=tuple(retries))

    def _schedule_retries(self, uow: UnitOfWork, now: datetime) -> list[ScheduledRetry]:
        """SPEC §5.6: the domain decides each ended run's retry once; SQL stores it."""
        candidates = uow.runs.retry_candidates(RETRYABLE_STATUSES, self._batch_size)
        if not candidates:
            return []
        decided = [
            NewRetry(uuid4(), candidate.id, not_before)
            for candidate in candidates
            if (not_before := retry_not_before(candidate.facts, now, self._retry_base_delay))
        ]
        retries = (
            uow.runs.insert_retries(decided, requested_at=format_timestamp(now), at=now)
            if decided
            else []
        )
        uow.runs.mark_retries_decided([candidate.id for candidate in candidates], now)
        if retries:
            uow.runs.notify_queued()
        return retries


def _log_sweep(report: SweepReport) -> None:
    for run in report.timed_out:
        log.warning(
            log_events.ON_RUN_TIMED_OUT,
            message="run timed out",
            run_id=str(run.id),
            metric_id=run.metric_id,
            reason=run.reason,
        )
    for retry in report.retries:
        log.info(
            log_events.ON_RUN_RETRY_SCHEDULED,
            message="retry scheduled",
            run_id=str(retry.id),
            retry_of=str(retry.retry_of),
            metric_id=retry.metric_id,
            attempt=retry.attempt,
            not_before=retry.not_before.isoformat() if retry.not_before else None,
        )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{value.total_seconds():g}s"


# --- operations the HTTP API calls (SPEC §6.3) ------------------------------------------


class RunOperations:
    """Cancel, manual retry and read models of runs."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    def cancel(self, run_id: UUID, reason: str | None = None) -> MetricRun:
        """Cancel a run that has not ended; IllegalTransition from a terminal status."""
        why = (reason or "").strip() or "canceled by operator"

        def work(uow: UnitOfWork) -> tuple[RunStatus, MetricRun]:
            run = _lock_existing(uow, run_id)
            change = change_for(Cause.CANCEL, run.status)
            changed = uow.runs.cancel(run_id, change, reason=why, at=self._clock.now())
            check_rows_changed(changed, 1, change)
            return run.status, _get_existing(uow, run_id).run

        previous, canceled = _transact(self._uow_factory, work)
        log.info(
            log_events.ON_RUN_CANCELED,
            message="run canceled",
            run_id=str(run_id),
            previous_status=str(previous),
            reason=why,
        )
        return canceled

    def retry(self, run_id: UUID) -> MetricRun:
        """Queue a manual re-run of a failed, timed_out or canceled run: same inputs, new id."""

        def work(uow: UnitOfWork) -> MetricRun:
            run = _lock_existing(uow, run_id)
            check_metric_can_run(run.metric_code, run.metric_enabled)
            check_manual_retry(run.id, run.status, run.has_request)
            now = self._clock.now()
            new_id = uow.runs.create_manual_retry(
                run_id, new_id=uuid4(), requested_at=format_timestamp(now), at=now
            )
            uow.runs.notify_queued()
            return _get_existing(uow, new_id).run

        new_run = _transact(self._uow_factory, work)
        log.info(
            log_events.ON_RUN_QUEUED,
            message="manual retry queued",
            run_id=str(new_run.id),
            retry_of=str(run_id),
            attempt=new_run.attempt,
        )
        return new_run

    def get_run(self, run_id: UUID) -> RunDetail:
        def work(uow: UnitOfWork) -> RunDetail:
            summary = _get_existing(uow, run_id)
            return RunDetail(
                run=summary.run,
                metric_code=summary.metric_code,
                pending=tuple(uow.runs.pending_inputs(run_id)),
                lineage=tuple(uow.runs.lineage(run_id)),
                attempts=tuple(uow.runs.attempt_chain(run_id)),
            )

        return _transact(self._uow_factory, work)

    def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        metric_code: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[RunSummary], str | None]:
        """A page of runs, newest first, and the cursor of the next page (None at the end)."""
        check_page_size(limit)
        after = decode_run_cursor(cursor) if cursor else None
        rows = _transact(
            self._uow_factory,
            lambda uow: uow.runs.list(
                status=status, metric_code=metric_code, since=since, after=after, limit=limit + 1
            ),
        )
        return cut_page(
            rows,
            limit,
            lambda last: encode_run_cursor(RunPageKey(last.run.created_at, last.run.id)),
        )


def _run_cursor(last: RunSummary) -> str:
    return encode_run_cursor(RunPageKey(last.run.created_at, last.run.id))


def _lock_existing(uow: UnitOfWork, run_id: UUID) -> LockedRun:
    run = uow.runs.lock(run_id)
    if run is None:
        raise NotFound(f"unknown run {run_id}")
    return run


def _get_existing(uow: UnitOfWork, run_id: UUID) -> RunSummary:
    summary = uow.runs.get(run_id)
    if summary is None:
        raise NotFound(f"unknown run {run_id}")
    return summary


def _transact(uow_factory: UnitOfWorkFactory, work: Callable[[UnitOfWork], T]) -> T:
    return in_transaction(uow_factory, work, on_retry=_log_transaction_retry)


def _log_transaction_retry(attempt: int, exc: Exception) -> None:
    log.warning(
        log_events.ON_TRANSACTION_RETRY,
        message="transient database conflict; retrying",
        attempt=attempt,
        error=str(exc),
    )
