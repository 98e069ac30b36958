"""Parsing worker events (SPEC §4.2), the lifecycle table (§5.5) and the retry rule (§5.6)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.errors import IllegalTransition, ValidationError
from metrics_orchestrator.domain.feedback import WorkerFeedback, parse_feedback, target_status
from metrics_orchestrator.domain.messages.run_completed import (
    COMPLETION_STATUSES,
    RunCompleted,
    parse_run_completed,
)
from metrics_orchestrator.domain.messages.run_heartbeat import (
    PROGRESS_RULE,
    RunHeartbeat,
    normalise_progress,
    parse_run_heartbeat,
)
from metrics_orchestrator.domain.messages.run_started import RunStarted, parse_run_started
from metrics_orchestrator.domain.model import (
    LIFECYCLE,
    Cause,
    RunStatus,
    change_for,
    check_transition,
)
from metrics_orchestrator.domain.retries import retry_delay, should_retry

S = RunStatus
RUN_ID = "0b8e2f53-6f0e-4a53-9d2c-6a7f1f1e2d3c"

# SPEC §5.5 copied from the spec, independently of the domain's own table.
SPEC_TABLE: set[tuple[RunStatus, RunStatus]] = {
    (S.PENDING_DEPENDENCIES, S.QUEUED),
    (S.PENDING_DEPENDENCIES, S.CANCELED),
    (S.QUEUED, S.CANCELED),
    (S.DISPATCHED, S.CANCELED),
    (S.RUNNING, S.CANCELED),
    (S.QUEUED, S.DISPATCHED),
    (S.QUEUED, S.FAILED),
    (S.DISPATCHED, S.RUNNING),
    (S.DISPATCHED, S.SUCCEEDED),
    (S.DISPATCHED, S.FAILED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.DISPATCHED, S.TIMED_OUT),
    (S.RUNNING, S.TIMED_OUT),
    (S.TIMED_OUT, S.SUCCEEDED),
    (S.TIMED_OUT, S.FAILED),
}
# The rows caused by worker events: started/heartbeat -> running, completed -> an outcome.
STARTS_FROM = {S.DISPATCHED}
COMPLETES_FROM = {S.DISPATCHED, S.RUNNING, S.TIMED_OUT}


def reasons(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {e.path: e.message for e in exc.value.errors}


# --- started ----------------------------------------------------------------------------


def test_started_with_and_without_start_time() -> None:
    assert parse_run_started({"runId": RUN_ID}) == RunStarted(UUID(RUN_ID), None)
    parsed = parse_run_started({"runId": RUN_ID, "startedAt": "2025-11-11T01:42:00Z"})
    assert parsed.started_at == datetime(2025, 11, 11, 1, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({}, "runId", "is required"),
        ({"runId": 42}, "runId", "must be a non-empty string"),
        ({"runId": "run-1"}, "runId", "must be a UUID"),
        ({"runId": RUN_ID, "startedAt": "2025-11-11T01:42:00"}, "startedAt", "must include"),
        ({"runId": RUN_ID, "startedAt": "yesterday"}, "startedAt", "ISO-8601"),
    ],
)
def test_started_names_the_offending_field(
    payload: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_run_started(payload)
    assert message in reasons(exc)[field]


# --- heartbeat --------------------------------------------------------------------------


def test_heartbeat_parses_progress_and_timestamp() -> None:
    parsed = parse_run_heartbeat({"runId": RUN_ID, "progress": 40, "ts": "2025-11-11T01:42:30Z"})
    assert parsed == RunHeartbeat(UUID(RUN_ID), 0.4, datetime(2025, 11, 11, 1, 42, 30, tzinfo=UTC))
    assert parse_run_heartbeat({"runId": RUN_ID, "ts": "2025-11-11T01:42:30Z"}).progress is None


@pytest.mark.parametrize(
    "progress", [-0.01, 100.5, 1e9, True, False, "50", [0.5], math.nan, math.inf]
)
def test_heartbeat_with_invalid_progress_is_rejected(progress: object) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_run_heartbeat({"runId": RUN_ID, "progress": progress, "ts": "2025-11-11T01:42:30Z"})
    assert "progress" in reasons(exc)


def test_heartbeat_reports_every_bad_field_at_once() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_run_heartbeat({"runId": "x", "progress": -1})
    assert set(reasons(exc)) == {"runId", "progress", "ts"}


@given(st.floats(min_value=0, max_value=1))
def test_fractions_are_kept_as_they_are(value: float) -> None:
    assert normalise_progress(value) == value


@given(st.floats(min_value=1, max_value=100, exclude_min=True))
def test_percentages_are_divided_by_a_hundred(value: float) -> None:
    assert normalise_progress(value) == pytest.approx(value / 100)


@given(st.integers(min_value=2, max_value=100))
def test_integer_percentages_are_divided_by_a_hundred(value: int) -> None:
    assert normalise_progress(value) == value / 100


@given(st.one_of(st.integers(min_value=0, max_value=100), st.floats(min_value=0, max_value=100)))
def test_normalised_progress_is_always_a_fraction(value: float) -> None:
    assert 0 <= normalise_progress(value) <= 1


@given(
    st.one_of(
        st.floats(max_value=0, exclude_max=True),
        st.floats(min_value=100, exclude_min=True),
        st.integers(max_value=-1),
        st.integers(min_value=101),
        st.booleans(),
        st.text(),
        st.none(),
    )
)
def test_anything_else_is_not_progress(value: object) -> None:
    with pytest.raises(ValueError, match="fraction"):
        normalise_progress(value)


# --- completed --------------------------------------------------------------------------


def test_completed_reads_every_field() -> None:
    parsed = parse_run_completed(
        {
            "runId": RUN_ID,
            "metricCode": "ratio.reserves_to_base",
            "status": "SUCCESS",
            "versionTs": "2025-11-11T01-43-05",
            "outputManifest": "metrics/x/manifest.json",
            "rowCount": 5421,
        }
    )
    assert parsed == RunCompleted(
        run_id=UUID(RUN_ID),
        metric_code="ratio.reserves_to_base",
        succeeded=True,
        version_ts="2025-11-11T01-43-05",
        output_manifest="metrics/x/manifest.json",
        row_count=5421,
        error=None,
    )
    assert parsed.target_status is S.SUCCEEDED


def test_failure_keeps_its_error() -> None:
    parsed = parse_run_completed({"runId": RUN_ID, "status": "FAILURE", "error": "boom"})
    assert (parsed.succeeded, parsed.error, parsed.target_status) == (False, "boom", S.FAILED)
    assert parse_run_completed({"runId": RUN_ID, "status": "FAILURE", "error": ""}).error is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"status": "success"}, "status"),
        ({"status": "DONE"}, "status"),
        ({"status": True}, "status"),
        ({"status": None}, "status"),
        ({"status": "SUCCESS", "rowCount": -1}, "rowCount"),
        ({"status": "SUCCESS", "rowCount": True}, "rowCount"),
        ({"status": "SUCCESS", "rowCount": 1.5}, "rowCount"),
        ({"status": "SUCCESS", "rowCount": "12"}, "rowCount"),
        ({"status": "SUCCESS", "error": {"message": "x"}}, "error"),
        ({"status": "SUCCESS", "versionTs": 20251111}, "versionTs"),
        ({"status": "SUCCESS", "outputManifest": ""}, "outputManifest"),
        ({"status": "SUCCESS", "metricCode": 7}, "metricCode"),
        ({"status": "FAILURE", "retryable": "false"}, "retryable"),
        ({"status": "FAILURE", "retryable": 0}, "retryable"),
    ],
)
def test_completed_names_the_offending_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_run_completed({"runId": RUN_ID, **fields})
    assert list(reasons(exc)) == [field]


def test_a_failure_may_say_it_is_not_retryable() -> None:
    """SPEC §4.2: `retryable` is a boolean, true when absent (or null)."""
    said = parse_run_completed({"runId": RUN_ID, "status": "FAILURE", "retryable": False})
    assert (said.succeeded, said.retryable) == (False, False)
    for payload in ({}, {"retryable": None}, {"retryable": True}):
        parsed = parse_run_completed({"runId": RUN_ID, "status": "FAILURE", **payload})
        assert parsed.retryable is True


@given(
    st.one_of(
        st.integers(),
        st.floats(allow_nan=False),
        st.text(),
        st.lists(st.booleans(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.booleans(), max_size=2),
    )
)
def test_a_retryable_that_is_not_a_boolean_is_rejected_naming_it(value: object) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_run_completed({"runId": RUN_ID, "status": "FAILURE", "retryable": value})
    assert reasons(exc) == {"retryable": "must be a boolean (true or false)"}


def test_completed_without_status_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_run_completed({"runId": RUN_ID})
    assert reasons(exc) == {"status": "is required"}


def test_parse_feedback_dispatches_on_type() -> None:
    ts = "2025-11-11T01:42:30Z"
    assert isinstance(parse_feedback("metric_run_started", {"runId": RUN_ID}), RunStarted)
    assert isinstance(
        parse_feedback("metric_run_heartbeat", {"runId": RUN_ID, "ts": ts}), RunHeartbeat
    )
    completed = {"runId": RUN_ID, "status": "FAILURE"}
    assert isinstance(parse_feedback("metric_run_completed", completed), RunCompleted)
    with pytest.raises(ValueError, match="not a worker feedback event"):
        parse_feedback("projection_update", {})


# --- the lifecycle table ----------------------------------------------------------------


@given(st.sampled_from(RunStatus), st.sampled_from(RunStatus))
def test_domain_table_is_the_spec_table(current: RunStatus, target: RunStatus) -> None:
    # a move is in the spec's table exactly when some cause allows it
    allowing = [c for c, m in LIFECYCLE.items() if current in m.sources and target in m.targets]
    assert bool(allowing) == ((current, target) in SPEC_TABLE)
    for cause in Cause:
        if cause in allowing:
            check_transition(current, target, cause)
        else:
            with pytest.raises(IllegalTransition, match=f"from {current} to {target}"):
                check_transition(current, target, cause)


def test_cancel_moves_only_runs_that_have_not_ended() -> None:
    assert {S.PENDING_DEPENDENCIES, S.QUEUED, S.DISPATCHED, S.RUNNING} == LIFECYCLE[
        Cause.CANCEL
    ].sources


# SPEC §5.5 by cause: the from-statuses each status-changing statement is given.
SPEC_CAUSES: dict[Cause, tuple[set[RunStatus], set[RunStatus]]] = {
    Cause.READY: ({S.PENDING_DEPENDENCIES}, {S.QUEUED}),
    Cause.CANCEL: ({S.PENDING_DEPENDENCIES, S.QUEUED, S.DISPATCHED, S.RUNNING}, {S.CANCELED}),
    Cause.PUBLISHED: ({S.QUEUED}, {S.DISPATCHED}),
    Cause.DISPATCH_GAVE_UP: ({S.QUEUED}, {S.FAILED}),
    Cause.WORKER_ALIVE: ({S.DISPATCHED}, {S.RUNNING}),
    Cause.COMPLETED: ({S.DISPATCHED, S.RUNNING, S.TIMED_OUT}, {S.SUCCEEDED, S.FAILED}),
    Cause.START_TIMEOUT: ({S.DISPATCHED}, {S.TIMED_OUT}),
    Cause.HEARTBEAT_TIMEOUT: ({S.RUNNING}, {S.TIMED_OUT}),
}


@given(st.sampled_from(Cause), st.sampled_from(RunStatus), st.sampled_from(RunStatus))
def test_each_cause_moves_exactly_as_the_spec_table_says(
    cause: Cause, current: RunStatus, target: RunStatus
) -> None:
    sources, targets = SPEC_CAUSES[cause]
    if current in sources and target in targets:
        assert change_for(cause, current, target).target is target
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, target, cause)


def test_a_cause_with_one_move_needs_no_statuses_named() -> None:
    assert change_for(Cause.START_TIMEOUT).source is S.DISPATCHED
    assert change_for(Cause.HEARTBEAT_TIMEOUT).source is S.RUNNING
    with pytest.raises(ValueError, match="several source"):
        change_for(Cause.CANCEL)


feedback_events = st.one_of(
    st.builds(RunStarted, st.just(uuid4()), st.none()),
    st.builds(RunHeartbeat, st.just(uuid4()), st.none(), st.just(datetime.now(UTC))),
    st.builds(
        RunCompleted,
        st.just(uuid4()),
        st.none(),
        st.booleans(),
        st.none(),
        st.none(),
        st.none(),
        st.none(),
    ),
)


@given(feedback_events, st.sampled_from(RunStatus))
def test_feedback_moves_a_run_only_along_its_rows_of_the_table(
    feedback: WorkerFeedback, current: RunStatus
) -> None:
    if isinstance(feedback, RunCompleted):
        expected = feedback.target_status if current in COMPLETES_FROM else None
    elif current is S.RUNNING:
        expected = S.RUNNING  # a confirmation, no transition
    else:
        expected = S.RUNNING if current in STARTS_FROM else None

    if expected is None:
        with pytest.raises(IllegalTransition, match=f"from {current}"):
            target_status(feedback, current)
    else:
        assert target_status(feedback, current) is expected
        assert expected is current or (current, expected) in SPEC_TABLE


# --- the retry rule ---------------------------------------------------------------------


@given(st.sampled_from(RunStatus), st.integers(1, 20), st.integers(1, 20))
def test_only_failed_or_timed_out_runs_below_max_attempts_retry(
    status: RunStatus, attempt: int, max_attempts: int
) -> None:
    expected = status in {S.FAILED, S.TIMED_OUT} and attempt < max_attempts
    assert should_retry(status, attempt, max_attempts) is expected


def test_retry_delay_doubles_from_the_base() -> None:
    base = timedelta(seconds=30)
    assert [retry_delay(base, n) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=30),
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
    ]


@given(st.integers(1, 20), st.integers(1, 3600))
def test_each_attempt_waits_twice_as_long_as_the_previous(attempt: int, seconds: int) -> None:
    base = timedelta(seconds=seconds)
    assert retry_delay(base, attempt + 1) == 2 * retry_delay(base, attempt)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert retry_delay(timedelta(seconds=30), 10_000) == timedelta(seconds=30) * 2**20
    with pytest.raises(ValueError, match="attempt"):
        retry_delay(timedelta(seconds=30), 0)


# --- exact reasons and edges (they end up in event_log and API problems) -----------------


def test_row_count_zero_is_accepted() -> None:
    # An empty result is a success with no rows, not a malformed event (SPEC §4.2: 0 … 2^63-1).
    parsed = parse_run_completed({"runId": RUN_ID, "status": "SUCCESS", "rowCount": 0})
    assert parsed.row_count == 0


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_any_non_negative_row_count_is_kept(row_count: int) -> None:
    parsed = parse_run_completed({"runId": RUN_ID, "status": "SUCCESS", "rowCount": row_count})
    assert parsed.row_count == row_count


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"runId": "run-1", "status": "SUCCESS"}, {"runId": "must be a UUID"}),
        ({"status": "DONE"}, {"status": "must be 'SUCCESS' or 'FAILURE'"}),
        (
            {"status": "SUCCESS", "rowCount": -1},
            {"rowCount": "must be a non-negative integer, at most 9223372036854775807 (2^63-1)"},
        ),
        ({"status": "SUCCESS", "error": 42}, {"error": "must be a string"}),
    ],
)
def test_completed_gives_the_exact_reason(fields: dict[str, Any], expected: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_run_completed({"runId": RUN_ID, **fields})
    assert reasons(exc) == expected


def test_invalid_progress_gives_the_progress_rule() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_run_heartbeat({"runId": RUN_ID, "progress": 101, "ts": "2025-11-11T01:42:30Z"})
    assert reasons(exc) == {"progress": PROGRESS_RULE}
    assert PROGRESS_RULE == "must be a fraction in [0, 1] or a percentage in (1, 100]"


def test_optional_fields_may_be_absent_or_null() -> None:
    assert parse_run_started({"runId": RUN_ID, "startedAt": None}).started_at is None
    parsed = parse_run_completed(
        {"runId": RUN_ID, "status": "SUCCESS", "metricCode": None, "versionTs": None}
    )
    assert (parsed.metric_code, parsed.version_ts, parsed.output_manifest) == (None, None, None)
    assert (parsed.row_count, parsed.error) == (None, None)


def test_a_completed_event_for_a_run_not_out_yet_names_where_it_is_allowed() -> None:
    completed = RunCompleted(uuid4(), None, True, None, None, None, None)
    with pytest.raises(IllegalTransition) as exc:
        target_status(completed, S.QUEUED)
    assert str(exc.value) == (
        "run cannot move from queued to succeeded on a completed event "
        "(allowed from dispatched, running, timed_out)"
    )


def test_a_started_event_after_the_outcome_is_refused_by_the_table() -> None:
    with pytest.raises(IllegalTransition) as exc:
        target_status(RunStarted(uuid4(), None), S.SUCCEEDED)
    assert str(exc.value) == (
        "run cannot move from succeeded to running on a started or heartbeat event "
        "(allowed from dispatched)"
    )


def test_completed_statuses_map_to_outcomes() -> None:
    assert COMPLETION_STATUSES == {"SUCCESS": True, "FAILURE": False}
    assert {S.DISPATCHED, S.RUNNING, S.TIMED_OUT} == LIFECYCLE[Cause.COMPLETED].sources
