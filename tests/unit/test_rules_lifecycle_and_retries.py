"""SPEC §5.5 lifecycle (`LIFECYCLE`, `check_transition`) and §5.6 retry policy.

test_feedback_parsing.py checks the table against the spec's copy; this file pins what the
refusal says, the terminal statuses, and the exact edges of the retry rule.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.errors import DomainError, IllegalTransition
from metrics_orchestrator.domain.model import (
    LIFECYCLE,
    Cause,
    RunStatus,
    check_transition,
)
from metrics_orchestrator.domain.retries import (
    MAX_DOUBLINGS,
    RETRYABLE_STATUSES,
    retry_delay,
    should_retry,
)

S = RunStatus

# --- the lifecycle ------------------------------------------------------------------------


def by_status() -> dict[RunStatus, frozenset[RunStatus]]:
    """LIFECYCLE read by status: where a run may go from each status, whatever the cause."""
    allowed = {status: frozenset[RunStatus]() for status in RunStatus}
    for move in LIFECYCLE.values():
        for source in move.sources:
            allowed[source] = allowed[source] | move.targets
    return allowed


def test_a_refused_transition_names_both_ends_the_cause_and_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition) as exc:
        check_transition(S.RUNNING, S.QUEUED, Cause.READY)
    assert str(exc.value) == (
        "run cannot move from running to queued when its inputs are ready "
        "(allowed from pending_dependencies)"
    )


def test_a_refusal_is_a_domain_error() -> None:
    # interfaces map DomainError to a 4xx / a rejected event, never to a 5xx
    with pytest.raises(DomainError):
        check_transition(S.CANCELED, S.QUEUED, Cause.READY)


@given(st.sampled_from(RunStatus), st.sampled_from(Cause))
def test_no_status_moves_to_itself(status: RunStatus, cause: Cause) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(status, status, cause)


def test_only_a_timed_out_run_leaves_a_terminal_status_and_only_to_an_outcome() -> None:
    terminal = {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELED}
    allowed = by_status()
    exits = {s: allowed[s] for s in terminal if allowed[s]}
    assert exits == {S.TIMED_OUT: frozenset({S.SUCCEEDED, S.FAILED})}


def test_nothing_goes_back_to_pending_dependencies() -> None:
    assert all(S.PENDING_DEPENDENCIES not in targets for targets in by_status().values())


# --- the retry rule -----------------------------------------------------------------------


def test_the_retryable_statuses() -> None:
    assert {S.FAILED, S.TIMED_OUT} == RETRYABLE_STATUSES


@pytest.mark.parametrize("status", [S.FAILED, S.TIMED_OUT])
def test_the_last_attempt_is_not_retried(status: RunStatus) -> None:
    assert should_retry(status, attempt=2, max_attempts=3)
    assert not should_retry(status, attempt=3, max_attempts=3)
    assert not should_retry(status, attempt=4, max_attempts=3)


def test_a_metric_allowing_one_attempt_never_retries() -> None:
    assert not should_retry(S.FAILED, attempt=1, max_attempts=1)


@pytest.mark.parametrize("status", [s for s in RunStatus if s not in (S.FAILED, S.TIMED_OUT)])
def test_other_outcomes_are_never_retried(status: RunStatus) -> None:
    assert not should_retry(status, attempt=1, max_attempts=100)


def test_the_first_retry_waits_the_base_delay() -> None:
    assert retry_delay(timedelta(seconds=30), 1) == timedelta(seconds=30)


def test_the_exponent_is_capped_after_max_doublings() -> None:
    base = timedelta(seconds=1)
    assert MAX_DOUBLINGS == 20
    assert retry_delay(base, MAX_DOUBLINGS) == base * 2 ** (MAX_DOUBLINGS - 1)
    assert retry_delay(base, MAX_DOUBLINGS + 1) == base * 2**MAX_DOUBLINGS
    assert retry_delay(base, MAX_DOUBLINGS + 2) == base * 2**MAX_DOUBLINGS


@given(st.integers(1, 10_000), st.integers(0, 3600))
def test_retry_delay_is_base_times_two_to_the_capped_exponent(attempt: int, seconds: int) -> None:
    base = timedelta(seconds=seconds)
    assert retry_delay(base, attempt) == base * 2 ** min(attempt - 1, MAX_DOUBLINGS)


@pytest.mark.parametrize("attempt", [0, -1, -100])
def test_attempts_start_at_one(attempt: int) -> None:
    with pytest.raises(ValueError, match=r"^attempt must be >= 1$"):
        retry_delay(timedelta(seconds=30), attempt)
