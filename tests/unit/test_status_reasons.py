"""The one vocabulary of `metric_runs.status_reason` (domain/status_reasons.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain import status_reasons
from metrics_orchestrator.domain.model import Cause, RunStatus
from metrics_orchestrator.domain.status_reasons import (
    CANCELED_BY_OPERATOR,
    COMPLETED_AFTER_TIMEOUT,
    HEARTBEAT_TIMEOUT,
    START_TIMEOUT,
    WORKER_FAILURE,
    completion_reason,
    operator_cancel_reason,
    superseded_reason,
    timeout_reason,
)

S = RunStatus


def test_the_stored_texts_are_the_ones_readers_already_know() -> None:
    # Stored rows and their readers (API clients, dashboards) match on these: never reworded.
    assert (START_TIMEOUT, HEARTBEAT_TIMEOUT) == ("start_timeout", "heartbeat_timeout")
    assert status_reasons.DISPATCH_FAILED == "dispatch_failed"
    assert (WORKER_FAILURE, COMPLETED_AFTER_TIMEOUT) == (
        "worker_failure",
        "completed_after_timeout",
    )
    assert status_reasons.DEFINITION_CHANGED == "metric definition changed"
    assert status_reasons.METRIC_DISABLED == "metric disabled"
    assert CANCELED_BY_OPERATOR == "canceled by operator"
    assert status_reasons.CANCELED_FROM_DASHBOARD == "canceled from the dashboard"
    assert superseded_reason(3) == "superseded: attempt 3 succeeded late"


def test_a_timeout_is_named_by_its_cause() -> None:
    assert timeout_reason(Cause.START_TIMEOUT) == START_TIMEOUT
    assert timeout_reason(Cause.HEARTBEAT_TIMEOUT) == HEARTBEAT_TIMEOUT


@pytest.mark.parametrize(
    ("previous", "succeeded", "reason"),
    [
        (S.TIMED_OUT, True, COMPLETED_AFTER_TIMEOUT),
        (S.TIMED_OUT, False, COMPLETED_AFTER_TIMEOUT),
        (S.RUNNING, False, WORKER_FAILURE),
        (S.DISPATCHED, False, WORKER_FAILURE),
        (S.RUNNING, True, None),
        (S.DISPATCHED, True, None),
    ],
)
def test_a_completion_records_a_late_outcome_or_a_failure(
    previous: RunStatus, succeeded: bool, reason: str | None
) -> None:
    assert completion_reason(previous, succeeded) == reason


@given(st.text())
def test_an_operator_cancel_keeps_their_words_or_says_it_was_them(given_reason: str) -> None:
    reason = operator_cancel_reason(given_reason)
    assert reason == (given_reason.strip() or CANCELED_BY_OPERATOR)
    assert operator_cancel_reason(None) == CANCELED_BY_OPERATOR
