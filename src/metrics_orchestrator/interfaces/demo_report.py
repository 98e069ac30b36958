"""What `metrics-orchestrator demo` prints at the end: the runs table and the event summary.

For each succeeded run the table shows what the reference worker computed: the row count and
the value at the last observation that has one, read back through the service's
`OutputService` (the same reading as `GET /runs/{id}/output`). Under the table, a note names
consecutive runs of a metric whose input versions list the same data files (the demo writes a
dataset's data once and its later versions reuse it), which is why their values are equal.
"""

from __future__ import annotations

from uuid import UUID

from rich.table import Table

from metrics_orchestrator.application.outputs import OutputPoint, OutputUnavailable
from metrics_orchestrator.application.ports.events import LoggedEvent
from metrics_orchestrator.application.ports.runs import RunSummary
from metrics_orchestrator.bootstrap import Container
from metrics_orchestrator.domain.errors import NotFound
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.demo_narration import versions_of


def _duration(summary: RunSummary) -> str:
    run = summary.run
    start = run.started_at or run.dispatched_at
    if start is None or run.completed_at is None:
        return "-"
    return f"{(run.completed_at - start).total_seconds():.1f} s"


Latest = tuple[int, OutputPoint | None]


def outputs_of(container: Container, runs: list[RunSummary]) -> dict[UUID, Latest]:
    """Row count and latest valued point of each succeeded run's output, as the API reads it."""
    found: dict[UUID, Latest] = {}
    for summary in runs:
        if summary.run.status is not RunStatus.SUCCEEDED:
            continue
        try:
            found[summary.run.id] = container.outputs.latest(summary.run.id)
        except (NotFound, OutputUnavailable):
            continue  # shown as no output: the table tells, the demo goes on
    return found


COLUMNS = (
    "metric",
    "status",
    "attempt",
    "dataset versions used",
    "rows",
    "last obs_time",
    "value",
    "duration",
)
NUMERIC = ("rows", "value")


def runs_table(runs: list[RunSummary], outputs: dict[UUID, Latest]) -> Table:
    caption = "rows: points the run wrote; value: the metric at its last obs_time with a value"
    table = Table(title="Runs", caption=caption)
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in NUMERIC else "left")
    for summary in runs:
        table.add_row(
            summary.metric_code,
            summary.run.status.value,
            str(summary.run.attempt),
            versions_of(summary),
            *_output_cells(summary, outputs),
            _duration(summary),
        )
    return table


def _output_cells(summary: RunSummary, outputs: dict[UUID, Latest]) -> tuple[str, str, str]:
    if summary.run.status is not RunStatus.SUCCEEDED:
        return ("", "", "")
    if summary.run.id not in outputs:
        return ("-", "(no output)", "")
    rows, point = outputs[summary.run.id]
    if point is None or point.value is None:
        return (str(rows), "(no value)", "")
    return (str(rows), f"{point.obs_time:%Y-%m-%d}", format_value(point.value))


def same_input_files(container: Container, runs: list[RunSummary]) -> list[str]:
    """A note per pair of consecutive succeeded runs of a metric, on different dataset
    versions, whose inputs are the same data files (so they compute the same values)."""
    notes: list[str] = []
    previous: dict[str, tuple[RunSummary, frozenset[str] | None]] = {}
    for summary in sorted(runs, key=lambda s: s.run.created_at):
        if summary.run.status is not RunStatus.SUCCEEDED or not summary.run.request_payload:
            continue
        files = container.outputs.input_files(summary.run.request_payload)
        before = previous.get(summary.metric_code)
        previous[summary.metric_code] = (summary, files)
        if before is None or files is None or before[1] != files:
            continue
        earlier, now = versions_of(before[0]), versions_of(summary)
        if earlier != now:
            notes.append(
                f"note: {summary.metric_code} on {now} reads the same data files as on "
                f"{earlier} (the versions' manifests list identical files): same values"
            )
    return notes


def format_value(value: float) -> str:
    """Four decimals, thousands separated: the same digits on every machine."""
    return f"{value:,.4f}"


def events_summary(events: list[LoggedEvent]) -> str:
    """The projection updates' outcomes. Only those: how many heartbeats the reference worker
    sent depends on the machine's speed, and the story prints the same on every run."""
    counts: dict[str, int] = {}
    for event in events:
        counts[event.status.value] = counts.get(event.status.value, 0) + 1
    rejected = [e.error for e in events if e.status.value == "rejected"]
    lines = ["projection updates: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
    lines += [f"  rejected: {reason}" for reason in rejected]
    return "\n".join(lines)
