"""A metric's state in one word and one sentence: what a person needs to know (docs/ui.md).

One pure function, `metric_state`, decides it from a small set of facts (the metric's settings,
its newest runs, its inputs' freshness), which the read models load set-based for a whole list.
Every page, the CLI and the API show its answer, so they never disagree.

The states, checked in this order (the first that applies wins):

- `disabled`: the metric is disabled (it gets no runs, SPEC §5.6).
- `running`: a run is queued (and due), dispatched or running.
- `failing`: the newest chain's latest finished attempt failed or timed out, whether or not a
  retry is scheduled (until that retry is due: then it is `running`).
- `waiting`: it never succeeded, or its pending run waits for an input that has no fresh
  version (missing, or stale: a late upstream).
- `healthy`: the newest chain succeeded; a pending run that only collects new versions of
  inputs that are still fresh is normal coalescing (`all_new`), not waiting.

`stale` (SPEC §8) and `overdue` (SPEC §9) will slot in between `failing` and `waiting`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from metrics_orchestrator.domain.model import RunStatus

ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.DISPATCHED, RunStatus.RUNNING})
FAILED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})
VERDICT_STATUSES = FAILED_STATUSES | {RunStatus.SUCCEEDED}

# How many of a metric's newest runs the facts carry: enough for the newest chains (a chain has
# at most max_attempts runs, 3 by default), bounded so a list of 500 metrics stays one cheap read.
RECENT_RUNS = 12
# A reason quotes at most this much of a worker's error: it is a one-line summary.
MAX_MESSAGE = 160


class MetricState(StrEnum):
    HEALTHY = "healthy"
    WAITING = "waiting"
    RUNNING = "running"
    FAILING = "failing"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class RunFact:
    """What the state needs to know of one of the metric's recent runs."""

    id: UUID
    retry_of: UUID | None
    status: RunStatus
    attempt: int
    created_at: datetime
    not_before: datetime | None = None
    completed_at: datetime | None = None
    message: str | None = None  # the worker's error, else the status reason
    retry_decided: bool = False  # the sweeper has judged it (a retry was or was not scheduled)


@dataclass(frozen=True, slots=True)
class InputFact:
    """One dataset the metric requires: its freshest version's effective time, and whether the
    metric's pending run holds a new version of it."""

    dataset_id: str
    freshest_effective_at: datetime | None
    held: bool = False


@dataclass(frozen=True, slots=True)
class MetricFacts:
    code: str
    enabled: bool
    max_attempts: int
    required_days: int
    runs: tuple[RunFact, ...] = ()  # the newest RECENT_RUNS, any order
    inputs: tuple[InputFact, ...] = ()


@dataclass(frozen=True, slots=True)
class StateVerdict:
    state: MetricState
    reason: str
    waiting_for: tuple[str, ...] = field(default=())  # inputs the next run still needs


def metric_state(facts: MetricFacts, now: datetime) -> StateVerdict:
    """The metric's state and why, from its facts at `now` (see the module's table)."""
    if not facts.enabled:
        return StateVerdict(MetricState.DISABLED, "disabled: it gets no runs until enabled")
    runs = sorted(facts.runs, key=lambda r: (r.created_at, str(r.id)), reverse=True)
    active = [r for r in runs if r.status in ACTIVE_STATUSES and not _scheduled_retry(r, now)]
    if active:
        return StateVerdict(MetricState.RUNNING, _running_reason(active[0], facts.max_attempts))
    last = _last_verdict(runs)
    if last is not None and last.status in FAILED_STATUSES:
        return StateVerdict(MetricState.FAILING, _failing_reason(last, runs, facts, now))
    return _by_inputs(facts, runs, last, now)


def _by_inputs(
    facts: MetricFacts, runs: Sequence[RunFact], last: RunFact | None, now: datetime
) -> StateVerdict:
    pending = any(r.status is RunStatus.PENDING_DEPENDENCIES for r in runs)
    unfresh = {
        i.dataset_id: _unfresh(i, facts.required_days, now)
        for i in facts.inputs
        if not i.held and _unfresh(i, facts.required_days, now)
    }
    needed = tuple(i.dataset_id for i in facts.inputs if not i.held) if pending else ()
    blocked = ", ".join(f"{ds} ({why})" for ds, why in unfresh.items())
    if last is None:
        if pending or unfresh:
            what = blocked or ", ".join(needed)
            return StateVerdict(MetricState.WAITING, f"first run waiting for {what}", needed)
        return StateVerdict(
            MetricState.WAITING, "never ran: it runs on the next new version of its inputs"
        )
    succeeded = f"last run succeeded {_at(last.completed_at or last.created_at)}"
    if pending and unfresh:
        return StateVerdict(
            MetricState.WAITING, f"next run waiting for {blocked}; {succeeded}", needed
        )
    if pending:
        held = ", ".join(i.dataset_id for i in facts.inputs if i.held) or "nothing yet"
        collecting = f"next run has new versions of {held}, collecting {', '.join(needed)}"
        return StateVerdict(MetricState.HEALTHY, f"{succeeded}; {collecting}", needed)
    return StateVerdict(MetricState.HEALTHY, succeeded)


def _unfresh(i: InputFact, required_days: int, now: datetime) -> str:
    """Why an input has no fresh version ('' when it has one), SPEC §5.2."""
    if i.freshest_effective_at is None:
        return "no version yet"
    try:
        until = i.freshest_effective_at + timedelta(days=required_days)
    except OverflowError:
        return ""
    return "" if until > now else f"stale since {_utc(until)}"


def _scheduled_retry(run: RunFact, now: datetime) -> bool:
    """A queued retry not yet due belongs to its failing chain, not to what is running."""
    return (
        run.status is RunStatus.QUEUED
        and run.retry_of is not None
        and run.not_before is not None
        and run.not_before > now
    )


def _chains(runs: Sequence[RunFact]) -> list[list[RunFact]]:
    """The runs grouped by retry chain, newest chain first (by its first attempt here), each
    chain's attempts newest first. A chain whose first attempt is older than the facts' window
    counts as older than every chain that starts inside it."""
    by_id = {r.id: r for r in runs}
    chains: dict[UUID, list[RunFact]] = {}
    for run in runs:
        root = run
        while root.retry_of is not None and root.retry_of in by_id:
            root = by_id[root.retry_of]
        chains.setdefault(root.id, []).append(run)
    oldest = min((r.created_at for r in runs), default=datetime.min.replace(tzinfo=UTC))

    def started(chain: list[RunFact]) -> datetime:
        root = chain[-1]
        return root.created_at if root.retry_of is None else oldest - timedelta(microseconds=1)

    ordered = sorted(chains.values(), key=lambda c: (started(c), c[0].created_at), reverse=True)
    return [sorted(c, key=lambda r: r.attempt, reverse=True) for c in ordered]


def _last_verdict(runs: Sequence[RunFact]) -> RunFact | None:
    """The latest attempt that succeeded, failed or timed out, of the newest chain with one.

    A canceled attempt is an operator's choice, not a verdict: a chain canceled before any
    attempt ended (or a pending run that never ran) says nothing, so the previous chain speaks.
    """
    for chain in _chains([r for r in runs if r.status is not RunStatus.PENDING_DEPENDENCIES]):
        verdicts = [r for r in chain if r.status in VERDICT_STATUSES]
        if verdicts:
            return verdicts[0]
    return None


def _running_reason(run: RunFact, max_attempts: int) -> str:
    what = {
        RunStatus.QUEUED: "queued",
        RunStatus.DISPATCHED: "dispatched, not started yet",
        RunStatus.RUNNING: "running",
    }[run.status]
    if run.attempt > 1:
        return (
            f"attempt {run.attempt} of {max_attempts} {what} (a retry of attempt {run.attempt - 1})"
        )
    return f"a run is {what}"


def _failing_reason(
    last: RunFact, runs: Iterable[RunFact], facts: MetricFacts, now: datetime
) -> str:
    status = "timed out" if last.status is RunStatus.TIMED_OUT else "failed"
    text = f"attempt {last.attempt} of {facts.max_attempts} {status}"
    if last.completed_at is not None:
        text += f" {_at(last.completed_at)}"
    if last.message:
        text += f": {_short(last.message)}"
    retry = next((r for r in runs if r.retry_of == last.id), None)
    if retry is not None and _scheduled_retry(retry, now):
        assert retry.not_before is not None
        return f"{text}; attempt {retry.attempt} scheduled for {_utc(retry.not_before)}"
    if last.attempt >= facts.max_attempts:
        return f"{text}; no attempt left"
    if retry is not None:  # a retry that was canceled
        return f"{text}; its retry was {retry.status}"
    if last.retry_decided:
        return f"{text}; not retried automatically"
    return f"{text}; a retry is being decided"


def _short(message: str) -> str:
    """A worker's error on one line, cut to MAX_MESSAGE characters (the run page has it whole)."""
    line = " ".join(message.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _at(moment: datetime | None) -> str:
    return f"at {_utc(moment)}" if moment is not None else ""


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
