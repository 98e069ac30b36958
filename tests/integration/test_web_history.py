"""History at a glance on the dashboard (docs/ui.md, "History"): the grid page, the metrics
list's run columns and GET /metrics' run fields, through the test client over a real database;
and the grid at the scale SPEC §7's pages are held to (500 metrics, 10k runs)."""

from __future__ import annotations

import html as html_text
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from bench.catalog import CatalogShape, generate_catalog
from bench.dashboard import RUNS_SQL

from metrics_orchestrator.application.run_history import METRICS_PER_PAGE, HistoryRequest
from metrics_orchestrator.domain.model import RunStatus
from tests.factories import seed_run
from tests.integration.http_helpers import Api, running_api
from tests.integration.web_helpers import page, seeded_api
from tests.support import MutableClock

NOW = datetime.fromisoformat("2025-11-11T12:00:00+00:00")  # MutableClock's start


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    """The multi-dataset catalog after seed_activity: fx.gap has a queued run,
    reserves.at_parallel a pending one."""
    with seeded_api(database_url, catalogs_dir) as api:
        yield api


def _metric_id(api: Api, code: str) -> str:
    ((metric_id,),) = api.rows("SELECT id FROM metrics WHERE code = %s", code)
    return str(metric_id)


def _run(api: Api, code: str, status: RunStatus, hours_ago: float, took: float = 42) -> UUID:
    created = NOW - timedelta(hours=hours_ago)
    finished = status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        return seed_run(
            conn,
            _metric_id(api, code),
            status=status,
            now=created,
            created_at=created,
            started_at=created,
            completed_at=created + timedelta(seconds=took) if finished else None,
        )


def _row(html: str, code: str) -> str:
    row = re.search(rf'<tr data-metric="{re.escape(code)}">.*?</tr>', html, re.S)
    assert row is not None, f"no row for {code}"
    return row.group(0)


def _cells(row: str) -> list[tuple[str, str, str]]:
    """(class, run id, label) of each run cell, left to right; the empty slots left out."""
    found = re.findall(
        r'<a class="cell (st-[a-z-]+)" href="/ui/runs/([0-9a-f-]+)" title="([^"]*)" '
        r'aria-label="([^"]*)"></a>',
        row,
    )
    for _css, _id, title, label in found:
        assert title == label  # the tooltip is what a screen reader says
    return [(css, run_id, html_text.unescape(label)) for css, run_id, _t, label in found]


def _codes(html: str) -> list[str]:
    return re.findall(r'<tr data-metric="([^"]+)">', html)


# --- the grid page -------------------------------------------------------------------------


def test_the_grid_has_a_row_per_metric_and_a_cell_per_run_newest_on_the_right(api: Api) -> None:
    failed = _run(api, "fx.gap", RunStatus.FAILED, hours_ago=3, took=90)
    timed_out = _run(api, "fx.gap", RunStatus.TIMED_OUT, hours_ago=2)
    ok = _run(api, "fx.gap", RunStatus.SUCCEEDED, hours_ago=1, took=42)
    (queued,) = [UUID(r["id"]) for r in api.runs_of("fx.gap") if r["status"] == "queued"]

    html = page(api, "/ui/history")

    assert '<a href="/ui/history" aria-current="page">History</a>' in html
    assert _codes(html) == sorted(m.code for m in api.container.catalog.list_metrics())
    cells = _cells(_row(html, "fx.gap"))
    assert [(css, run_id) for css, run_id, _ in cells] == [
        ("st-failed", str(failed)),
        ("st-timed-out", str(timed_out)),
        ("st-succeeded", str(ok)),
        ("st-queued", str(queued)),
    ]
    assert cells[0][2] == "fx.gap: failed, started 2025-11-11 09:00:00 UTC, took 1 min 30 s"
    assert cells[2][2] == "fx.gap: succeeded, started 2025-11-11 11:00:00 UTC, took 42 s"
    assert cells[3][2] == "fx.gap: queued, created 2025-11-11 12:00:00 UTC"
    # 25 columns: the row is padded on the left with 21 empty slots
    assert _row(html, "fx.gap").count('class="cell empty"') == 21
    assert 'data-columns="25"' in html
    pending = _cells(_row(html, "reserves.at_parallel"))
    assert [(css, label) for css, _, label in pending] == [
        ("st-pending", "reserves.at_parallel: pending, created 2025-11-11 12:00:00 UTC")
    ]
    assert "no run" in _row(html, "prices.real_wages")
    # each colour is in the legend, with its words
    for css, label in (("st-timed-out", "timed out"), ("st-pending", "pending")):
        assert f'<span class="cell {css}" aria-hidden="true"></span> {label}</li>' in html


def test_a_running_cell_says_for_how_long(api: Api) -> None:
    _run(api, "prices.real_wages", RunStatus.RUNNING, hours_ago=0.5)

    (cell,) = _cells(_row(page(api, "/ui/history"), "prices.real_wages"))

    assert cell[0] == "st-running"
    assert cell[2].endswith("running for 30 min")


def test_n_columns_and_a_link_to_the_older_runs(api: Api) -> None:
    for hours in range(1, 12):
        _run(api, "prices.real_wages", RunStatus.SUCCEEDED, hours_ago=hours)

    ten = page(api, "/ui/history?runs=10")
    fifty = page(api, "/ui/history?runs=50")

    assert len(_cells(_row(ten, "prices.real_wages"))) == 10
    assert 'href="/ui/runs?metric=prices.real_wages"' in _row(ten, "prices.real_wages")
    assert '<option value="10" selected>' in ten
    assert len(_cells(_row(fifty, "prices.real_wages"))) == 11
    assert "/ui/runs?metric=" not in _row(fifty, "prices.real_wages")
    assert _row(fifty, "prices.real_wages").count('class="cell empty"') == 39


def test_days_show_the_runs_created_in_them_as_wide_as_the_fullest_row(api: Api) -> None:
    _run(api, "prices.real_wages", RunStatus.SUCCEEDED, hours_ago=30)
    _run(api, "prices.real_wages", RunStatus.FAILED, hours_ago=5)
    _run(api, "reserves.sma_20", RunStatus.SUCCEEDED, hours_ago=50)

    html = page(api, "/ui/history?days=1")

    assert [c[0] for c in _cells(_row(html, "prices.real_wages"))] == ["st-failed"]
    assert 'data-columns="1"' in html  # each row's newest run in the day, nothing more
    assert "no run in these days" in _row(html, "reserves.sma_20")
    assert '<option value="1" selected>1 day</option>' in html
    assert "created since 2025-11-10 12:00:00 UTC" in html
    two = page(api, "/ui/history?days=2")
    assert [c[0] for c in _cells(_row(two, "prices.real_wages"))] == ["st-succeeded", "st-failed"]
    # a number of days not in the menu is kept in it
    assert '<option value="3" selected>3 days</option>' in page(api, "/ui/history?days=3")


def test_filters_by_code_newest_status_and_failing(api: Api) -> None:
    _run(api, "prices.real_wages", RunStatus.FAILED, hours_ago=2)
    _run(api, "prices.real_wages", RunStatus.SUCCEEDED, hours_ago=1)
    _run(api, "reserves.sma_20", RunStatus.TIMED_OUT, hours_ago=1)

    assert _codes(page(api, "/ui/history?code=reserves.*")) == [
        "reserves.at_parallel",
        "reserves.real_pesos",
        "reserves.sma_20",
    ]
    assert _codes(page(api, "/ui/history?code=GAP")) == ["fx.gap"]
    assert _codes(page(api, "/ui/history?status=queued")) == ["fx.gap"]
    assert _codes(page(api, "/ui/history?status=pending_dependencies")) == [
        "reserves.at_parallel",
        "reserves.real_pesos",
    ]
    failing = page(api, "/ui/history?failing=yes")
    assert _codes(failing) == ["prices.real_wages", "reserves.sma_20"]
    assert 'name="failing" value="yes" checked' in failing
    assert _codes(page(api, "/ui/history?failing=yes&status=timed_out")) == ["reserves.sma_20"]
    none = page(api, "/ui/history?code=nothing.like.this")
    assert "No metric matches." in none
    assert 'value="nothing.like.this"' in none


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("runs=7", "runs: must be one of 10, 25, 50"),
        ("runs=ten", "runs: &#39;ten&#39; is not a whole number"),
        ("days=0", "days: must be between 1 and 366"),
        ("days=99999", "days: &#39;99999&#39; is not a whole number of at most 4 digits"),
        ("days=%C2%B2", "is not a whole number"),
        ("status=done", "status: unknown run status &#39;done&#39;"),
        ("cursor=bm9wZQ", "cursor: is not a cursor this API returned"),
    ],
)
def test_a_request_it_cannot_serve_is_explained(api: Api, query: str, says: str) -> None:
    assert says in page(api, f"/ui/history?{query}", status=422)


def test_the_next_page_keeps_the_filters(database_url: str) -> None:
    with running_api(database_url, MutableClock()) as api:
        api.container.catalog.load_catalog(generate_catalog(CatalogShape(datasets=40, fan_out=4)))
        codes = sorted(m.code for m in api.container.catalog.list_metrics())
        assert len(codes) > METRICS_PER_PAGE

        first = page(api, "/ui/history?runs=10&code=*")
        link = re.search(r'<a href="([^"]+)" rel="next">', first)
        assert link is not None
        url = html_text.unescape(link.group(1))
        assert url.startswith("/ui/history?code=%2A&runs=10&cursor=")
        second = page(api, url)

        assert _codes(first) + _codes(second) == codes
        assert len(_codes(first)) == METRICS_PER_PAGE
        assert 'rel="next"' not in second


# --- the metrics list and GET /metrics -----------------------------------------------------


def test_the_metrics_list_shows_last_run_last_success_data_time_and_duration(api: Api) -> None:
    for hours, seconds in ((4, 10), (3, 20), (2, 30)):
        _run(api, "prices.real_wages", RunStatus.SUCCEEDED, hours_ago=hours, took=seconds)
    _run(api, "prices.real_wages", RunStatus.FAILED, hours_ago=1)
    api.rows(
        "UPDATE metric_runs SET data_time = %s WHERE status = 'succeeded' RETURNING id",
        NOW - timedelta(days=2),
    )

    html = page(api, "/ui/metrics")

    row = _row(html, "prices.real_wages")
    assert re.search(r'<td class="last-run"><span class="badge bad" data-status="failed">', row)
    assert "1 h ago" in row
    last_success = re.search(r'<td class="last-success">(.*?)</td>', row, re.S)
    assert last_success is not None
    assert "1 h 59 min ago" in last_success.group(1)  # completed 30 s after 10:00
    assert "2025-11-11 10:00:30 UTC" in last_success.group(1)
    assert '<small class="muted data-time">2025-11-09 12:00:00 UTC</small>' in row
    assert '<td class="duration">20 s</td>' in row  # the median of 10, 20 and 30 s
    never = _row(html, "reserves.sma_20")
    assert "never ran" in never
    assert '<td class="duration"><span class="muted">—</span></td>' in never
    assert 'data-status="queued"' in _row(html, "fx.gap")


def test_get_metrics_has_the_run_fields(api: Api) -> None:
    _run(api, "prices.real_wages", RunStatus.SUCCEEDED, hours_ago=2, took=12)
    _run(api, "prices.real_wages", RunStatus.SUCCEEDED, hours_ago=1, took=20)

    listed = {m["code"]: m for m in api.client.get("/metrics").json()["items"]}
    one = api.client.get("/metrics/prices.real_wages").json()

    wages = listed["prices.real_wages"]
    assert wages == one
    assert wages["last_status"] == "succeeded"
    assert wages["last_run_at"] == "2025-11-11T11:00:00Z"
    assert wages["last_success_at"] == "2025-11-11T11:00:20Z"
    assert wages["p50_duration_seconds"] == pytest.approx(16.0)
    assert listed["fx.gap"]["last_status"] == "queued"
    never = listed["reserves.sma_20"]
    assert [never[k] for k in ("last_status", "last_success_at", "p50_duration_seconds")] == [
        None,
        None,
        None,
    ]


# --- scale ---------------------------------------------------------------------------------


def test_the_grid_at_500_metrics_and_10k_runs_shows_a_row_per_metric(database_url: str) -> None:
    """What the grid shows at scale; its speed is bench/dashboard.py's (docs/performance.md).
    The benchmark's runs (RUNS_SQL): 20 a metric, an hour apart, ending now; every seventh
    failed, every eleventh timed out, the newest of every 50th metric still running."""
    with running_api(database_url, MutableClock()) as api:
        api.container.catalog.load_catalog(generate_catalog(CatalogShape(datasets=100, fan_out=9)))
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(RUNS_SQL, {"runs": 10_000, "now": NOW})
            conn.execute("ANALYZE metric_runs")
        queries = api.container.queries

        whole = queries.run_history(HistoryRequest(code="*"))
        assert len(whole.rows) == 100
        assert all(len(row.runs) == 20 for row in whole.rows)
        failing = queries.run_history(HistoryRequest(failing_only=True, runs=10))
        assert failing.rows
        grid = page(api, "/ui/history")
        assert len(_codes(grid)) == 100
        assert grid.count('<a class="cell st-') == 100 * 20

        assert len(_codes(page(api, "/ui/history?runs=50"))) == 100
        assert page(api, "/ui/metrics").count("<tr data-metric=") > 0
