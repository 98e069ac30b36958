"""SPEC §5.5 by cause (`LIFECYCLE`, `change_for`, `check_transition` with a cause), the row
check every status write makes (`check_rows_changed`), what a worker event writes
(`feedback.status_change`) and §5.6 "a disabled metric gets no runs" (`check_metric_can_run`).

The table below is copied from the spec's "Allowed transitions"; the tests compare the domain's
table with it row by row and pin the exact refusals (they are shown by the API and the log).
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.errors import Conflict, DomainError, IllegalTransition, StaleRun
from metrics_orchestrator.domain.feedback import WorkerFeedback, status_change, target_status
from metrics_orchestrator.domain.messages.run_completed import RunCompleted
from metrics_orchestrator.domain.messages.run_heartbeat import RunHeartbeat
from metrics_orchestrator.domain.messages.run_started import RunStarted
from metrics_orchestrator.domain.model import (
    LIFECYCLE,
    STAYS,
    Cause,
    Move,
    RunStatus,
    StatusChange,
    change_for,
    check_metric_can_run,
    check_rows_changed,
    check_transition,
)

S = RunStatus
RUN_ID = UUID("6a1e7d4c-0000-4000-8000-000000000001")
TS = datetime(2025, 11, 11, 12, 0, tzinfo=UTC)

# SPEC §5.5 "Allowed transitions", one entry per cause: (from statuses, to statuses).
SPEC_TABLE: dict[Cause, tuple[set[RunStatus], set[RunStatus]]] = {
    Cause.READY: ({S.PENDING_DEPENDENCIES}, {S.QUEUED}),
    Cause.CANCEL: ({S.PENDING_DEPENDENCIES, S.QUEUED, S.DISPATCHED, S.RUNNING}, {S.CANCELED}),
    Cause.PUBLISHED: ({S.QUEUED}, {S.DISPATCHED}),
    Cause.DISPATCH_GAVE_UP: ({S.QUEUED}, {S.FAILED}),
    Cause.WORKER_ALIVE: ({S.DISPATCHED}, {S.RUNNING}),
    Cause.COMPLETED: ({S.DISPATCHED, S.RUNNING, S.TIMED_OUT}, {S.SUCCEEDED, S.FAILED}),
    Cause.START_TIMEOUT: ({S.DISPATCHED}, {S.TIMED_OUT}),
    Cause.HEARTBEAT_TIMEOUT: ({S.RUNNING}, {S.TIMED_OUT}),
}


def _completed(*, succeeded: bool) -> RunCompleted:
    return RunCompleted(RUN_ID, None, succeeded, None, None, None, None)


# --- the table, by cause ---------------------------------------------------------------------


def test_the_table_by_cause_is_the_spec_table() -> None:
    assert {cause: (set(m.sources), set(m.targets)) for cause, m in LIFECYCLE.items()} == (
        SPEC_TABLE
    )


def test_each_move_holds_frozen_sets_sources_then_targets() -> None:
    for cause, move in LIFECYCLE.items():
        assert isinstance(move, Move)
        assert type(move.sources) is frozenset, cause
        assert type(move.targets) is frozenset, cause
        assert move.sources == frozenset(SPEC_TABLE[cause][0])
        assert move.targets == frozenset(SPEC_TABLE[cause][1])


@given(st.sampled_from(Cause), st.sampled_from(RunStatus), st.sampled_from(RunStatus))
def test_a_cause_allows_exactly_its_row(
    cause: Cause, current: RunStatus, target: RunStatus
) -> None:
    sources, targets = SPEC_TABLE[cause]
    if current in sources and target in targets:
        check_transition(current, target, cause)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, target, cause)


def test_a_transition_allowed_for_another_cause_is_refused_for_this_one() -> None:
    # queued -> canceled is allowed on cancel, never "on publish"
    check_transition(S.QUEUED, S.CANCELED, Cause.CANCEL)
    with pytest.raises(IllegalTransition) as exc:
        check_transition(S.QUEUED, S.CANCELED, Cause.PUBLISHED)
    assert str(exc.value) == (
        "run cannot move from queued to canceled on publish (allowed from queued)"
    )


def test_a_refusal_by_cause_names_the_cause_and_every_allowed_source_sorted() -> None:
    with pytest.raises(IllegalTransition) as exc:
        check_transition(S.SUCCEEDED, S.FAILED, Cause.COMPLETED)
    assert str(exc.value) == (
        "run cannot move from succeeded to failed on a completed event "
        "(allowed from dispatched, running, timed_out)"
    )
    with pytest.raises(IllegalTransition) as exc:
        check_transition(S.QUEUED, S.QUEUED, Cause.READY)
    assert str(exc.value) == (
        "run cannot move from queued to queued when its inputs are ready "
        "(allowed from pending_dependencies)"
    )


def test_a_right_source_with_a_wrong_target_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="to succeeded on a start timeout"):
        check_transition(S.DISPATCHED, S.SUCCEEDED, Cause.START_TIMEOUT)


@pytest.mark.parametrize(
    ("cause", "phrase"),
    [
        (Cause.READY, "when its inputs are ready"),
        (Cause.CANCEL, "on cancel"),
        (Cause.PUBLISHED, "on publish"),
        (Cause.DISPATCH_GAVE_UP, "when dispatch gives up"),
        (Cause.WORKER_ALIVE, "on a started or heartbeat event"),
        (Cause.COMPLETED, "on a completed event"),
        (Cause.START_TIMEOUT, "on a start timeout"),
        (Cause.HEARTBEAT_TIMEOUT, "on a heartbeat timeout"),
    ],
)
def test_every_cause_is_named_in_its_refusals(cause: Cause, phrase: str) -> None:
    with pytest.raises(IllegalTransition) as exc:
        check_transition(S.CANCELED, S.PENDING_DEPENDENCIES, cause)
    assert f"from canceled to pending_dependencies {phrase} (allowed from " in str(exc.value)


# --- change_for: the StatusChange a statement takes -------------------------------------------


@pytest.mark.parametrize(
    ("cause", "source", "target"),
    [
        (Cause.READY, S.PENDING_DEPENDENCIES, S.QUEUED),
        (Cause.PUBLISHED, S.QUEUED, S.DISPATCHED),
        (Cause.DISPATCH_GAVE_UP, S.QUEUED, S.FAILED),
        (Cause.WORKER_ALIVE, S.DISPATCHED, S.RUNNING),
        (Cause.START_TIMEOUT, S.DISPATCHED, S.TIMED_OUT),
        (Cause.HEARTBEAT_TIMEOUT, S.RUNNING, S.TIMED_OUT),
    ],
)
def test_a_cause_with_one_row_needs_no_statuses_named(
    cause: Cause, source: RunStatus, target: RunStatus
) -> None:
    assert change_for(cause) == StatusChange(cause, source, target)


def test_named_statuses_are_used_as_given_and_checked() -> None:
    assert change_for(Cause.CANCEL, S.RUNNING) == StatusChange(Cause.CANCEL, S.RUNNING, S.CANCELED)
    assert change_for(Cause.COMPLETED, S.TIMED_OUT, S.FAILED) == StatusChange(
        Cause.COMPLETED, S.TIMED_OUT, S.FAILED
    )
    assert change_for(Cause.COMPLETED, target=S.SUCCEEDED, source=S.DISPATCHED) == StatusChange(
        Cause.COMPLETED, S.DISPATCHED, S.SUCCEEDED
    )
    with pytest.raises(IllegalTransition, match="from succeeded to canceled on cancel"):
        change_for(Cause.CANCEL, S.SUCCEEDED)
    with pytest.raises(IllegalTransition, match="from queued to canceled when its inputs"):
        change_for(Cause.READY, S.QUEUED, S.CANCELED)


def test_a_cause_with_several_sources_or_targets_must_be_told_which() -> None:
    with pytest.raises(ValueError, match=r"^cancel has several source statuses; name one$"):
        change_for(Cause.CANCEL)
    with pytest.raises(ValueError, match=r"^completed has several target statuses; name one$"):
        change_for(Cause.COMPLETED, S.RUNNING)


# --- every status write checks the rows it changed --------------------------------------------


def test_the_expected_number_of_rows_passes() -> None:
    change = change_for(Cause.PUBLISHED)
    check_rows_changed(3, 3, change)
    check_rows_changed(0, 0, change)


@pytest.mark.parametrize(("changed", "expected"), [(0, 1), (1, 2), (2, 1)])
def test_fewer_or_more_rows_than_expected_is_a_stale_run(changed: int, expected: int) -> None:
    change = change_for(Cause.READY)
    with pytest.raises(StaleRun) as exc:
        check_rows_changed(changed, expected, change)
    assert str(exc.value) == (
        f"ready: {expected} run(s) were to move from pending_dependencies to queued, {changed} did"
    )
    # not a DomainError: it is a race to decide again, never the caller's fault
    assert not isinstance(exc.value, DomainError)


# --- a disabled metric gets no runs (§5.6) -----------------------------------------------------


def test_an_enabled_metric_can_run() -> None:
    check_metric_can_run("m1", True)


def test_a_disabled_metric_is_a_conflict_naming_it() -> None:
    with pytest.raises(Conflict) as exc:
        check_metric_can_run("m1", False)
    assert str(exc.value) == "metric 'm1' is disabled: it gets no runs until it is enabled"


# --- what a worker event writes ---------------------------------------------------------------

ALIVE: list[WorkerFeedback] = [RunStarted(RUN_ID, TS), RunHeartbeat(RUN_ID, 0.5, TS)]


@pytest.mark.parametrize("feedback", ALIVE)
def test_a_first_sign_of_life_moves_a_dispatched_run_to_running(feedback: WorkerFeedback) -> None:
    assert status_change(feedback, S.DISPATCHED) == StatusChange(
        Cause.WORKER_ALIVE, S.DISPATCHED, S.RUNNING
    )


@pytest.mark.parametrize("feedback", ALIVE)
def test_a_sign_of_life_of_a_running_run_keeps_it_running(feedback: WorkerFeedback) -> None:
    assert status_change(feedback, S.RUNNING) == StatusChange(
        Cause.WORKER_ALIVE, S.RUNNING, S.RUNNING
    )


@pytest.mark.parametrize("feedback", ALIVE)
@pytest.mark.parametrize(
    "current", [S.PENDING_DEPENDENCIES, S.QUEUED, S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELED]
)
def test_a_sign_of_life_is_refused_outside_dispatched_and_running(
    feedback: WorkerFeedback, current: RunStatus
) -> None:
    with pytest.raises(IllegalTransition) as exc:
        status_change(feedback, current)
    assert str(exc.value) == (
        f"run cannot move from {current} to running on a started or heartbeat event "
        "(allowed from dispatched)"
    )


@pytest.mark.parametrize("current", [S.DISPATCHED, S.RUNNING, S.TIMED_OUT])
@pytest.mark.parametrize(
    ("succeeded", "target"), [(True, S.SUCCEEDED), (False, S.FAILED)], ids=["success", "failure"]
)
def test_a_completed_event_records_its_outcome(
    current: RunStatus, succeeded: bool, target: RunStatus
) -> None:
    feedback = _completed(succeeded=succeeded)
    assert target_status(feedback, current) is target
    assert status_change(feedback, current) == StatusChange(Cause.COMPLETED, current, target)


@pytest.mark.parametrize(
    "current", [S.PENDING_DEPENDENCIES, S.QUEUED, S.SUCCEEDED, S.FAILED, S.CANCELED]
)
def test_a_completed_event_is_refused_before_dispatch_and_after_an_outcome(
    current: RunStatus,
) -> None:
    with pytest.raises(IllegalTransition) as exc:
        status_change(_completed(succeeded=True), current)
    assert str(exc.value) == (
        f"run cannot move from {current} to succeeded on a completed event "
        "(allowed from dispatched, running, timed_out)"
    )


# --- writes that keep a run where it is (STAYS) ------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "status"),
    [(Cause.READY, S.PENDING_DEPENDENCIES), (Cause.WORKER_ALIVE, S.RUNNING)],
)
def test_a_run_kept_in_its_status_is_a_change_the_table_names(
    cause: Cause, status: RunStatus
) -> None:
    assert STAYS[cause] == frozenset({status})
    assert change_for(cause, status, status) == StatusChange(cause, status, status)


@given(st.sampled_from(Cause), st.sampled_from(RunStatus))
def test_no_other_cause_keeps_a_run_where_it_is(cause: Cause, status: RunStatus) -> None:
    if status in STAYS.get(cause, frozenset()):
        return
    with pytest.raises(IllegalTransition):
        change_for(cause, status, status)


def test_a_status_a_cause_keeps_is_one_it_moves_from_or_to() -> None:
    for cause, statuses in STAYS.items():
        move = LIFECYCLE[cause]
        assert statuses <= move.sources | move.targets, cause
