"""The dispatcher: publishes queued runs after commit (SPEC §5.4).

The run-request payload was written with the run when it became queued (an outbox); the
dispatcher publishes it verbatim and never rebuilds it. Claimed rows stay locked
(`FOR UPDATE SKIP LOCKED`) while they are published, so concurrent dispatchers never publish
the same run at the same time. A crash between publishing and committing rolls the claim
back: the run is published again later with the same `runId`/`attempt` (at least once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import structlog

from metrics_orchestrator.application.incidents import IncidentBook
from metrics_orchestrator.application.ports import Clock, UnitOfWorkFactory
from metrics_orchestrator.application.ports.dispatch import (
    ClaimedRun,
    DispatchGiveUp,
    DispatchRetry,
    PublishOutcome,
    RunRequestMessage,
    RunRequestPublisher,
)
from metrics_orchestrator.application.telemetry import NullTelemetry, Telemetry
from metrics_orchestrator.application.wakeups import (
    ListenerFactory,
    NoListener,
    run_until_stopped,
)
from metrics_orchestrator.domain.incidents import (
    IncidentKind,
    Occurrence,
    dispatch_failure_summary,
)
from metrics_orchestrator.domain.log_events import (
    ON_DISPATCHER_ERROR,
    ON_RUN_DISPATCH_FAILED,
    ON_RUN_DISPATCHED,
)
from metrics_orchestrator.domain.model import (
    Cause,
    change_for,
    check_rows_changed,
)

log = structlog.get_logger()


# The two ways a claimed run leaves the queue (SPEC §5.5); both start from the same status,
# which is the one the claim selects.
_PUBLISH = change_for(Cause.PUBLISHED)
_GIVE_UP = change_for(Cause.DISPATCH_GAVE_UP)
assert _PUBLISH.source is _GIVE_UP.source


@dataclass(frozen=True, slots=True)
class DispatchReport:
    published: int = 0
    failed: int = 0
    given_up: int = 0

    @property
    def claimed(self) -> int:
        return self.published + self.failed + self.given_up


@dataclass(frozen=True, slots=True)
class _Plan:
    published: list[ClaimedRun]
    retries: list[tuple[ClaimedRun, DispatchRetry]]
    give_ups: list[tuple[ClaimedRun, DispatchGiveUp]]


def dispatch_backoff(failures: int, base: timedelta, cap: timedelta) -> timedelta:
    """Delay before the next publish attempt after `failures` consecutive failures."""
    # Bounded exponent: 2**n for a large n would only be capped anyway.
    return min(base * (1 << min(max(failures - 1, 0), 30)), cap)


class Dispatcher:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        publisher: RunRequestPublisher,
        clock: Clock,
        *,
        max_attempts: int,
        batch_size: int = 10,
        backoff_base: timedelta = timedelta(seconds=2),
        backoff_max: timedelta = timedelta(minutes=5),
        poll_interval: timedelta = timedelta(seconds=2),
        listener_factory: ListenerFactory | None = None,
        telemetry: Telemetry | None = None,
        incidents: IncidentBook | None = None,
    ) -> None:
        self._telemetry = telemetry or NullTelemetry()
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._uow_factory = uow_factory
        self._publisher = publisher
        self._clock = clock
        self._max_attempts = max_attempts
        self._batch_size = batch_size
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._poll_interval = poll_interval.total_seconds()
        # a dispatch that gave up opens an incident about its metric (SPEC §9)
        self._incidents = incidents or IncidentBook()
        # Without a listener (e.g. in tests) the dispatcher simply polls.
        self._listener_factory = listener_factory or NoListener
        # Set while `run` waits for work: lets tests and health checks see an idle dispatcher.
        self.idle = threading.Event()

    def dispatch_once(self) -> DispatchReport:
        """Claim, publish and mark one batch of due runs, all in one transaction."""
        with self._uow_factory() as uow:
            now = self._clock.now()
            claimed = uow.dispatch.claim_dispatchable(_PUBLISH.source, now, self._batch_size)
            if not claimed:
                return DispatchReport()
            publish_started = time.monotonic()
            outcomes = self._publish(claimed)
            publish_seconds = time.monotonic() - publish_started
            plan = self._plan(claimed, outcomes, now)
            # The claimed rows stay locked, so every write must find all of them queued.
            if plan.published:
                changed = uow.dispatch.mark_dispatched(
                    [run.run_id for run in plan.published], _PUBLISH, now
                )
                check_rows_changed(changed, len(plan.published), _PUBLISH)
                uow.changes.moved(_PUBLISH, len(plan.published))
            if plan.retries:
                changed = uow.dispatch.schedule_dispatch_retries(
                    [r for _, r in plan.retries], _PUBLISH.source, now
                )
                check_rows_changed(changed, len(plan.retries), _PUBLISH)
            if plan.give_ups:
                changed = uow.dispatch.give_up_dispatch(
                    [g for _, g in plan.give_ups], _GIVE_UP, now
                )
                check_rows_changed(changed, len(plan.give_ups), _GIVE_UP)
                uow.changes.moved(_GIVE_UP, len(plan.give_ups))
                gave_up = [_give_up_occurrence(run, g, now) for run, g in plan.give_ups]
                self._incidents.occurred(uow, gave_up)
        # Logged and counted after the commit, so they never claim what was rolled back.
        self._log(plan)
        for effect in uow.changes.after_commit:
            effect()
        self._count(plan, publish_seconds)
        uow.changes.publish(self._telemetry)
        return DispatchReport(
            published=len(plan.published),
            failed=len(plan.retries),
            given_up=len(plan.give_ups),
        )

    def _count(self, plan: _Plan, publish_seconds: float) -> None:
        if plan.published:
            self._telemetry.dispatch_published(len(plan.published), publish_seconds)
        if plan.retries or plan.give_ups:
            self._telemetry.dispatch_failed(len(plan.retries) + len(plan.give_ups))

    def run(self, stop: threading.Event) -> None:
        """Dispatch until `stop` is set: eagerly while work is found, else on NOTIFY or poll."""
        run_until_stopped(
            stop,
            lambda: self.dispatch_once().claimed,
            listener_factory=self._listener_factory,
            what="queued runs",
            poll_interval=self._poll_interval,
            idle=self.idle,
            on_error=_log_dispatch_error,
        )

    def _publish(self, claimed: Sequence[ClaimedRun]) -> dict[UUID, PublishOutcome]:
        messages: list[RunRequestMessage] = []
        outcomes: dict[UUID, PublishOutcome] = {}
        for run in claimed:
            if run.payload is None:
                outcomes[run.run_id] = PublishOutcome(run.run_id, ok=False, error=_NOT_AN_OBJECT)
            else:
                messages.append(
                    RunRequestMessage(run.run_id, run.attempt, run.metric_code, run.payload)
                )
        if not messages:
            return outcomes
        try:
            published = self._publisher.publish_batch(messages)
        except Exception as exc:
            # A publisher bug or outage must count as a failed attempt, not roll the claim
            # back: otherwise the run would be retried forever without ever giving up.
            error = f"{type(exc).__name__}: {exc}"
            published = [PublishOutcome(m.run_id, ok=False, error=error) for m in messages]
        outcomes.update((outcome.run_id, outcome) for outcome in published)
        return outcomes

    def _plan(
        self, claimed: Sequence[ClaimedRun], outcomes: dict[UUID, PublishOutcome], now: datetime
    ) -> _Plan:
        plan = _Plan(published=[], retries=[], give_ups=[])
        for run in claimed:
            outcome = outcomes.get(run.run_id)
            if outcome is not None and outcome.ok:
                plan.published.append(run)
                continue
            error = _failure_text(outcome)
            failures = run.dispatch_attempts + 1
            if failures >= self._max_attempts:
                reason = f"dispatch gave up after {failures} attempt(s): {error}"
                plan.give_ups.append((run, DispatchGiveUp(run.run_id, reason)))
            else:
                delay = dispatch_backoff(failures, self._backoff_base, self._backoff_max)
                plan.retries.append((run, DispatchRetry(run.run_id, error, now + delay)))
        return plan

    @staticmethod
    def _log(plan: _Plan) -> None:
        for run in plan.published:
            log.info(
                ON_RUN_DISPATCHED,
                message="run request published",
                run_id=str(run.run_id),
                metric_code=run.metric_code,
                attempt=run.attempt,
            )
        for run, retry in plan.retries:
            log.warning(
                ON_RUN_DISPATCH_FAILED,
                message="publishing the run request failed; will retry",
                run_id=str(run.run_id),
                metric_code=run.metric_code,
                dispatch_attempts=run.dispatch_attempts + 1,
                not_before=retry.not_before.isoformat(),
                error=retry.error,
            )
        for run, give_up in plan.give_ups:
            log.error(
                ON_RUN_DISPATCH_FAILED,
                message="publishing the run request failed; run marked failed",
                run_id=str(run.run_id),
                metric_code=run.metric_code,
                dispatch_attempts=run.dispatch_attempts + 1,
                gave_up=True,
                error=give_up.error,
            )


_NOT_AN_OBJECT = "request_payload is not a JSON object; it cannot be published"


def _give_up_occurrence(run: ClaimedRun, give_up: DispatchGiveUp, now: datetime) -> Occurrence:
    code = run.metric_code
    summary = dispatch_failure_summary(code, give_up.error)
    return Occurrence(IncidentKind.DISPATCH_FAILED, code, summary, now, run_id=run.run_id)


def _log_dispatch_error(exc: Exception) -> None:
    log.error(
        ON_DISPATCHER_ERROR,
        message="dispatch failed; backing off",
        error=str(exc),
        exc_info=True,
    )


def _failure_text(outcome: PublishOutcome | None) -> str:
    if outcome is None:
        return "the publisher reported no outcome for this run"
    return outcome.error or "publish failed (no error detail)"
