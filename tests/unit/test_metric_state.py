"""A metric's state (domain/metric_state.py): one word and a reason for any facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.metric_state import (
    InputFact,
    MetricFacts,
    MetricState,
    RunFact,
    metric_state,
)
from metrics_orchestrator.domain.model import RunStatus

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
FRESH = NOW - timedelta(days=1)
STALE = NOW - timedelta(days=30)


def run(
    status: RunStatus,
    minutes_ago: int,
    *,
    attempt: int = 1,
    retry_of: RunFact | None = None,
    not_before: datetime | None = None,
    message: str | None = None,
    decided: bool = False,
) -> RunFact:
    created = NOW - timedelta(minutes=minutes_ago)
    ended = status in {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT}
    return RunFact(
        id=uuid4(),
        retry_of=retry_of.id if retry_of else None,
        status=status,
        attempt=attempt,
        created_at=created,
        not_before=not_before,
        completed_at=created + timedelta(minutes=1) if ended else None,
        message=message,
        retry_decided=decided,
    )


def facts(
    *runs: RunFact,
    inputs: tuple[InputFact, ...] = (InputFact("a", FRESH), InputFact("b", FRESH)),
    enabled: bool = True,
    max_attempts: int = 2,
) -> MetricFacts:
    return MetricFacts("m", enabled, max_attempts, 7, tuple(runs), inputs)


def test_a_metric_whose_newest_run_succeeded_is_healthy() -> None:
    verdict = metric_state(facts(run(RunStatus.SUCCEEDED, 10)), NOW)
    assert verdict.state is MetricState.HEALTHY
    assert verdict.reason == "last run succeeded at 2026-03-10 11:51:00 UTC"


def test_an_all_new_pending_run_collecting_fresh_inputs_is_normal_coalescing() -> None:
    held = (InputFact("a", FRESH, held=True), InputFact("b", FRESH))
    verdict = metric_state(
        facts(run(RunStatus.PENDING_DEPENDENCIES, 1), run(RunStatus.SUCCEEDED, 10), inputs=held),
        NOW,
    )
    assert verdict.state is MetricState.HEALTHY
    assert verdict.reason.endswith("; next run has new versions of a, collecting b")
    assert verdict.waiting_for == ("b",)


def test_a_pending_run_held_by_a_stale_input_is_waiting_and_says_since_when() -> None:
    inputs = (InputFact("a", FRESH, held=True), InputFact("b", STALE))
    verdict = metric_state(
        facts(run(RunStatus.PENDING_DEPENDENCIES, 1), run(RunStatus.SUCCEEDED, 10), inputs=inputs),
        NOW,
    )
    assert verdict.state is MetricState.WAITING
    assert verdict.reason.startswith("next run waiting for b (stale since 2026-02-15 12:00:00 UTC)")


def test_a_metric_that_never_ran_waits_for_its_missing_inputs() -> None:
    inputs = (InputFact("a", FRESH, held=True), InputFact("b", None))
    pending = metric_state(facts(run(RunStatus.PENDING_DEPENDENCIES, 1), inputs=inputs), NOW)
    assert (pending.state, pending.reason) == (
        MetricState.WAITING,
        "first run waiting for b (no version yet)",
    )
    nothing = metric_state(facts(inputs=(InputFact("a", None),)), NOW)
    assert nothing.reason == "first run waiting for a (no version yet)"
    idle = metric_state(facts(), NOW)
    assert idle.state is MetricState.WAITING
    assert idle.reason == "never ran: it runs on the next new version of its inputs"


def test_a_run_in_flight_is_running_whatever_came_before() -> None:
    failed = run(RunStatus.FAILED, 30)
    retry = run(RunStatus.RUNNING, 5, attempt=2, retry_of=failed)
    verdict = metric_state(facts(failed, retry, max_attempts=3), NOW)
    assert verdict.state is MetricState.RUNNING
    assert verdict.reason == "attempt 2 of 3 running (a retry of attempt 1)"
    queued = metric_state(facts(run(RunStatus.QUEUED, 1), run(RunStatus.SUCCEEDED, 9)), NOW)
    assert (queued.state, queued.reason) == (MetricState.RUNNING, "a run is queued")


def test_a_chain_that_failed_with_no_attempt_left_is_failing() -> None:
    # reserves.real_pesos in the demo: its newest run and that run's retry both failed
    first = run(RunStatus.FAILED, 30, message="boom")
    second = run(RunStatus.FAILED, 20, attempt=2, retry_of=first, message="boom again")
    verdict = metric_state(facts(run(RunStatus.SUCCEEDED, 90), first, second), NOW)
    assert verdict.state is MetricState.FAILING
    assert verdict.reason == (
        "attempt 2 of 2 failed at 2026-03-10 11:41:00 UTC: boom again; no attempt left"
    )


def test_a_failure_whose_retry_is_scheduled_is_failing_and_says_when() -> None:
    timed_out = run(RunStatus.TIMED_OUT, 30)
    later = NOW + timedelta(minutes=5)
    retry = run(RunStatus.QUEUED, 2, attempt=2, retry_of=timed_out, not_before=later)
    verdict = metric_state(facts(timed_out, retry), NOW)
    assert verdict.state is MetricState.FAILING
    assert verdict.reason.endswith("; attempt 2 scheduled for 2026-03-10 12:05:00 UTC")
    assert "timed out" in verdict.reason
    # once due, the retry is what is going on
    assert metric_state(facts(timed_out, retry), later).state is MetricState.RUNNING


def test_a_long_or_multi_line_error_is_one_short_line_in_the_reason() -> None:
    failed = run(RunStatus.FAILED, 30, message="Traceback:\n  " + "x" * 500, decided=True)
    reason = metric_state(facts(failed), NOW).reason
    quoted = reason.split(": ", 1)[1].split("; ")[0]
    assert quoted.startswith("Traceback: xxx")
    assert len(quoted) == 160
    assert quoted.endswith("\N{HORIZONTAL ELLIPSIS}")


def test_a_failure_not_retried_says_so() -> None:
    not_retryable = run(RunStatus.FAILED, 30, decided=True)
    assert metric_state(facts(not_retryable), NOW).reason.endswith("; not retried automatically")
    undecided = run(RunStatus.FAILED, 30)
    assert metric_state(facts(undecided), NOW).reason.endswith("; a retry is being decided")


def test_the_newest_chain_speaks_not_a_late_retry_of_an_older_one() -> None:
    old_first = run(RunStatus.FAILED, 60)
    newer_chain = run(RunStatus.SUCCEEDED, 50)
    old_retry = run(RunStatus.FAILED, 40, attempt=2, retry_of=old_first)
    assert metric_state(facts(old_first, newer_chain, old_retry), NOW).state is (
        MetricState.HEALTHY
    )


def test_a_canceled_chain_leaves_the_verdict_to_the_one_before() -> None:
    failed = run(RunStatus.FAILED, 60, decided=True)
    canceled = run(RunStatus.CANCELED, 10)
    assert metric_state(facts(failed, canceled), NOW).state is MetricState.FAILING
    succeeded = run(RunStatus.SUCCEEDED, 60)
    assert metric_state(facts(succeeded, canceled), NOW).state is MetricState.HEALTHY


def test_canceling_a_failures_retry_keeps_the_metric_failing() -> None:
    failed = run(RunStatus.FAILED, 60, decided=True)
    retry = run(RunStatus.CANCELED, 50, attempt=2, retry_of=failed)
    verdict = metric_state(facts(failed, retry, max_attempts=3), NOW)
    assert verdict.state is MetricState.FAILING
    assert verdict.reason.endswith("; its retry was canceled")


def test_a_chain_whose_first_attempt_is_outside_the_window_is_older_than_one_inside() -> None:
    outside = UUID(int=1)
    retry = RunFact(uuid4(), outside, RunStatus.FAILED, 2, NOW - timedelta(minutes=5))
    newer_root = run(RunStatus.SUCCEEDED, 30)
    assert metric_state(facts(retry, newer_root), NOW).state is MetricState.HEALTHY


# --- properties over any facts ------------------------------------------------------------------

statuses = st.sampled_from(list(RunStatus))


@st.composite
def any_runs(draw: st.DrawFn) -> tuple[RunFact, ...]:
    runs: list[RunFact] = []
    for minutes in sorted(
        draw(st.lists(st.integers(1, 600), max_size=6, unique=True)), reverse=True
    ):
        parent = draw(st.sampled_from([None, *runs])) if runs else None
        runs.append(
            run(
                draw(statuses),
                minutes,
                attempt=parent.attempt + 1 if parent else 1,
                retry_of=parent,
                not_before=NOW + timedelta(minutes=draw(st.integers(-10, 10))),
            )
        )
    return tuple(runs)


any_inputs = st.lists(
    st.builds(
        InputFact,
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([None, FRESH, STALE]),
        st.booleans(),
    ),
    max_size=3,
    unique_by=lambda i: i.dataset_id,
).map(tuple)


@given(any_runs(), any_inputs, st.booleans())
def test_every_combination_gets_one_state_and_a_reason(
    runs: tuple[RunFact, ...], inputs: tuple[InputFact, ...], enabled: bool
) -> None:
    verdict = metric_state(MetricFacts("m", enabled, 3, 7, runs, inputs), NOW)
    assert verdict.reason
    if not enabled:
        assert verdict.state is MetricState.DISABLED
    in_flight = {RunStatus.DISPATCHED, RunStatus.RUNNING}
    if enabled and any(r.status in in_flight for r in runs):
        assert verdict.state is MetricState.RUNNING
    if verdict.state is MetricState.HEALTHY:
        assert any(r.status is RunStatus.SUCCEEDED for r in runs)


@given(any_runs(), any_inputs)
def test_the_order_of_the_facts_does_not_matter(
    runs: tuple[RunFact, ...], inputs: tuple[InputFact, ...]
) -> None:
    forward = metric_state(MetricFacts("m", True, 3, 7, runs, inputs), NOW)
    backward = metric_state(MetricFacts("m", True, 3, 7, runs[::-1], inputs), NOW)
    assert forward == backward
