"""How long a run waited and ran, and whether it is slow for its metric (docs/ui.md "Durations").

Three spans of one run, from the moments the lifecycle records (SPEC §5.5):
- wait: from queued to started (what the queue, the dispatcher and the worker's pick-up took);
  a run that ended without starting waited until it ended;
- run: from started to completed (what the worker took);
- total: from queued to completed, the two together.
A span whose end has not happened yet runs to `now` and is *ongoing*; a span whose start was
never recorded (a pending run was never queued, a canceled one never started) is None.

"Slow" compares a run's run span with its metric's typical one, the median of its recent
succeeded runs: slow when it is over SLOW_FACTOR times that median and at least SLOW_MARGIN
longer, so a 2-second metric taking 7 seconds is not flagged (noise), and a running run can be
flagged before it ends. Pure, standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from metrics_orchestrator.domain.model import MetricRun

SLOW_FACTOR = 3.0
SLOW_MARGIN = timedelta(seconds=30)
_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Span:
    """A length of time, and whether it is still growing (its end has not happened)."""

    length: timedelta
    ongoing: bool = False


@dataclass(frozen=True, slots=True)
class RunTiming:
    wait: Span | None
    run: Span | None
    total: Span | None


def run_timing(run: MetricRun, now: datetime) -> RunTiming:
    """The wait, run and total spans of `run` as of `now` (see the module docstring)."""
    ended = run.completed_at
    wait_end = run.started_at or ended
    return RunTiming(
        wait=_span(run.queued_at, wait_end, now),
        run=_span(run.started_at, ended, now),
        total=_span(run.queued_at, ended, now),
    )


def _span(start: datetime | None, end: datetime | None, now: datetime) -> Span | None:
    if start is None:
        return None
    # worker clocks may disagree with ours by a little: a span is never negative
    if end is None:
        return Span(max(now - start, _ZERO), ongoing=True)
    return Span(max(end - start, _ZERO))


def slow_threshold(typical: timedelta) -> timedelta:
    """The run time above which a run of a metric that typically takes `typical` is slow."""
    return max(typical * SLOW_FACTOR, typical + SLOW_MARGIN)


def is_slow(run_time: timedelta | None, typical: timedelta | None) -> bool:
    """True when `run_time` exceeds the slow threshold of `typical`; False when either is
    unknown (a run that has not started, a metric that never succeeded with timings)."""
    if run_time is None or typical is None:
        return False
    return run_time > slow_threshold(typical)
