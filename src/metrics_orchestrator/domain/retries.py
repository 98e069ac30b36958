"""The automatic retry rule (SPEC §5.6), the one place it is written down. Pure.

The sweeper loads ended runs with these facts, asks `retry_not_before`, and stores the
decision; its SQL never computes eligibility or the delay itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from metrics_orchestrator.domain.errors import Conflict, NotLatestAttempt
from metrics_orchestrator.domain.model import RunStatus

RETRYABLE_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})

# Caps the exponent so a metric with a huge max_attempts cannot overflow a duration
# (2**20 times the base delay is already far beyond any useful retry horizon).
MAX_DOUBLINGS = 20

# A run that ended longer ago than this when a sweeper first judges it (no sweeper ran for a
# day) is not retried: its inputs have most likely been superseded by then.
RETRY_HORIZON = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class EndedRun:
    """What the retry rule needs to know of a run that ended."""

    status: RunStatus
    attempt: int
    ended_at: datetime
    max_attempts: int
    metric_enabled: bool
    # a run canceled before it was queued has no request to repeat
    has_request: bool
    # the worker said the FAILURE would happen again (SPEC §4.2 `retryable: false`)
    retryable: bool = True
    # no newer attempt exists in its chain (a manual retry of it came first, SPEC §5.6)
    latest_in_chain: bool = True


def should_retry(status: RunStatus, attempt: int, max_attempts: int) -> bool:
    """Whether a run that ended in `status` on `attempt` gets an automatic retry."""
    return status in RETRYABLE_STATUSES and attempt < max_attempts


def retry_delay(base: timedelta, attempt: int) -> timedelta:
    """How long after the failure of `attempt` its retry may be dispatched: base * 2^(attempt-1)."""
    if attempt < 1:
        raise ValueError("attempt must be >= 1")
    return base * (1 << min(attempt - 1, MAX_DOUBLINGS))


def retry_not_before(run: EndedRun, now: datetime, base: timedelta) -> datetime | None:
    """When the automatic retry of `run` may be dispatched, or None if it gets none.

    A disabled metric gets no runs of any kind, retries included; a failure the worker marked
    not retryable gets none; nor does an attempt that already has a newer one in its chain.
    """
    eligible = run.metric_enabled and run.has_request and run.retryable and run.latest_in_chain
    if not eligible or run.ended_at < now - RETRY_HORIZON:
        return None
    if not should_retry(run.status, run.attempt, run.max_attempts):
        return None
    return now + retry_delay(base, run.attempt)


def supersedes_retry(previous: RunStatus, succeeded: bool, retry_status: RunStatus) -> bool:
    """A late SUCCESS of a timed-out run cancels its retry unless that was already dispatched."""
    return previous is RunStatus.TIMED_OUT and succeeded and retry_status is RunStatus.QUEUED


# An operator may re-run any run that ended without a result (SPEC §6.3 POST /runs/{id}/retry).
MANUALLY_RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELED})


def check_manual_retry(run_id: object, status: RunStatus, has_request: bool) -> None:
    """Raise Conflict unless the run ended without a result and has a request to repeat."""
    if status not in MANUALLY_RETRYABLE:
        raise Conflict(
            f"run {run_id} is {status}; only failed, timed_out or canceled runs can be retried"
        )
    if not has_request:
        raise Conflict(
            f"run {run_id} was canceled before it was queued; it has no request to repeat"
        )


def check_latest_attempt(
    run_id: object, attempt: int, latest_id: object, latest_attempt: int
) -> None:
    """Raise NotLatestAttempt unless `run_id` is the newest attempt of its chain (SPEC §5.6).

    An attempt number is never given twice in one chain: a manual retry applies to the latest
    attempt only, and the refusal names it.
    """
    if latest_attempt > attempt:
        raise NotLatestAttempt(run_id, attempt, latest_id, latest_attempt)
