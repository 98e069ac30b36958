"""The history grid's read (QueryService.run_history) and the metrics list's run summaries
(QueryService.run_summaries) over a real database: ordering, columns, days, filters, pages."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import pytest
from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.ports.queries import NO_RUNS, GridRow
from metrics_orchestrator.application.queries import DURATION_RUNS, QueryService
from metrics_orchestrator.application.run_history import (
    METRICS_PER_PAGE,
    HistoryRequest,
    RunHistory,
    code_pattern,
)
from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.model import RunStatus
from tests.factories import DEFAULT_NOW, seed_metric, seed_run
from tests.support import MutableClock

NOW = DEFAULT_NOW
# seed_metric's default metric (the `conn` fixture seeds it) and three more, one code
# upper-case: byte order puts it first, as the metrics list's order does
DEFAULT = ("m.ratio", "ratio.a_to_b")
OTHERS = (("m.fx", "fx.gap"), ("m.fx_mirror", "fx_mirror.gap"), ("m.up", "Upper.case"))


@pytest.fixture
def queries(
    conn: Connection[TupleRow], uow_factory: UnitOfWorkFactory, clock: MutableClock
) -> QueryService:
    for metric_id, code in OTHERS:
        seed_metric(conn, metric_id=metric_id, code=code)
    return QueryService(uow_factory, clock)


def _run(
    conn: Connection[TupleRow],
    metric_id: str,
    status: RunStatus,
    hours_ago: float,
    took: timedelta | None = timedelta(seconds=30),
) -> UUID:
    """A run created `hours_ago` before NOW; a finished one started then and took `took`."""
    created = NOW - timedelta(hours=hours_ago)
    started = created if status not in (RunStatus.QUEUED, RunStatus.CANCELED) else None
    done = status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)
    return seed_run(
        conn,
        metric_id,
        status=status,
        now=created,
        created_at=created,
        started_at=started,
        completed_at=created + took if done and took is not None else None,
    )


def _rows(history: RunHistory) -> dict[str, GridRow]:
    return {row.code: row for row in history.rows}


def _statuses(row: GridRow) -> list[str]:
    return [str(run.status) for run in row.runs]


# --- columns and order ---------------------------------------------------------------------


def test_rows_come_in_code_order_with_each_metrics_newest_runs_first(
    conn: Connection[TupleRow], queries: QueryService
) -> None:
    old = _run(conn, "m.fx", RunStatus.FAILED, hours_ago=3)
    new = _run(conn, "m.fx", RunStatus.SUCCEEDED, hours_ago=1)
    running = _run(conn, "m.fx", RunStatus.RUNNING, hours_ago=0.5)

    history = queries.run_history(HistoryRequest())

    assert [row.code for row in history.rows] == [
        "Upper.case",
        "fx.gap",
        "fx_mirror.gap",
        DEFAULT[1],
    ]
    fx = _rows(history)["fx.gap"]
    assert [run.id for run in fx.runs] == [running, new, old]
    assert (fx.runs[1].started_at, fx.runs[1].completed_at) == (
        NOW - timedelta(hours=1),
        NOW - timedelta(hours=1) + timedelta(seconds=30),
    )
    assert not fx.more
    # a metric that never ran has its row, with no cell
    assert _rows(history)["fx_mirror.gap"].runs == ()
    assert (history.runs, history.since, history.next_cursor) == (25, None, None)


@pytest.mark.parametrize("runs", [10, 25, 50])
def test_a_row_holds_the_last_n_runs_and_says_there_are_more(
    conn: Connection[TupleRow], queries: QueryService, runs: int
) -> None:
    ids = [_run(conn, "m.fx", RunStatus.SUCCEEDED, hours_ago=h) for h in range(runs + 1)]

    fx = _rows(queries.run_history(HistoryRequest(runs=runs)))["fx.gap"]

    assert [run.id for run in fx.runs] == ids[:runs]  # hours_ago 0 is the newest
    assert fx.more
    exact = _rows(queries.run_history(HistoryRequest(runs=runs, code="fx.gap")))["fx.gap"]
    assert exact.more


def test_days_bound_the_runs_by_creation_and_n_still_bounds_the_row(
    conn: Connection[TupleRow], queries: QueryService
) -> None:
    recent = [_run(conn, "m.fx", RunStatus.SUCCEEDED, hours_ago=h) for h in (1, 30, 47)]
    _run(conn, "m.fx", RunStatus.FAILED, hours_ago=49)
    _run(conn, "m.ratio", RunStatus.SUCCEEDED, hours_ago=72)
    busy = [_run(conn, "m.up", RunStatus.SUCCEEDED, hours_ago=h / 2) for h in range(12)]

    history = queries.run_history(HistoryRequest(days=2))

    assert (history.runs, history.since) == (25, NOW - timedelta(days=2))
    assert [run.id for run in _rows(history)["fx.gap"].runs] == recent
    assert not _rows(history)["fx.gap"].more  # its older run is out of the days
    assert _rows(history)[DEFAULT[1]].runs == ()  # its only run is three days old
    # days and N together: both bound the row
    capped = _rows(queries.run_history(HistoryRequest(days=2, runs=10)))["Upper.case"]
    assert [run.id for run in capped.runs] == busy[:10]
    assert capped.more


def test_days_follow_the_clock(
    conn: Connection[TupleRow], queries: QueryService, clock: MutableClock
) -> None:
    _run(conn, "m.fx", RunStatus.SUCCEEDED, hours_ago=1)
    clock.advance(timedelta(days=1))

    assert _rows(queries.run_history(HistoryRequest(days=1)))["fx.gap"].runs == ()
    assert len(_rows(queries.run_history(HistoryRequest(days=2)))["fx.gap"].runs) == 1


# --- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "codes"),
    [
        ("gap", ["fx.gap", "fx_mirror.gap"]),
        ("GAP", ["fx.gap", "fx_mirror.gap"]),  # case-insensitive
        ("fx.*", ["fx.gap"]),  # a glob is the whole code
        ("*.gap", ["fx.gap", "fx_mirror.gap"]),
        ("fx?gap", ["fx.gap"]),
        ("fx_", ["fx_mirror.gap"]),  # `_` is itself, not LIKE's any character
        ("%", []),  # so is `%`
        ("upper", ["Upper.case"]),
        ("  ", ["Upper.case", "fx.gap", "fx_mirror.gap", DEFAULT[1]]),
    ],
)
def test_the_code_filter_is_a_substring_or_a_glob(
    queries: QueryService, typed: str, codes: list[str]
) -> None:
    history = queries.run_history(HistoryRequest(code=typed))

    assert [row.code for row in history.rows] == codes


def test_the_code_pattern_escapes_like_and_translates_the_glob() -> None:
    assert code_pattern("a_b%c\\d") == "%a\\_b\\%c\\\\d%"
    assert code_pattern("fx.*?") == "fx.%_"
    assert code_pattern(None) is None
    assert code_pattern(" ") is None


def test_the_status_filter_keeps_the_metrics_whose_newest_run_has_it(
    conn: Connection[TupleRow], queries: QueryService
) -> None:
    _run(conn, "m.fx", RunStatus.SUCCEEDED, hours_ago=2)
    _run(conn, "m.fx", RunStatus.FAILED, hours_ago=1)
    _run(conn, "m.ratio", RunStatus.FAILED, hours_ago=2)
    _run(conn, "m.ratio", RunStatus.SUCCEEDED, hours_ago=1)

    failed = queries.run_history(HistoryRequest(status=RunStatus.FAILED))
    succeeded = queries.run_history(HistoryRequest(status=RunStatus.SUCCEEDED))

    assert [row.code for row in failed.rows] == ["fx.gap"]
    assert _statuses(failed.rows[0]) == ["failed", "succeeded"]  # the row keeps all its runs
    assert [row.code for row in succeeded.rows] == [DEFAULT[1]]
    assert queries.run_history(HistoryRequest(status=RunStatus.RUNNING)).rows == []


def test_only_failing_keeps_the_metrics_with_a_failure_in_view(
    conn: Connection[TupleRow], queries: QueryService
) -> None:
    _run(conn, "m.fx", RunStatus.TIMED_OUT, hours_ago=3)
    _run(conn, "m.fx", RunStatus.SUCCEEDED, hours_ago=1)
    # m.ratio's failure is its 11th newest run, 30 h old: out of view with 10 columns or 1 day
    _run(conn, "m.ratio", RunStatus.FAILED, hours_ago=30)
    for hours in range(10):
        _run(conn, "m.ratio", RunStatus.SUCCEEDED, hours_ago=hours)

    with_25 = queries.run_history(HistoryRequest(failing_only=True))
    with_10 = queries.run_history(HistoryRequest(failing_only=True, runs=10))
    in_a_day = queries.run_history(HistoryRequest(failing_only=True, days=1))

    assert [row.code for row in with_25.rows] == ["fx.gap", DEFAULT[1]]
    assert [row.code for row in with_10.rows] == ["fx.gap"]
    assert [row.code for row in in_a_day.rows] == ["fx.gap"]
    both = HistoryRequest(failing_only=True, status=RunStatus.SUCCEEDED, code="fx")
    assert [row.code for row in queries.run_history(both).rows] == ["fx.gap"]


# --- pages and bad requests ----------------------------------------------------------------


def test_rows_are_paged_by_code(conn: Connection[TupleRow], queries: QueryService) -> None:
    conn.execute(
        "INSERT INTO metrics (id, code, expression_type, expression_json, required_days)"
        " SELECT 'p.' || g, 'page.' || lpad(g::text, 3, '0'), 'series_math', '{}', 1"
        " FROM generate_series(1, %s) AS g",
        (METRICS_PER_PAGE + 5,),
    )
    _run(conn, "p.105", RunStatus.FAILED, hours_ago=1)

    first = queries.run_history(HistoryRequest(code="page.*"))
    assert len(first.rows) == METRICS_PER_PAGE
    assert first.next_cursor is not None
    second = queries.run_history(HistoryRequest(code="page.*", cursor=first.next_cursor))

    assert [row.code for row in second.rows] == [f"page.{n}" for n in range(101, 106)]
    assert second.next_cursor is None
    assert _statuses(second.rows[-1]) == ["failed"]
    # filters apply before the page is cut: one page, no next
    failing = queries.run_history(HistoryRequest(code="page.*", failing_only=True))
    assert ([row.code for row in failing.rows], failing.next_cursor) == (["page.105"], None)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (HistoryRequest(runs=7), "runs"),
        (HistoryRequest(days=0), "days"),
        (HistoryRequest(days=367), "days"),
        (HistoryRequest(cursor="not-ours"), "cursor"),
        (HistoryRequest(code="x" * 129), "code"),
    ],
)
def test_columns_and_cursors_it_cannot_serve_are_refused(
    queries: QueryService, request_: HistoryRequest, field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        queries.run_history(request_)

    assert [error.path for error in refused.value.errors] == [field]


# --- the metrics list's run summaries ------------------------------------------------------


def test_a_summary_has_the_newest_run_the_latest_success_and_the_median_duration(
    conn: Connection[TupleRow], queries: QueryService
) -> None:
    for hours, seconds in ((5, 10), (4, 20), (3, 30), (2, 100)):
        _run(conn, "m.fx", RunStatus.SUCCEEDED, hours, took=timedelta(seconds=seconds))
    _run(conn, "m.fx", RunStatus.FAILED, hours_ago=1, took=timedelta(hours=5))  # not a success
    _run(conn, "m.fx", RunStatus.QUEUED, hours_ago=0.5)

    summaries = queries.run_summaries(["fx.gap", "fx_mirror.gap", "no.such"])

    assert set(summaries) == {"fx.gap", "fx_mirror.gap"}
    fx = summaries["fx.gap"]
    assert fx.last_status is RunStatus.QUEUED
    assert fx.last_run_at == NOW - timedelta(hours=0.5)
    assert fx.last_success_at == NOW - timedelta(hours=2) + timedelta(seconds=100)
    assert fx.p50_duration_seconds == pytest.approx(25.0)  # between 20 and 30
    assert summaries["fx_mirror.gap"] == NO_RUNS
    assert queries.run_summaries([]) == {}


def test_the_median_duration_is_over_the_newest_succeeded_runs(
    conn: Connection[TupleRow], queries: QueryService
) -> None:
    # older, slow successes fall out of the window of the DURATION_RUNS newest
    for hours in range(DURATION_RUNS, DURATION_RUNS + 10):
        _run(conn, "m.fx", RunStatus.SUCCEEDED, hours, took=timedelta(hours=1))
    for hours in range(DURATION_RUNS):
        _run(conn, "m.fx", RunStatus.SUCCEEDED, hours, took=timedelta(seconds=2))

    assert queries.run_summaries(["fx.gap"])["fx.gap"].p50_duration_seconds == pytest.approx(2.0)


def test_a_success_with_no_start_has_a_time_but_no_duration(
    conn: Connection[TupleRow], queries: QueryService
) -> None:
    completed: datetime = NOW - timedelta(minutes=5)
    seed_run(conn, "m.fx", status=RunStatus.SUCCEEDED, now=completed)
    conn.execute("UPDATE metric_runs SET started_at = NULL")

    fx = queries.run_summaries(["fx.gap"])["fx.gap"]

    assert (fx.last_status, fx.last_success_at, fx.p50_duration_seconds) == (
        RunStatus.SUCCEEDED,
        completed,
        None,
    )
