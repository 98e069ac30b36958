"""Run lifecycle use cases (SPEC §5.5-§5.7): the sweeper, cancel, retry and the run read models
(worker feedback is application/feedback.py).

Everything that changes a run locks its row (or skips rows others hold), so any number of
replicas may process feedback and sweep side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog

from metrics_orchestrator.application.incidents import IncidentBook, IncidentChanges
from metrics_orchestrator.application.pagination import (
    check_page_size,
    cut_page,
    decode_run_cursor,
    encode_run_cursor,
)
from metrics_orchestrator.application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from metrics_orchestrator.application.ports.queries import RunData
from metrics_orchestrator.application.ports.runs import (
    AttemptSummary,
    LockedRun,
    NewRetry,
    PendingInput,
    RetryCandidate,
    RunPageKey,
    RunSummary,
    ScheduledRetry,
    TimedOutRun,
)
from metrics_orchestrator.application.telemetry import NullTelemetry, Telemetry
from metrics_orchestrator.application.transactions import transact as _transact
from metrics_orchestrator.domain import log_events
from metrics_orchestrator.domain.errors import NotFound
from metrics_orchestrator.domain.incidents import (
    IncidentKind,
    Occurrence,
    final_failure_summary,
    is_final_failure,
)
from metrics_orchestrator.domain.messages.run_requested import build_retry_request
from metrics_orchestrator.domain.model import (
    Cause,
    DatasetUpdate,
    MetricRun,
    RunStatus,
    change_for,
    check_metric_can_run,
    check_rows_changed,
)
from metrics_orchestrator.domain.retries import (
    RETRYABLE_STATUSES,
    check_latest_attempt,
    check_manual_retry,
    retry_not_before,
)
from metrics_orchestrator.domain.status_reasons import (
    operator_cancel_reason,
)

log = structlog.get_logger(__name__)


# --- what the repository reads and writes -------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunDetail:
    run: MetricRun
    metric_code: str
    pending: tuple[PendingInput, ...]
    lineage: tuple[DatasetUpdate, ...]
    attempts: tuple[AttemptSummary, ...]
    # SPEC §8: the oldest effective time of the external versions behind a succeeded run, and
    # the definition version of its metric it was formed with (None when not recorded)
    data_time: datetime | None = None
    definition_version: str | None = None

    @property
    def request_payload(self) -> dict[str, object] | None:
        return self.run.request_payload


# --- the sweeper (SPEC §5.5 timeouts, §5.6 retries, §5.7) ---------------------------------


@dataclass(frozen=True, slots=True)
class SweepReport:
    timed_out: tuple[TimedOutRun, ...] = ()
    retries: tuple[ScheduledRetry, ...] = ()
    # incidents opened and resolved by this sweep (final failures, lateness, SPEC §9)
    incidents: IncidentChanges = field(default_factory=IncidentChanges)


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
        incidents: IncidentBook | None = None,
    ) -> None:
        self._telemetry = telemetry or NullTelemetry()
        self._incidents = incidents or IncidentBook()
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
        report = _transact(self._uow_factory, lambda uow: self._sweep(uow, now), self._telemetry)
        _log_sweep(report)
        # a transaction of its own: a slow evaluation never holds the runs the sweep locked
        report.incidents.add(_transact(self._uow_factory, lambda uow: self._judge(uow, now)))
        return report

    def _judge(self, uow: UnitOfWork, now: datetime) -> IncidentChanges:
        """SPEC §9: late datasets and overdue metrics, by our clock (one replica at a time)."""
        if not uow.incidents.try_lock_freshness():
            return IncidentChanges()
        return self._incidents.evaluate_freshness(uow, datasets=None, metrics=None, now=now)

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
            change = change_for(cause)
            these = uow.runs.time_out(
                change,
                cutoff=now - timeout,
                error=f"{what} within {_duration(timeout)} ({setting})",
                at=now,
                limit=self._batch_size,
            )
            uow.changes.moved(change, len(these))
            timed_out += these
        retries, incidents = self._schedule_retries(uow, now)
        return SweepReport(timed_out=tuple(timed_out), retries=tuple(retries), incidents=incidents)

    def _schedule_retries(
        self, uow: UnitOfWork, now: datetime
    ) -> tuple[list[ScheduledRetry], IncidentChanges]:
        """SPEC §5.6: the domain decides each ended run's retry once; SQL stores it. A run
        that gets none is a final failure: an incident about its metric (SPEC §9)."""
        candidates = uow.runs.retry_candidates(RETRYABLE_STATUSES, self._batch_size)
        if not candidates:
            return [], IncidentChanges()
        decided, final = [], []
        for candidate in candidates:
            not_before = retry_not_before(candidate.facts, now, self._retry_base_delay)
            if not_before is not None:
                decided.append(_new_retry(candidate, not_before, now))
            elif is_final_failure(candidate.facts, not_before):
                final.append(_final_failure(candidate, now))
        retries = uow.runs.insert_retries(decided, at=now) if decided else []
        uow.runs.mark_retries_decided([candidate.id for candidate in candidates], now)
        uow.changes.created(RunStatus.QUEUED, len(retries))
        return retries, self._incidents.occurred(uow, final)


def _final_failure(candidate: RetryCandidate, now: datetime) -> Occurrence:
    facts = candidate.facts
    error = candidate.error or "no error reported"
    summary = final_failure_summary(candidate.metric_code, facts.status, facts.attempt, error)
    return Occurrence(
        IncidentKind.RUN_FAILED, candidate.metric_code, summary, now, run_id=candidate.id
    )


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

    def __init__(
        self, uow_factory: UnitOfWorkFactory, clock: Clock, telemetry: Telemetry | None = None
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._telemetry = telemetry or NullTelemetry()

    def cancel(self, run_id: UUID, reason: str | None = None) -> MetricRun:
        """Cancel a run that has not ended; IllegalTransition from a terminal status."""
        why = operator_cancel_reason(reason)

        def work(uow: UnitOfWork) -> tuple[RunStatus, MetricRun]:
            run = _lock_existing(uow, run_id)
            change = change_for(Cause.CANCEL, run.status)
            changed = uow.runs.cancel(run_id, change, reason=why, at=self._clock.now())
            check_rows_changed(changed, 1, change)
            uow.changes.moved(change)
            return run.status, _get_existing(uow, run_id).run

        previous, canceled = _transact(self._uow_factory, work, self._telemetry)
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
            latest = uow.runs.latest_attempt(run_id)
            if latest is not None:
                check_latest_attempt(run.id, run.attempt, latest.id, latest.attempt)
            check_manual_retry(run.id, run.status, run.has_request)
            now = self._clock.now()
            new_id = uuid4()
            original = _get_existing(uow, run_id).run.request_payload
            request = _retry_request(original, run_id=new_id, attempt=run.attempt + 1, now=now)
            created = uow.runs.create_manual_retry(
                run_id, new_id=new_id, request_payload=request, at=now
            )
            uow.changes.created(RunStatus.QUEUED)
            return _get_existing(uow, created).run

        new_run = _transact(self._uow_factory, work, self._telemetry)
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
            data = uow.queries.run_data(run_id) or RunData(None, None)
            return RunDetail(
                run=summary.run,
                metric_code=summary.metric_code,
                pending=tuple(uow.runs.pending_inputs(run_id)),
                lineage=tuple(uow.runs.lineage(run_id)),
                attempts=tuple(uow.runs.attempt_chain(run_id)),
                data_time=data.data_time,
                definition_version=data.definition_version,
            )

        return _transact(self._uow_factory, work)

    def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        statuses: Iterable[RunStatus] = (),
        metric_code: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[RunSummary], str | None]:
        """A page of runs, newest first, and the cursor of the next page (None at the end).

        The runs in `status` or any of `statuses` (all when neither is given), of one metric,
        created at or after `since` and before `until`. The cursor only carries a position, so
        the next page must be asked for with the same filters.
        """
        check_page_size(limit)
        after = decode_run_cursor(cursor) if cursor else None
        wanted = frozenset(statuses) | ({status} if status else set())
        rows = _transact(
            self._uow_factory,
            lambda uow: uow.runs.list(
                statuses=wanted or None,
                metric_code=metric_code,
                since=since,
                until=until,
                after=after,
                limit=limit + 1,
            ),
        )
        return cut_page(
            rows,
            limit,
            lambda last: encode_run_cursor(RunPageKey(last.run.created_at, last.run.id)),
        )


def _new_retry(candidate: RetryCandidate, not_before: datetime, now: datetime) -> NewRetry:
    """The retry decided for `candidate`: a new run id and the request re-sent under it."""
    new_id = uuid4()
    attempt = candidate.facts.attempt + 1
    request = _retry_request(candidate.request_payload, run_id=new_id, attempt=attempt, now=now)
    return NewRetry(new_id, candidate.id, not_before, request)


def _retry_request(
    original: dict[str, Any] | None, *, run_id: UUID, attempt: int, now: datetime
) -> dict[str, Any] | None:
    """A retry's metric_run_requested; None when the run it retries has none to re-send."""
    if original is None:
        return None
    return build_retry_request(original, run_id=run_id, attempt=attempt, requested_at=now)


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
