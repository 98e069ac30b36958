"""How the demo tells what happened: database snapshots, and one line per thing that happened.

The workers and the sweeper act on their own threads, in whatever order messages arrive.
The narrator only collects what they did (the simulated worker tells it each event it sends;
what the reference worker did is read from the database, where its feedback lands); at the
end of a chapter (once its effects are in the database) it prints the chapter's lines sorted
by metric, input versions and attempt, so the same story prints in the same order every time.
Every line names the metric and what the run is: "first attempt", "retry 2 of 3", "manual run".
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from metrics_orchestrator.application.ports.events import LoggedEvent
from metrics_orchestrator.application.ports.runs import RunSummary
from metrics_orchestrator.application.runs import SweepReport
from metrics_orchestrator.domain.incidents import Incident
from metrics_orchestrator.domain.model import RunStatus, RunTrigger
from metrics_orchestrator.domain.status_reasons import HEARTBEAT_TIMEOUT, START_TIMEOUT

TIMEOUT_REASONS = {
    HEARTBEAT_TIMEOUT: "no heartbeat within RUN_HEARTBEAT_TIMEOUT",
    START_TIMEOUT: "not started within RUN_START_TIMEOUT",
}
IN_FLIGHT = frozenset({RunStatus.QUEUED, RunStatus.DISPATCHED, RunStatus.RUNNING})
SIMULATED, REFERENCE = "worker (simulated)", "worker (reference)"
# Where a line goes within one run's story.
_STARTED, _COMPLETED, _TIMED_OUT, _SCHEDULED = 1, 2, 3, 0


@dataclass(frozen=True)
class Snapshot:
    """The runs and the projection-update events in the database at one moment."""

    runs: list[RunSummary]
    events: list[LoggedEvent]
    # SPEC §9: the newest incidents, open or resolved
    incidents: list[Incident] = field(default_factory=list)

    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if i.open]

    def statuses(self, metric_code: str) -> list[RunStatus]:
        """The statuses of a metric's runs, in the order of (input versions, attempt)."""
        runs = [r for r in self.runs if r.metric_code == metric_code]
        return [r.run.status for r in sorted(runs, key=lambda r: (versions_of(r), r.run.attempt))]

    def in_flight(self, *, except_running: bool = False) -> list[RunSummary]:
        busy = IN_FLIGHT - {RunStatus.RUNNING} if except_running else IN_FLIGHT
        return [r for r in self.runs if r.run.status in busy]

    def event_counts(self) -> Counter[str]:
        return Counter(e.status.value for e in self.events)

    def by_id(self) -> dict[UUID, RunSummary]:
        return {r.run.id: r for r in self.runs}


def versions_of(summary: RunSummary) -> str:
    """The dataset versions a run uses, e.g. `fx_daily=f1, reserves_daily=r3`."""
    payload: dict[str, Any] = summary.run.request_payload or {}
    datasets = payload.get("catalog", {}).get("datasets", {})
    if not datasets:
        return "(waiting for inputs)"
    return ", ".join(
        f"{ds}={_version_of(entry['manifestPath'])}" for ds, entry in sorted(datasets.items())
    )


def _everything_simulated(_code: str, _attempt: int) -> bool:
    return True


def _version_of(manifest_path: str) -> str:
    parts = manifest_path.split("/")
    return parts[-2] if len(parts) >= 2 else manifest_path


@dataclass(frozen=True)
class _Happening:
    run_id: UUID
    phase: int
    source: str
    text: str


@dataclass
class Narrator:
    """Collects what the worker and the sweeper did; prints it a chapter at a time."""

    max_attempts: dict[str, int]
    goes_silent: Callable[[str, int], bool]
    # Which (metric, attempt) the simulated worker answers; the reference worker does the rest.
    simulated: Callable[[str, int], bool] = _everything_simulated
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _happened: list[_Happening] = field(default_factory=list)
    _seen: set[tuple[UUID, int]] = field(default_factory=set)
    _told_events: set[int] = field(default_factory=set)
    _told_opened: set[int] = field(default_factory=set)
    _told_resolved: set[int] = field(default_factory=set)

    def feedback(self, event: dict[str, Any]) -> None:
        """The sample worker's observer: one call per feedback event it sent."""
        kind = str(event.get("type", "")).removeprefix("metric_run_")
        if kind == "heartbeat":
            return
        run_id = UUID(str(event.get("runId")))
        if kind == "started":
            self._add(_Happening(run_id, _STARTED, SIMULATED, "started"))
        elif event.get("status") == "SUCCESS":
            self._add(_Happening(run_id, _COMPLETED, SIMULATED, "succeeded"))
        else:
            error = event.get("error", "")
            self._add(_Happening(run_id, _COMPLETED, SIMULATED, f"failed: {error}"))

    def observe(self, snapshot: Snapshot) -> None:
        """What the reference worker did, as far as the database shows: its feedback went
        through the service, so a start or an end is heard once the service stored it."""
        with self._lock:
            seen = set(self._seen)
        for summary in snapshot.runs:
            run = summary.run
            if self.simulated(summary.metric_code, run.attempt):
                continue
            if run.started_at is not None and (run.id, _STARTED) not in seen:
                self._add(_Happening(run.id, _STARTED, REFERENCE, "started"))
            if (run.id, _COMPLETED) in seen:
                continue
            if run.status is RunStatus.SUCCEEDED:
                rows = "?" if run.row_count is None else str(run.row_count)
                self._add(_Happening(run.id, _COMPLETED, REFERENCE, f"succeeded: {rows} rows"))
            elif run.status is RunStatus.FAILED:
                self._add(_Happening(run.id, _COMPLETED, REFERENCE, f"failed: {run.error}"))

    def swept(self, report: SweepReport) -> None:
        for run in report.timed_out:
            why = TIMEOUT_REASONS.get(run.reason, run.reason)
            self._add(_Happening(run.id, _TIMED_OUT, "sweeper", f"timed out: {why}"))
        for retry in report.retries:
            self._add(_Happening(retry.id, _SCHEDULED, "sweeper", "scheduled after a back-off"))

    def _add(self, happening: _Happening) -> None:
        with self._lock:
            self._happened.append(happening)
            self._seen.add((happening.run_id, happening.phase))

    def caught_up(self, snapshot: Snapshot) -> bool:
        """Whether every start and end the database shows has been heard from the worker."""
        with self._lock:
            seen = set(self._seen)
        for summary in snapshot.runs:
            run = summary.run
            if run.started_at is not None and (run.id, _STARTED) not in seen:
                return False
            ended = run.status in {RunStatus.SUCCEEDED, RunStatus.FAILED}
            if ended and (run.id, _COMPLETED) not in seen:
                return False
        return True

    def chapter_lines(self, snapshot: Snapshot) -> list[str]:
        """What happened since the last call, in a stable order: events received, then runs."""
        return (
            self._event_lines(snapshot) + self._run_lines(snapshot) + self._incident_lines(snapshot)
        )

    def _incident_lines(self, snapshot: Snapshot) -> list[str]:
        """Incidents opened and resolved since the last call (SPEC §9), oldest first."""
        lines = []
        for incident in sorted(snapshot.incidents, key=lambda i: i.id):
            if incident.id not in self._told_opened:
                self._told_opened.add(incident.id)
                lines.append(
                    f"   [red]incident #{incident.id} opened[/red]: {incident.kind} "
                    f"{incident.subject} — {incident.summary}"
                )
            if not incident.open and incident.id not in self._told_resolved:
                self._told_resolved.add(incident.id)
                lines.append(
                    f"   [green]incident #{incident.id} resolved[/green]: {incident.resolution}"
                )
        return lines

    def _event_lines(self, snapshot: Snapshot) -> list[str]:
        new = [e for e in snapshot.events if e.id not in self._told_events]
        self._told_events.update(e.id for e in new)
        lines = []
        for event in new:
            payload = event.payload or {}
            dataset = payload.get("dataset_id", "?")
            manifest = str(payload.get("version_manifest_path", ""))
            what = f"{dataset}={_version_of(manifest)}" if manifest else f"{dataset} (no version)"
            if not payload:
                what = "(not an event)"
            outcome = event.status.value + (f": {event.error}" if event.error else "")
            lines.append(f"    [dim]{'intake':<18}[/dim] {what:<41} {outcome}")
        return sorted(lines)

    def _run_lines(self, snapshot: Snapshot) -> list[str]:
        with self._lock:
            happened, self._happened = self._happened, []
        runs = snapshot.by_id()
        known = [h for h in happened if h.run_id in runs]
        ambiguous = _ambiguous(snapshot.runs)

        def key(h: _Happening) -> tuple[str, str, int, int]:
            summary = runs[h.run_id]
            return (summary.metric_code, versions_of(summary), summary.run.attempt, h.phase)

        return [self._line(h, runs[h.run_id], ambiguous) for h in sorted(known, key=key)]

    def _line(self, h: _Happening, summary: RunSummary, ambiguous: set[str]) -> str:
        run = summary.run
        what = self.what_run(summary)
        if summary.metric_code in ambiguous:
            what += f" on {versions_of(summary)}"
        text = h.text
        if h.phase == _STARTED and self.goes_silent(summary.metric_code, run.attempt):
            text += ", then goes silent (as told: a worker that died)"
        return f"    [dim]{h.source:<18}[/dim] {summary.metric_code:<24} {what:<16} {text}"

    def what_run(self, summary: RunSummary) -> str:
        run = summary.run
        if run.attempt > 1:
            return f"retry {run.attempt} of {self.max_attempts.get(summary.metric_code, '?')}"
        if run.trigger is RunTrigger.MANUAL:
            return "manual run"
        return "first attempt"


def _ambiguous(runs: list[RunSummary]) -> set[str]:
    """Metrics with several runs of the same attempt: their lines also name the versions."""
    counts = Counter((r.metric_code, r.run.attempt) for r in runs)
    return {code for (code, _), n in counts.items() if n > 1}
