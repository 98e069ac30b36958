"""The demo's narrator prints a chapter in the same order whatever order things happened in."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.application.ports.runs import RunSummary
from metrics_orchestrator.domain.model import MetricRun, RunStatus, RunTrigger
from metrics_orchestrator.interfaces.demo_narration import Narrator, Snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _run(code: str, attempt: int, version: str, status: RunStatus) -> RunSummary:
    payload = {
        "catalog": {"datasets": {"ds": {"manifestPath": f"datasets/ds/versions/{version}/m.json"}}}
    }
    run = MetricRun(
        id=uuid.uuid4(),
        metric_id=f"m-{code}",
        status=status,
        trigger=RunTrigger.RETRY if attempt > 1 else RunTrigger.AUTOMATIC,
        attempt=attempt,
        created_at=NOW,
        request_payload=payload,
        started_at=NOW,
    )
    return RunSummary(run, code)


RUNS = [
    _run("b.metric", 1, "v1", RunStatus.FAILED),
    _run("b.metric", 2, "v1", RunStatus.SUCCEEDED),
    _run("a.metric", 1, "v1", RunStatus.SUCCEEDED),
    _run("a.metric", 1, "v2", RunStatus.SUCCEEDED),
]
FEEDBACK = [
    event
    for summary in RUNS
    for event in (
        {"type": "metric_run_started", "runId": str(summary.run.id)},
        {"type": "metric_run_heartbeat", "runId": str(summary.run.id)},
        {
            "type": "metric_run_completed",
            "runId": str(summary.run.id),
            "status": "FAILURE" if summary.run.status is RunStatus.FAILED else "SUCCESS",
            "error": "boom",
        },
    )
]


def _narrator() -> Narrator:
    return Narrator(max_attempts={"b.metric": 3}, goes_silent=lambda _code, _attempt: False)


@given(st.permutations(FEEDBACK))
def test_lines_do_not_depend_on_arrival_order(arrival: list[dict[str, str]]) -> None:
    narrator = _narrator()
    for event in arrival:
        narrator.feedback(event)
    snapshot = Snapshot(RUNS, [])
    assert narrator.caught_up(snapshot)
    lines = [
        " ".join(line.replace("[dim]", "").replace("[/dim]", "").split())
        for line in narrator.chapter_lines(snapshot)
    ]
    assert lines == [
        "worker (simulated) a.metric first attempt on ds=v1 started",
        "worker (simulated) a.metric first attempt on ds=v1 succeeded",
        "worker (simulated) a.metric first attempt on ds=v2 started",
        "worker (simulated) a.metric first attempt on ds=v2 succeeded",
        "worker (simulated) b.metric first attempt started",
        "worker (simulated) b.metric first attempt failed: boom",
        "worker (simulated) b.metric retry 2 of 3 started",
        "worker (simulated) b.metric retry 2 of 3 succeeded",
    ]
    assert narrator.chapter_lines(snapshot) == []  # told once


def test_not_caught_up_until_every_end_in_the_database_was_heard() -> None:
    narrator = _narrator()
    for event in FEEDBACK[:-1]:
        narrator.feedback(event)
    assert not narrator.caught_up(Snapshot(RUNS, []))


def _with(summary: RunSummary, **changes: object) -> RunSummary:
    return RunSummary(dataclasses.replace(summary.run, **changes), summary.metric_code)  # type: ignore[arg-type]


def test_the_reference_workers_runs_are_told_from_the_database_once_each() -> None:
    # b.metric attempt 1 is the simulated worker's (a scripted fault); the rest are computed.
    narrator = Narrator(
        max_attempts={"b.metric": 3},
        goes_silent=lambda _code, _attempt: False,
        simulated=lambda code, attempt: (code, attempt) == ("b.metric", 1),
    )
    running = [_with(r, status=RunStatus.RUNNING, row_count=None) for r in RUNS]
    done = [_with(r, row_count=507) for r in RUNS]
    narrator.observe(Snapshot(running, []))
    for _ in range(2):  # a chapter polls the database many times
        narrator.observe(Snapshot(done, []))
    narrator.feedback({"type": "metric_run_started", "runId": str(RUNS[0].run.id)})
    assert not narrator.caught_up(Snapshot(done, []))  # the simulated failure is not heard yet
    narrator.feedback(
        {
            "type": "metric_run_completed",
            "runId": str(RUNS[0].run.id),
            "status": "FAILURE",
            "error": "boom",
        }
    )
    assert narrator.caught_up(Snapshot(done, []))
    lines = [
        " ".join(line.replace("[dim]", "").replace("[/dim]", "").split())
        for line in narrator.chapter_lines(Snapshot(done, []))
    ]
    assert lines == [
        "worker (reference) a.metric first attempt on ds=v1 started",
        "worker (reference) a.metric first attempt on ds=v1 succeeded: 507 rows",
        "worker (reference) a.metric first attempt on ds=v2 started",
        "worker (reference) a.metric first attempt on ds=v2 succeeded: 507 rows",
        "worker (simulated) b.metric first attempt started",
        "worker (simulated) b.metric first attempt failed: boom",
        "worker (reference) b.metric retry 2 of 3 started",
        "worker (reference) b.metric retry 2 of 3 succeeded: 507 rows",
    ]
