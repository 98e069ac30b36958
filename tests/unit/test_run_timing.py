"""How long a run waited and ran, and when it is slow for its metric (domain/run_timing.py),
and what the dashboard says of it (interfaces/web/run_rows.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.model import MetricRun, RunStatus, RunTrigger
from metrics_orchestrator.domain.run_timing import (
    SLOW_FACTOR,
    SLOW_MARGIN,
    Span,
    is_slow,
    run_timing,
    slow_threshold,
)
from metrics_orchestrator.interfaces.web.run_rows import slow_note, timed_run

T0 = datetime(2025, 11, 11, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def _run(status: RunStatus, **moments: datetime | None) -> MetricRun:
    return MetricRun(
        id=uuid4(),
        metric_id="m",
        status=status,
        trigger=RunTrigger.AUTOMATIC,
        attempt=1,
        created_at=T0,
        **moments,  # type: ignore[arg-type]
    )


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- spans ---------------------------------------------------------------------------------


def test_a_finished_run_waited_from_queued_to_started_and_ran_until_completed() -> None:
    run = _run(
        RunStatus.SUCCEEDED,
        queued_at=_at(1),
        dispatched_at=_at(2),
        started_at=_at(4),
        completed_at=_at(14),
    )

    timing = run_timing(run, NOW)

    assert timing.wait == Span(timedelta(minutes=3))
    assert timing.run == Span(timedelta(minutes=10))
    assert timing.total == Span(timedelta(minutes=13))


def test_a_running_run_runs_until_now_and_says_so() -> None:
    run = _run(RunStatus.RUNNING, queued_at=_at(0), started_at=_at(20))

    timing = run_timing(run, NOW)

    assert timing.wait == Span(timedelta(minutes=20))
    assert timing.run == Span(timedelta(minutes=40), ongoing=True)
    assert timing.total == Span(timedelta(hours=1), ongoing=True)


def test_a_queued_run_is_still_waiting_and_has_not_run() -> None:
    timing = run_timing(_run(RunStatus.QUEUED, queued_at=_at(50)), NOW)

    assert timing.wait == Span(timedelta(minutes=10), ongoing=True)
    assert timing.run is None
    assert timing.total == Span(timedelta(minutes=10), ongoing=True)


def test_a_run_that_ended_without_starting_waited_until_it_ended() -> None:
    run = _run(RunStatus.TIMED_OUT, queued_at=_at(0), completed_at=_at(15))

    timing = run_timing(run, NOW)

    assert timing.wait == Span(timedelta(minutes=15))
    assert timing.run is None
    assert timing.total == Span(timedelta(minutes=15))


def test_a_pending_run_was_never_queued_so_nothing_is_timed() -> None:
    timing = run_timing(_run(RunStatus.PENDING_DEPENDENCIES), NOW)

    assert (timing.wait, timing.run, timing.total) == (None, None, None)


def test_a_worker_clock_ahead_of_ours_never_makes_a_span_negative() -> None:
    """The worker reports started_at; a start 2 s before our queued_at is a 0 s wait."""
    run = _run(
        RunStatus.SUCCEEDED,
        queued_at=_at(10),
        started_at=_at(10) - timedelta(seconds=2),
        completed_at=_at(11),
    )

    timing = run_timing(run, NOW)

    assert timing.wait == Span(timedelta(0))
    assert timing.run == Span(timedelta(minutes=1, seconds=2))


# --- slow ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usual", "threshold"),
    [
        (timedelta(minutes=5), timedelta(minutes=15)),  # 3x
        (timedelta(seconds=2), timedelta(seconds=32)),  # + 30 s: a quick metric's noise
        (timedelta(seconds=15), timedelta(seconds=45)),  # both rules agree
        (timedelta(0), timedelta(seconds=30)),
    ],
)
def test_the_slow_threshold_is_three_times_the_usual_and_at_least_30_s_more(
    usual: timedelta, threshold: timedelta
) -> None:
    assert slow_threshold(usual) == threshold
    assert not is_slow(threshold, usual)
    assert is_slow(threshold + timedelta(milliseconds=1), usual)


def test_nothing_is_slow_without_a_run_time_or_a_usual_one() -> None:
    assert not is_slow(None, timedelta(seconds=1))
    assert not is_slow(timedelta(days=1), None)


@given(
    run_s=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    usual_s=st.floats(min_value=0, max_value=1e5, allow_nan=False),
)
def test_slow_means_over_the_factor_and_over_the_margin(run_s: float, usual_s: float) -> None:
    ran, usual = timedelta(seconds=run_s), timedelta(seconds=usual_s)
    expected = ran > usual * SLOW_FACTOR and ran > usual + SLOW_MARGIN
    assert is_slow(ran, usual) is expected


# --- what the dashboard says -----------------------------------------------------------------


def test_a_slow_finished_run_says_how_much_slower_than_its_usual() -> None:
    run = _run(RunStatus.SUCCEEDED, queued_at=_at(0), started_at=_at(0), completed_at=_at(4))

    timed = timed_run(run, "fx.gap", timedelta(seconds=30), NOW)

    assert timed.slow == (
        "ran 4 min (8.0\N{MULTIPLICATION SIGN} its usual 30 s: "
        "the median of its last 20 succeeded runs)"
    )


def test_a_slow_running_run_says_for_how_long_it_has_been_running() -> None:
    run = _run(RunStatus.RUNNING, queued_at=_at(0), started_at=_at(0))

    note = slow_note(run_timing(run, NOW), timedelta(minutes=10))

    assert note is not None
    assert note.startswith("running for 1 h (6.0\N{MULTIPLICATION SIGN} its usual 10 min")


def test_a_run_within_its_usual_or_without_one_has_no_note() -> None:
    run = _run(RunStatus.SUCCEEDED, queued_at=_at(0), started_at=_at(0), completed_at=_at(4))

    assert timed_run(run, "m", timedelta(minutes=2), NOW).slow is None
    assert timed_run(run, "m", None, NOW).slow is None
    assert timed_run(_run(RunStatus.QUEUED, queued_at=_at(0)), "m", timedelta(0), NOW).slow is None


def test_a_metric_whose_runs_take_no_time_flags_a_run_over_30_s() -> None:
    run = _run(RunStatus.SUCCEEDED, queued_at=_at(0), started_at=_at(0), completed_at=_at(1))

    note = timed_run(run, "m", timedelta(0), NOW).slow

    assert note == "ran 1 min (its usual 0 ms: the median of its last 20 succeeded runs)"
