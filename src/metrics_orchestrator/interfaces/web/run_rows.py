"""What the runs list and a run's page say of its durations: wait, run and total, and a "slow"
badge when its run time is far over its metric's usual (domain/run_timing.py decides).

A metric's usual run time is the median of its newest succeeded runs, read for a whole page in
one statement (`QueryService.run_summaries`, the metrics list's "Duration" column).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from metrics_orchestrator.application.ports.runs import RunSummary
from metrics_orchestrator.application.queries import DURATION_RUNS, QueryService
from metrics_orchestrator.domain.model import MetricRun
from metrics_orchestrator.domain.run_timing import RunTiming, is_slow, run_timing
from metrics_orchestrator.interfaces.web.presenters import duration


@dataclass(frozen=True, slots=True)
class TimedRun:
    """A run with its durations, and why it is slow (the badge's tooltip) when it is."""

    run: MetricRun
    metric_code: str
    timing: RunTiming
    slow: str | None = None


def usual_run_times(queries: QueryService, codes: Iterable[str]) -> dict[str, timedelta]:
    """Each metric's median run time over its newest succeeded runs (one read for all
    `codes`); a metric with no such run is left out."""
    summaries = queries.run_summaries(sorted(set(codes)))
    return {
        code: timedelta(seconds=s.p50_duration_seconds)
        for code, s in summaries.items()
        if s.p50_duration_seconds is not None
    }


def timed_runs(
    page: Sequence[RunSummary], usual: Mapping[str, timedelta], now: datetime
) -> list[TimedRun]:
    return [timed_run(s.run, s.metric_code, usual.get(s.metric_code), now) for s in page]


def timed_run(run: MetricRun, metric_code: str, usual: timedelta | None, now: datetime) -> TimedRun:
    timing = run_timing(run, now)
    return TimedRun(run, metric_code, timing, slow_note(timing, usual))


def slow_note(timing: RunTiming, usual: timedelta | None) -> str | None:
    """`ran 4 min (8.0 times its usual 30 s: the median of its last 20 succeeded runs)` when the
    run is slow; None when it is not, or when it is not known to be."""
    ran = timing.run.length if timing.run else None
    if ran is None or usual is None or not is_slow(ran, usual):
        return None
    verb = "running for" if timing.run and timing.run.ongoing else "ran"
    times = f"{ran / usual:.1f}\N{MULTIPLICATION SIGN} " if usual else ""
    return (
        f"{verb} {duration(ran)} ({times}its usual {duration(usual)}: "
        f"the median of its last {DURATION_RUNS} succeeded runs)"
    )
