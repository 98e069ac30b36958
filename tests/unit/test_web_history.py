"""The history grid as drawn (interfaces/web/history.py): cell words, classes, padding, width."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from metrics_orchestrator.application.ports.queries import GridRow, GridRun
from metrics_orchestrator.application.run_history import RunHistory
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.web.history import (
    CELL_CLASSES,
    LEGEND,
    STATUS_LABELS,
    cell_label,
    grid_lines,
    grid_width,
)

NOW = datetime(2025, 11, 11, 12, 0, tzinfo=UTC)


def _run(
    status: RunStatus,
    started: timedelta | None = None,
    took: timedelta | None = None,
    run_id: UUID | None = None,
) -> GridRun:
    created = NOW - timedelta(hours=1)
    start = created + started if started is not None else None
    done = start + took if start is not None and took is not None else None
    return GridRun(run_id or uuid4(), status, created, start, done)


def _history(rows: list[GridRow], runs: int = 25, days: int | None = None) -> RunHistory:
    since = NOW - timedelta(days=days) if days else None
    return RunHistory(rows, runs, since, NOW, None)


@pytest.mark.parametrize(
    ("run", "label"),
    [
        (
            _run(RunStatus.SUCCEEDED, timedelta(0), timedelta(seconds=42)),
            "m: succeeded, started 2025-11-11 11:00:00 UTC, took 42 s",
        ),
        (
            _run(RunStatus.TIMED_OUT, timedelta(minutes=1), timedelta(minutes=10)),
            "m: timed out, started 2025-11-11 11:01:00 UTC, took 10 min",
        ),
        (
            _run(RunStatus.RUNNING, timedelta(minutes=15)),
            "m: running, started 2025-11-11 11:15:00 UTC, running for 45 min",
        ),
        # started, with no completion time and not running: when it started, nothing more
        (
            _run(RunStatus.CANCELED, timedelta(minutes=15)),
            "m: canceled, started 2025-11-11 11:15:00 UTC",
        ),
        (_run(RunStatus.QUEUED), "m: queued, created 2025-11-11 11:00:00 UTC"),
        (_run(RunStatus.PENDING_DEPENDENCIES), "m: pending, created 2025-11-11 11:00:00 UTC"),
    ],
)
def test_a_cell_says_status_start_and_duration(run: GridRun, label: str) -> None:
    assert cell_label("m", run, NOW) == label


def test_every_status_has_a_class_and_words_and_the_legend_covers_every_class() -> None:
    assert set(CELL_CLASSES) == set(STATUS_LABELS) == {s.value for s in RunStatus}
    assert {CELL_CLASSES[s.value] for s in LEGEND} == set(CELL_CLASSES.values())
    assert CELL_CLASSES["dispatched"] == CELL_CLASSES["queued"]


def test_a_line_is_oldest_to_newest_padded_on_the_left() -> None:
    newest, older = uuid4(), uuid4()
    row = GridRow(
        "a.b",
        (_run(RunStatus.FAILED, run_id=newest), _run(RunStatus.SUCCEEDED, run_id=older)),
        more=True,
    )

    (line,) = grid_lines(_history([row], runs=10))

    assert line.cells[:8] == (None,) * 8
    assert [(c.href, c.css) for c in line.cells[8:] if c] == [
        (f"/ui/runs/{older}", "st-succeeded"),
        (f"/ui/runs/{newest}", "st-failed"),
    ]
    assert (line.runs, line.href, line.older_href) == (2, "/ui/metrics/a.b", "/ui/runs?metric=a.b")


def test_the_width_is_n_or_with_days_the_fullest_row() -> None:
    rows = [
        GridRow("a", (_run(RunStatus.QUEUED),) * 3, more=False),
        GridRow("b", (), more=False),
    ]

    assert grid_width(_history(rows, runs=10)) == 10
    assert grid_width(_history(rows, runs=10, days=7)) == 3
    assert grid_width(_history([], days=7)) == 0
    (_a, b) = grid_lines(_history(rows, runs=10, days=7))
    assert (b.cells, b.runs, b.older_href) == ((None, None, None), 0, None)
