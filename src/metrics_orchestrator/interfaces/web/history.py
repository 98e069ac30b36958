"""The history grid as the page draws it: a line per metric, a cell per run, oldest to newest.

Cells are aligned on the right, so the last column is every metric's newest run whatever the
number of runs it has in view; a shorter row is padded on the left with empty slots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

from metrics_orchestrator.application.ports.queries import GridRow, GridRun
from metrics_orchestrator.application.run_history import RunHistory
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.web.presenters import duration, when

# What a cell says of its status (pending_dependencies is "pending": waiting for inputs).
STATUS_LABELS: Mapping[str, str] = {s.value: s.value.replace("_", " ") for s in RunStatus} | {
    RunStatus.PENDING_DEPENDENCIES.value: "pending"
}
# A cell's class per status (static/app.css colours them; a dispatched run, sent to a worker
# that has not started it, looks queued).
CELL_CLASSES: Mapping[str, str] = {
    RunStatus.PENDING_DEPENDENCIES.value: "st-pending",
    RunStatus.QUEUED.value: "st-queued",
    RunStatus.DISPATCHED.value: "st-queued",
    RunStatus.RUNNING.value: "st-running",
    RunStatus.SUCCEEDED.value: "st-succeeded",
    RunStatus.FAILED.value: "st-failed",
    RunStatus.TIMED_OUT.value: "st-timed-out",
    RunStatus.CANCELED.value: "st-canceled",
}
# The legend, in the order a person reads outcomes: good, bad, under way, waiting, stopped.
LEGEND = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.TIMED_OUT,
    RunStatus.RUNNING,
    RunStatus.QUEUED,
    RunStatus.PENDING_DEPENDENCIES,
    RunStatus.CANCELED,
)


@dataclass(frozen=True, slots=True)
class GridCell:
    href: str
    css: str
    status: str
    label: str  # the tooltip and what a screen reader says


@dataclass(frozen=True, slots=True)
class GridLine:
    code: str
    href: str
    cells: tuple[GridCell | None, ...]  # oldest to newest; None pads a shorter row
    runs: int  # the cells that are runs
    older_href: str | None  # the metric's runs list, when it has older runs in view


def cell_label(code: str, run: GridRun, now: datetime) -> str:
    """`fx.gap: failed, started 2025-11-11 11:00:00 UTC, took 30 s`: status, start (or
    creation for a run that never started) and how long it took or has been running."""
    parts = [f"{code}: {STATUS_LABELS[run.status.value]}"]
    if run.started_at is None:
        parts.append(f"created {when(run.created_at)}")
        return ", ".join(parts)
    parts.append(f"started {when(run.started_at)}")
    if run.completed_at is not None:
        parts.append(f"took {duration(run.completed_at - run.started_at)}")
    elif run.status is RunStatus.RUNNING:
        parts.append(f"running for {duration(now - run.started_at)}")
    return ", ".join(parts)


def grid_width(history: RunHistory) -> int:
    """Columns: N for the last N runs; with days, as many as the fullest row needs."""
    if history.since is None:
        return history.runs
    return max((len(row.runs) for row in history.rows), default=0)


def grid_lines(history: RunHistory) -> list[GridLine]:
    width = grid_width(history)
    return [_line(row, width, history) for row in history.rows]


def _line(row: GridRow, width: int, history: RunHistory) -> GridLine:
    cells = [_cell(row.code, run, history.generated_at) for run in reversed(row.runs)]
    padding: list[GridCell | None] = [None] * (width - len(cells))
    older = f"/ui/runs?{urlencode({'metric': row.code})}" if row.more else None
    href = f"/ui/metrics/{quote(row.code)}"
    return GridLine(row.code, href, (*padding, *cells), len(cells), older)


def _cell(code: str, run: GridRun, now: datetime) -> GridCell:
    status = run.status.value
    return GridCell(f"/ui/runs/{run.id}", CELL_CLASSES[status], status, cell_label(code, run, now))
