"""The runs list's durations, filters and bulk actions (docs/ui.md "Runs": issue 25 items 2 and
5), through the test client over a real database: wait, run and total on the list and a run's
page, the "slow" badge against the metric's usual run time, several statuses and a date range
(kept by the keyset pages and the live rows, and on `GET /runs`), retrying and cancelling a
selection run by run through the single-run use cases, and the list at 500 metrics / 10k runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from bench.catalog import CatalogShape, generate_catalog

from metrics_orchestrator.application.run_batches import MAX_BATCH
from metrics_orchestrator.domain.model import RunStatus
from tests.factories import seed_run
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.integration.web_helpers import SAME_ORIGIN, page, run_id_of, seeded_api
from tests.support import MutableClock

S = RunStatus
NOW = datetime.fromisoformat("2025-11-11T12:00:00+00:00")  # MutableClock's start


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    """The multi-dataset catalog: fx.gap has a queued run, reserves.at_parallel a pending one."""
    with seeded_api(database_url, catalogs_dir) as api:
        yield api


def _metric_id(api: Api, code: str) -> str:
    ((metric_id,),) = api.rows("SELECT id FROM metrics WHERE code = %s", code)
    return str(metric_id)


def _run(
    api: Api,
    status: RunStatus,
    *,
    code: str = "fx.gap",
    created: datetime,
    took: timedelta | None = None,
    waited: timedelta = timedelta(seconds=5),
    **extra: Any,
) -> UUID:
    """A run of `code` queued at `created`, started `waited` later and, when `took` is given,
    completed `took` after its start."""
    started = created + waited
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        return seed_run(
            conn,
            _metric_id(api, code),
            status=status,
            now=created,
            created_at=created,
            queued_at=created,
            dispatched_at=created,
            started_at=started if status is not S.QUEUED else None,
            completed_at=started + took if took is not None else None,
            **extra,
        )


def _row(html: str, run_id: UUID | str) -> str:
    row = re.search(rf'<tr data-run-id="{run_id}".*?</tr>', html, re.S)
    assert row is not None, f"no row for {run_id}"
    return row.group(0)


def _span(html: str, name: str) -> str:
    found = re.search(rf'data-span="{name}"[^>]*>(.*?)</span>(?!\s*<small)', html, re.S)
    assert found is not None, f"no {name} span"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def _row_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run-id="([^"]+)"', html)


# --- durations -----------------------------------------------------------------------------


def test_the_list_shows_wait_run_and_total_and_flags_a_slow_run(api: Api) -> None:
    usual = [
        _run(api, S.SUCCEEDED, created=NOW - timedelta(hours=h), took=timedelta(seconds=20))
        for h in (6, 5, 4)
    ]
    slow = _run(api, S.SUCCEEDED, created=NOW - timedelta(hours=3), took=timedelta(minutes=10))
    still = _run(api, S.RUNNING, created=NOW - timedelta(minutes=6), waited=timedelta(minutes=1))

    html = page(api, "/ui/runs")

    fast = _row(html, usual[0])
    assert (_span(fast, "wait"), _span(fast, "run"), _span(fast, "total")) == (
        "5 s",
        "20 s",
        "25 s",
    )
    assert 'data-slow="yes"' not in fast
    slow_row = _row(html, slow)
    assert 'data-slow="yes"' in slow_row
    assert ">slow</span>" in slow_row
    # the median of [20 s, 20 s, 20 s, 10 min] is 20 s
    assert "ran 10 min (30.0\N{MULTIPLICATION SIGN} its usual 20 s" in slow_row
    running = _row(html, still)
    assert _span(running, "run") == "5 min so far"
    assert 'data-ongoing="yes"' in running
    assert "running for 5 min (15.0\N{MULTIPLICATION SIGN} its usual 20 s" in running
    # the queued run of seed_activity waits, has not run
    queued = _row(html, run_id_of(api, "fx.gap", "queued"))
    assert _span(queued, "run") == "—"
    assert "so far" in queued
    # the live rows say the same
    assert 'data-slow="yes"' in _row(page(api, "/ui/runs/rows"), slow)


def test_a_run_page_shows_its_durations_and_why_it_is_slow(api: Api) -> None:
    for hours in (6, 5, 4):
        _run(api, S.SUCCEEDED, created=NOW - timedelta(hours=hours), took=timedelta(minutes=1))
    slow = _run(api, S.FAILED, created=NOW - timedelta(hours=2), took=timedelta(minutes=5))
    fine = _run(api, S.FAILED, created=NOW - timedelta(hours=1), took=timedelta(minutes=2))

    html = page(api, f"/ui/runs/{slow}")
    durations = re.search(r'<dl class="facts durations" id="durations">.*?</dl>', html, re.S)

    assert durations is not None
    assert _span(durations.group(0), "wait") == "5 s"
    assert _span(durations.group(0), "run") == "5 min"
    assert _span(durations.group(0), "total") == "5 min 5 s"
    assert "ran 5 min (5.0\N{MULTIPLICATION SIGN} its usual 1 min" in durations.group(0)
    assert 'class="badge slow"' not in page(api, f"/ui/runs/{fine}")


# --- filters -------------------------------------------------------------------------------


def test_several_statuses_at_once_through_every_page_and_the_live_rows(api: Api) -> None:
    for n in range(60):
        status = (S.FAILED, S.CANCELED, S.SUCCEEDED)[n % 3]
        _run(api, status, created=NOW - timedelta(minutes=n + 1), took=timedelta(seconds=1))
    wanted = {
        r["id"]
        for r in api.client.get("/runs", params={"limit": 500}).json()["items"]
        if r["status"] in {"failed", "canceled"}
    }
    assert len(wanted) == 40

    first = page(api, "/ui/runs?status=failed&status=canceled")

    assert set(_row_ids(first)) == wanted
    assert re.search(r'value="failed" checked', first)
    assert re.search(r'value="canceled" checked', first)
    assert not re.search(r'value="succeeded" checked', first)
    assert 'hx-get="/ui/runs/rows?status=failed&amp;status=canceled"' in first
    live = page(api, "/ui/runs/rows?status=failed&status=canceled")
    assert set(_row_ids(live)) == wanted


def test_keyset_pages_keep_several_statuses(api: Api) -> None:
    for n in range(70):
        status = (S.FAILED, S.TIMED_OUT)[n % 2]
        _run(api, status, created=NOW - timedelta(minutes=n + 1), took=timedelta(seconds=1))
    _run(api, S.SUCCEEDED, created=NOW - timedelta(minutes=30, seconds=30), took=timedelta(0))

    first = page(api, "/ui/runs?status=failed&status=timed_out")
    next_url = re.search(r'href="(/ui/runs\?[^"]+)" rel="next"', first)
    assert next_url is not None
    link = next_url.group(1).replace("&amp;", "&")
    assert link.startswith("/ui/runs?status=failed&status=timed_out&cursor=")
    second = page(api, link)

    first_ids, second_ids = _row_ids(first), _row_ids(second)
    assert (len(first_ids), len(second_ids)) == (50, 20)
    assert not set(first_ids) & set(second_ids)
    every = api.client.get("/runs", params={"limit": 500}).json()["items"]
    matching = [r["id"] for r in every if r["status"] in {"failed", "timed_out"}]
    assert first_ids + second_ids == matching  # newest first, nothing skipped or repeated
    assert 'href="/ui/runs?status=failed&amp;status=timed_out">Newest runs' in second


def test_a_date_range_keeps_the_runs_created_on_those_days(api: Api) -> None:
    days = {
        d: _run(api, S.FAILED, created=NOW - timedelta(days=d), took=timedelta(0))
        for d in range(1, 6)
    }

    html = page(api, "/ui/runs?since=2025-11-07&until=2025-11-09&status=failed")

    # 2025-11-11 12:00 minus 2, 3, 4 days: the 9th, 8th and 7th
    assert _row_ids(html) == [str(days[2]), str(days[3]), str(days[4])]
    assert 'name="since" value="2025-11-07"' in html
    assert 'name="until" value="2025-11-09"' in html
    assert 'type="date"' in html


def test_dates_it_cannot_use_are_said_not_a_500(api: Api) -> None:
    reversed_ = page(api, "/ui/runs?since=2025-11-09&until=2025-11-01")
    unreadable = page(api, "/ui/runs?until=soon")

    assert "&#39;until&#39; (2025-11-01) is before &#39;since&#39; (2025-11-09)" in reversed_
    assert "&#39;until&#39; is not a date and time" in unreadable


def test_the_api_takes_several_statuses_and_a_creation_range(api: Api) -> None:
    failed = _run(api, S.FAILED, created=NOW - timedelta(days=2), took=timedelta(0))
    canceled = _run(api, S.CANCELED, created=NOW - timedelta(days=1), took=timedelta(0))
    _run(api, S.SUCCEEDED, created=NOW - timedelta(hours=1), took=timedelta(0))

    def ids(params: dict[str, Any] | list[tuple[str, str]]) -> list[str]:
        response = api.client.get("/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    assert ids([("status", "failed"), ("status", "canceled")]) == [str(canceled), str(failed)]
    assert ids({"status": "failed"}) == [str(failed)]  # one status, as before
    until = (NOW - timedelta(days=1)).isoformat()
    assert ids([("status", "failed"), ("status", "canceled"), ("until", until)]) == [str(failed)]
    since = (NOW - timedelta(days=1)).isoformat()
    before_the_last = (NOW - timedelta(hours=2)).isoformat()
    assert ids([("since", since), ("until", before_the_last)]) == [str(canceled)]
    assert_problem(api.client.get("/runs", params={"status": "nope"}), 422)
    assert_problem(api.client.get("/runs", params={"until": "2025-11-01T00:00:00"}), 422)


# --- bulk actions --------------------------------------------------------------------------


def _bulk(api: Api, action: str, runs: list[UUID | str], **headers: str) -> Any:
    return api.client.post(
        "/ui/runs/bulk",
        data={"action": action, "run": [str(r) for r in runs]},
        headers={**SAME_ORIGIN, **headers},
        follow_redirects=False,
    )


def _outcome(html: str, run_id: UUID | str) -> tuple[str, str]:
    """(done | refused, the text of the outcome's cells after the run's link)."""
    row = re.search(rf'<tr data-run-id="{run_id}" data-outcome="(\w+)">(.*?)</tr>', html, re.S)
    assert row is not None, f"no outcome for {run_id}"
    cells = re.findall(r"<td>(.*?)</td>", row.group(2), re.S)[1:]
    text = re.sub(r"<[^>]+>", " ", " ".join(cells))
    return row.group(1), re.sub(r"\s+", " ", text).strip()


def _status(api: Api, run_id: UUID | str) -> str:
    ((status,),) = api.rows("SELECT status FROM metric_runs WHERE id = %s", str(run_id))
    return str(status)


def test_retry_selected_retries_each_run_it_may_and_says_why_not_for_the_others(
    api: Api,
) -> None:
    failed = _run(api, S.FAILED, created=NOW - timedelta(hours=3), took=timedelta(0))
    succeeded = _run(api, S.SUCCEEDED, created=NOW - timedelta(hours=2), took=timedelta(0))
    older = _run(api, S.TIMED_OUT, created=NOW - timedelta(hours=1), took=timedelta(0))
    newer = api.container.runs.retry(older)
    unknown = uuid4()

    response = _bulk(api, "retry", [failed, succeeded, older, unknown, failed])

    assert response.status_code == 200, response.text
    html = response.text
    assert "<h1>Retry selected</h1>" in html
    assert re.search(r"<strong>1</strong> done, <strong>3</strong> refused, of 4 selected", html)
    outcome, text = _outcome(html, failed)
    retry = api.rows("SELECT id, attempt, status FROM metric_runs WHERE retry_of = %s", failed)
    assert len(retry) == 1
    assert retry[0][1:] == (2, "queued")
    assert outcome == "done"
    assert "retry queued as attempt 2" in text
    assert f'href="/ui/runs/{retry[0][0]}"' in html
    outcome, text = _outcome(html, succeeded)
    assert outcome == "refused"
    assert "cannot be retried" in text
    assert "is succeeded; only failed, timed_out or canceled runs can be retried" in text
    outcome, text = _outcome(html, older)
    assert outcome == "refused"
    assert "not the latest attempt" in text
    assert f"retry the latest attempt, {newer.id}, instead" in text
    assert _outcome(html, unknown) == ("refused", f"refused unknown run unknown run {unknown}")
    assert len(api.rows("SELECT 1 FROM metric_runs WHERE retry_of = %s", older)) == 1


def test_cancel_selected_cancels_the_runs_that_have_not_ended(api: Api) -> None:
    queued = run_id_of(api, "fx.gap", "queued")
    pending = run_id_of(api, "reserves.at_parallel", "pending_dependencies")
    ended = _run(api, S.SUCCEEDED, created=NOW - timedelta(hours=1), took=timedelta(0))

    html = _bulk(api, "cancel", [queued, pending, ended]).text

    assert "<h1>Cancel selected</h1>" in html
    assert _outcome(html, queued) == ("done", "done canceled")
    assert _outcome(html, pending) == ("done", "done canceled")
    outcome, text = _outcome(html, ended)
    assert outcome == "refused"
    assert "already ended" in text
    assert "run cannot move from succeeded to canceled on cancel" in text
    assert (_status(api, queued), _status(api, pending), _status(api, ended)) == (
        "canceled",
        "canceled",
        "succeeded",
    )
    reasons = api.rows("SELECT status_reason FROM metric_runs WHERE id = %s", queued)
    assert "dashboard" in str(reasons[0][0])


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"action": "retry"}, "select at least one run"),
        ({"action": "rerun", "run": [str(uuid4())]}, "action: must be one of retry, cancel"),
        ({"action": "cancel", "run": ["not-a-run"]}, "run: &#39;not-a-run&#39; is not a run id"),
        (
            {"action": "cancel", "run": [str(uuid4()) for _ in range(MAX_BATCH + 1)]},
            f"at most {MAX_BATCH} runs at once ({MAX_BATCH + 1} selected)",
        ),
    ],
)
def test_a_selection_it_cannot_act_on_is_a_422_page_and_nothing_changes(
    api: Api, form: dict[str, Any], says: str
) -> None:
    queued = run_id_of(api, "fx.gap", "queued")

    response = api.client.post("/ui/runs/bulk", data=form, headers=SAME_ORIGIN)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert says in response.text
    assert _status(api, queued) == "queued"


def test_a_cross_site_selection_is_refused(api: Api) -> None:
    queued = run_id_of(api, "fx.gap", "queued")

    response = _bulk(api, "cancel", [queued], Origin="http://evil.example")

    assert response.status_code == 403
    assert _status(api, queued) == "queued"


def test_with_a_token_the_bulk_buttons_need_sign_in(database_url: str, catalogs_dir: Path) -> None:
    with running_api(database_url, MutableClock(), env={"API_TOKEN": "s3cret"}) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        run_id = _run(api, S.QUEUED, created=NOW - timedelta(minutes=1))

        html = page(api, "/ui/runs")
        refused = _bulk(api, "cancel", [run_id])

        assert re.search(r'<button type="submit" name="action" value="retry" disabled', html)
        assert "sign in with the API token to use this button" in html
        assert refused.status_code == 401
        assert _status(api, run_id) == "queued"
        signed = api.client.post(
            "/ui/sign-in", data={"token": "s3cret", "next": "/ui/runs"}, headers=SAME_ORIGIN
        )
        assert signed.status_code == 200
        assert _bulk(api, "cancel", [run_id]).status_code == 200
        assert _status(api, run_id) == "canceled"


def test_the_list_has_a_checkbox_per_run_for_the_bulk_form(api: Api) -> None:
    html = page(api, "/ui/runs")
    queued = run_id_of(api, "fx.gap", "queued")

    assert '<form id="bulk-form" method="post" action="/ui/runs/bulk"' in html
    assert f'<input type="checkbox" name="run" value="{queued}" form="bulk-form"' in html
    assert 'value="retry">Retry selected</button>' in html
    assert 'value="cancel">Cancel selected</button>' in html


# --- scale ---------------------------------------------------------------------------------

# 10k runs over the 500 metrics, set-based: 20 a metric, an hour apart, ending now; every
# seventh failed, every eleventh timed out, each succeeded run 40 s (the 1000th 40 min).
_RUNS_SQL = """
WITH ms AS (SELECT array_agg(id ORDER BY id) AS ids FROM metrics)
INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, inputs_fingerprint,
                         request_payload, created_at, queued_at, dispatched_at, started_at,
                         completed_at, updated_at)
SELECT gen_random_uuid(), ms.ids[1 + g %% cardinality(ms.ids)], s.status, 'automatic', 1,
       'list-' || g, '{}'::jsonb, t, t, t, t + interval '3 seconds',
       t + interval '3 seconds' + CASE WHEN g = 1000 THEN interval '40 minutes'
                                       ELSE interval '40 seconds' END, t
FROM ms, generate_series(0, %(runs)s - 1) AS g,
     LATERAL (SELECT %(now)s::timestamptz
                     - (g / cardinality(ms.ids)) * interval '1 hour'
                     - (g %% cardinality(ms.ids)) * interval '1 second') AS at(t),
     LATERAL (SELECT CASE
         WHEN g %% 11 = 0 THEN 'timed_out'
         WHEN g %% 7 = 0 THEN 'failed'
         ELSE 'succeeded' END) AS s(status)
"""


def test_the_runs_list_at_500_metrics_and_10k_runs_pages_filters_and_marks_slow_runs(
    database_url: str,
) -> None:
    """What the list shows at scale; its speed is bench/dashboard.py's (docs/performance.md)."""
    with running_api(database_url, MutableClock()) as api:
        api.container.catalog.load_catalog(generate_catalog(CatalogShape(datasets=100, fan_out=9)))
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(_RUNS_SQL, {"runs": 10_000, "now": NOW})
            conn.execute("ANALYZE metric_runs")

        newest = page(api, "/ui/runs")
        assert len(_row_ids(newest)) == 50
        assert newest.count('data-span="run"') == 50
        filtered_url = "/ui/runs?status=failed&status=timed_out&since=2025-11-01&until=2025-11-11"
        filtered = page(api, filtered_url)
        assert len(_row_ids(filtered)) == 50
        # run 1000 (of the first metric by id) took 40 min; its 19 others 40 s
        ((code,),) = api.rows("SELECT code FROM metrics ORDER BY id LIMIT 1")
        one_metric = page(api, f"/ui/runs?metric={code}")
        assert len(_row_ids(one_metric)) == 20
        assert one_metric.count('data-slow="yes"') == 1

        rows = page(api, "/ui/runs/rows?status=failed&status=timed_out")
        assert rows.count('data-span="run"') == 50
        older = re.search(r'href="(/ui/runs\?[^"]+)" rel="next"', filtered)
        assert older is not None
        older_page = page(api, older.group(1).replace("&amp;", "&"))
        assert len(_row_ids(older_page)) == 50
        assert not set(_row_ids(older_page)) & set(_row_ids(filtered))
