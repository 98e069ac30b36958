"""SPEC §5.6 automatic retries as the sweeper asks them (`retry_not_before`), the late success
that supersedes a queued retry (§5.5, `supersedes_retry`, `superseded_reason`) and the manual
retry of §6.3 (`check_manual_retry`). No database: the sweeper stores what these decide.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.errors import Conflict
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.domain.retries import (
    MANUALLY_RETRYABLE,
    MAX_DOUBLINGS,
    RETRY_HORIZON,
    EndedRun,
    check_manual_retry,
    retry_not_before,
    supersedes_retry,
)
from metrics_orchestrator.domain.status_reasons import superseded_reason

S = RunStatus
NOW = datetime(2025, 11, 11, 12, 0, tzinfo=UTC)
BASE = timedelta(seconds=30)
FAILED_FIRST = EndedRun(
    status=S.FAILED,
    attempt=1,
    ended_at=NOW - timedelta(minutes=1),
    max_attempts=3,
    metric_enabled=True,
    has_request=True,
)


# --- retry_not_before -------------------------------------------------------------------------


def test_a_first_failure_is_retried_after_the_base_delay_from_now() -> None:
    assert retry_not_before(FAILED_FIRST, NOW, BASE) == NOW + BASE


def test_a_timed_out_run_is_retried_like_a_failed_one() -> None:
    run = replace(FAILED_FIRST, status=S.TIMED_OUT, attempt=2)
    assert retry_not_before(run, NOW, BASE) == NOW + 2 * BASE


@given(st.integers(min_value=1, max_value=60))
def test_the_delay_doubles_per_attempt_up_to_the_cap(attempt: int) -> None:
    run = replace(FAILED_FIRST, attempt=attempt, max_attempts=attempt + 1)
    assert retry_not_before(run, NOW, BASE) == NOW + BASE * 2 ** min(attempt - 1, MAX_DOUBLINGS)


@pytest.mark.parametrize(
    "status", [S.SUCCEEDED, S.CANCELED, S.QUEUED, S.RUNNING, S.DISPATCHED, S.PENDING_DEPENDENCIES]
)
def test_only_failed_and_timed_out_runs_are_retried(status: RunStatus) -> None:
    assert retry_not_before(replace(FAILED_FIRST, status=status), NOW, BASE) is None


def test_the_last_attempt_gets_no_retry() -> None:
    assert retry_not_before(replace(FAILED_FIRST, attempt=3), NOW, BASE) is None
    assert retry_not_before(replace(FAILED_FIRST, attempt=2), NOW, BASE) == NOW + 2 * BASE


def test_a_disabled_metric_gets_no_retry() -> None:
    assert retry_not_before(replace(FAILED_FIRST, metric_enabled=False), NOW, BASE) is None


def test_a_run_without_a_request_gets_no_retry() -> None:
    assert retry_not_before(replace(FAILED_FIRST, has_request=False), NOW, BASE) is None


def test_a_failure_the_worker_marked_not_retryable_gets_no_retry() -> None:
    assert retry_not_before(replace(FAILED_FIRST, retryable=False), NOW, BASE) is None


def test_an_attempt_already_retried_by_hand_gets_no_automatic_retry() -> None:
    assert retry_not_before(replace(FAILED_FIRST, latest_in_chain=False), NOW, BASE) is None


def test_a_run_that_ended_exactly_at_the_horizon_is_still_retried() -> None:
    at_horizon = replace(FAILED_FIRST, ended_at=NOW - RETRY_HORIZON)
    assert retry_not_before(at_horizon, NOW, BASE) == NOW + BASE


def test_a_run_that_ended_before_the_horizon_is_not_retried() -> None:
    too_old = replace(FAILED_FIRST, ended_at=NOW - RETRY_HORIZON - timedelta(microseconds=1))
    assert retry_not_before(too_old, NOW, BASE) is None


def test_the_horizon_is_one_day() -> None:
    assert timedelta(days=1) == RETRY_HORIZON


@given(
    status=st.sampled_from(RunStatus),
    attempt=st.integers(min_value=1, max_value=10),
    max_attempts=st.integers(min_value=1, max_value=10),
    age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
    enabled=st.booleans(),
    has_request=st.booleans(),
    retryable=st.booleans(),
    latest=st.booleans(),
)
def test_retry_not_before_is_the_rule_of_the_spec(
    status: RunStatus,
    attempt: int,
    max_attempts: int,
    age: timedelta,
    enabled: bool,
    has_request: bool,
    retryable: bool,
    latest: bool,
) -> None:
    run = EndedRun(
        status, attempt, NOW - age, max_attempts, enabled, has_request, retryable, latest
    )
    retried = (
        status in {S.FAILED, S.TIMED_OUT}
        and attempt < max_attempts
        and enabled
        and has_request
        and retryable
        and latest
        and age <= RETRY_HORIZON
    )
    expected = NOW + BASE * 2 ** (attempt - 1) if retried else None
    assert retry_not_before(run, NOW, BASE) == expected


# --- a late success supersedes a queued retry (§5.5) ------------------------------------------


def test_a_late_success_of_a_timed_out_run_supersedes_its_queued_retry() -> None:
    assert supersedes_retry(S.TIMED_OUT, True, S.QUEUED) is True


@given(st.sampled_from(RunStatus), st.booleans(), st.sampled_from(RunStatus))
def test_only_that_case_supersedes(
    previous: RunStatus, succeeded: bool, retry_status: RunStatus
) -> None:
    expected = previous is S.TIMED_OUT and succeeded and retry_status is S.QUEUED
    assert supersedes_retry(previous, succeeded, retry_status) is expected


def test_a_late_failure_or_a_dispatched_retry_is_left_alone() -> None:
    assert supersedes_retry(S.TIMED_OUT, False, S.QUEUED) is False
    assert supersedes_retry(S.TIMED_OUT, True, S.DISPATCHED) is False
    assert supersedes_retry(S.RUNNING, True, S.QUEUED) is False


def test_the_superseded_reason_names_the_attempt() -> None:
    assert superseded_reason(2) == "superseded: attempt 2 succeeded late"


# --- manual retry (§6.3) ----------------------------------------------------------------------


def test_runs_that_ended_without_a_result_can_be_retried_manually() -> None:
    assert frozenset({S.FAILED, S.TIMED_OUT, S.CANCELED}) == MANUALLY_RETRYABLE
    for status in MANUALLY_RETRYABLE:
        check_manual_retry("r1", status, True)


@pytest.mark.parametrize(
    "status", [S.SUCCEEDED, S.QUEUED, S.DISPATCHED, S.RUNNING, S.PENDING_DEPENDENCIES]
)
def test_other_runs_cannot_be_retried_manually(status: RunStatus) -> None:
    with pytest.raises(Conflict) as exc:
        check_manual_retry("r1", status, True)
    assert str(exc.value) == (
        f"run r1 is {status}; only failed, timed_out or canceled runs can be retried"
    )


def test_a_run_canceled_before_it_was_queued_has_nothing_to_retry() -> None:
    with pytest.raises(Conflict) as exc:
        check_manual_retry("r1", S.CANCELED, False)
    assert str(exc.value) == (
        "run r1 was canceled before it was queued; it has no request to repeat"
    )


def test_the_status_is_checked_before_the_request() -> None:
    with pytest.raises(Conflict, match="is succeeded; only failed"):
        check_manual_retry("r1", S.SUCCEEDED, False)
