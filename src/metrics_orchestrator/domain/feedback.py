"""What worker feedback (SPEC §4.2) does to a run (SPEC §5.5). Pure functions.

The messages' shapes (type strings, builders, parsers) are in `domain/messages/`; the rules of
the lifecycle they drive are here.
"""

from __future__ import annotations

from typing import Any

from metrics_orchestrator.domain.messages.run_completed import (
    RUN_COMPLETED,
    RunCompleted,
    parse_run_completed,
)
from metrics_orchestrator.domain.messages.run_heartbeat import (
    RUN_HEARTBEAT,
    RunHeartbeat,
    parse_run_heartbeat,
)
from metrics_orchestrator.domain.messages.run_started import (
    RUN_STARTED,
    RunStarted,
    parse_run_started,
)
from metrics_orchestrator.domain.model import Cause, RunStatus, StatusChange, change_for

WorkerFeedback = RunStarted | RunHeartbeat | RunCompleted


def parse_feedback(event_type: str, payload: dict[str, Any]) -> WorkerFeedback:
    """Validate a worker event of `event_type`, naming every offending field at once."""
    if event_type == RUN_STARTED:
        return parse_run_started(payload)
    if event_type == RUN_HEARTBEAT:
        return parse_run_heartbeat(payload)
    if event_type == RUN_COMPLETED:
        return parse_run_completed(payload)
    raise ValueError(f"{event_type!r} is not a worker feedback event")


def target_status(feedback: WorkerFeedback, current: RunStatus) -> RunStatus:
    """The status `feedback` moves a run in `current` to; raises IllegalTransition if refused.

    started and heartbeat confirm a running run: it stays running (`STAYS` of the table).
    """
    return status_change(feedback, current).target


def status_change(feedback: WorkerFeedback, current: RunStatus) -> StatusChange:
    """What applying `feedback` writes: from `current` to its target, for its cause."""
    if isinstance(feedback, RunCompleted):
        return change_for(Cause.COMPLETED, current, feedback.target_status)
    return change_for(Cause.WORKER_ALIVE, current, RunStatus.RUNNING)


# A run in one of these has ended: nothing a worker says can make it live again.
ENDED_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELED}
)


def late_heartbeat_key(feedback: WorkerFeedback, current: RunStatus) -> str | None:
    """The one event key every heartbeat of an ended run is recorded under (issue 20).

    A worker that outlives its run's timeout keeps heartbeating until it finishes: each
    heartbeat has its own body, so without this each would be a rejection of its own. Under
    one key per run the first is recorded (rejected, with the reason) and the rest are
    duplicates of it. None when `feedback` is not a heartbeat of an ended run.
    """
    if isinstance(feedback, RunHeartbeat) and current in ENDED_STATUSES:
        return f"{RUN_HEARTBEAT}:late:{feedback.run_id}"
    return None
