"""Reading a run's log (issue 25; `GET /runs/{id}/logs`, the run page, `runs logs ID`).

A worker may write the log lines of a run attempt beside its output, at
`{output.basePath}runs/{runId}-{attempt}.log` (`domain/run_files.py`); the reference worker
does, on each heartbeat and when the run ends. No more than the last MAX_RUN_LOG_BYTES of any
log are read: a worker that writes more shows its newest lines. A run without a log is no
error: it says why it has none (`RunLog.absence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from metrics_orchestrator.application.ports.outputs import (
    OutputObjectMissing,
    OutputReader,
    RunLookup,
)
from metrics_orchestrator.domain.metric_state import ACTIVE_STATUSES
from metrics_orchestrator.domain.model import MetricRun, RunStatus
from metrics_orchestrator.domain.run_files import MAX_RUN_LOG_BYTES, run_log_location


@dataclass(frozen=True, slots=True)
class RunLog:
    run_id: UUID
    attempt: int
    status: RunStatus
    location: str | None  # where its worker writes it; None before the run's request exists
    text: str | None  # None: no log there
    size: int = 0  # bytes of the whole log
    shown_bytes: int = 0  # bytes of it in `text` (the newest ones)

    @property
    def found(self) -> bool:
        return self.text is not None

    @property
    def truncated(self) -> bool:
        """Only the newest part of a longer log is in `text`."""
        return self.shown_bytes < self.size

    @property
    def absence(self) -> str | None:
        """Why the run has no log, for people; None when it has one."""
        if self.found:
            return None
        if self.location is None:
            return "no log: the run has not been queued, so no worker has it yet"
        if self.status in ACTIVE_STATUSES:
            return (
                "no log yet: the reference worker writes it on its heartbeats and when the "
                f"run ends, at {self.location}"
            )
        return f"no log: its worker wrote none at {self.location}"


class RunLogs:
    def __init__(self, find_run: RunLookup, reader: OutputReader) -> None:
        self._find_run = find_run
        self._reader = reader

    def read(self, run_id: UUID) -> RunLog:
        """The run's log, or why it has none; NotFound for an unknown run, OutputUnavailable
        when S3 cannot be read."""
        return self.of_run(self._find_run(run_id))

    def of_run(self, run: MetricRun) -> RunLog:
        """`read` for a run the caller has already loaded (the run page): S3 only."""
        location = run_log_location(run.request_payload, run.id, run.attempt)
        none = RunLog(run.id, run.attempt, run.status, location.uri if location else None, None)
        if location is None:
            return none
        try:
            body, size = self._reader.read_tail(location.uri, MAX_RUN_LOG_BYTES)
        except OutputObjectMissing:
            return none
        if len(body) < size:
            # the first line shown is likely cut: start at the next whole one
            _, newline, rest = body.partition(b"\n")
            body = rest if newline else body
        text = body.decode("utf-8", errors="replace")
        return RunLog(run.id, run.attempt, run.status, location.uri, text, size, len(body))
