"""The dashboard shows SPEC §8's data time and staleness, and refreshes (issue 23 items 4-5):
data age and the stale badge on the overview, the metrics list and a metric's page; "Refresh"
and "Refresh stale metrics"; a run's data time and definition version; what an upstream
metric itself waits for in "why not yet"; every metric downstream in a dataset's impact.

The graph is driven as in production (tests/integration/test_metric_graph_api.py `Graph`):
projection updates through the API, completions through the feedback use case.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from metrics_orchestrator.interfaces.web.presenters import when
from tests.integration.http_helpers import running_api
from tests.integration.test_metric_graph_api import A, B, C, D, Graph
from tests.integration.web_helpers import SAME_ORIGIN, page
from tests.support import MutableClock

# a.base with a window of 3 instead of 2: a new definition
CHANGED_A: dict[str, Any] = {
    "id": "a",
    "code": A,
    "expression_type": "window_op",
    "expression": {"op": "sma", "series": {"series_code": "S1"}, "window": 3},
}


@pytest.fixture
def graph(database_url: str) -> Iterator[Graph]:
    with running_api(database_url, MutableClock()) as api:
        yield Graph(api)


def _settled_a_day_ago(graph: Graph) -> None:
    """d1 produced a day ago, d2 now; the whole chain run through (each completion a minute)."""
    graph.update("d1", "v1", occurred_at=graph.clock.now() - timedelta(days=1))
    graph.update("d2", "w1")
    for code in (A, "e.other", B, C, D):
        graph.run_through(code)


def _change_definition_of_a(graph: Graph) -> None:
    assert graph.client.post("/metrics", json=CHANGED_A).status_code == 200


def _element(html: str, element_id: str) -> str:
    """The inner HTML of the element with this id (no nested element of the same tag)."""
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"the page has no #{element_id}"
    return match.group(2)


def _row(html: str, metric_code: str) -> str:
    match = re.search(rf'<tr data-metric="{re.escape(metric_code)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {metric_code}"
    return match.group(1)


def _post(graph: Graph, path: str) -> str:
    """Press a dashboard button; returns the page it leads to (with its notice)."""
    response = graph.client.post(path, headers=SAME_ORIGIN, follow_redirects=False)
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


# --- a metric's page ------------------------------------------------------------------------


def test_a_metric_page_shows_its_data_time_age_and_that_it_is_up_to_date(graph: Graph) -> None:
    produced = graph.clock.now() - timedelta(days=1)
    _settled_a_day_ago(graph)

    html = page(graph.api, f"/ui/metrics/{D}")

    data_time = _element(html, "data-time")
    assert when(produced) in data_time
    # five completions a minute each: the data behind d.top is a day and five minutes old
    assert "data 1 d old" in data_time
    assert f'title="data time {when(produced)}' in data_time
    assert _element(html, "staleness") == "yes"


def test_a_metric_page_says_it_is_stale_and_why(graph: Graph) -> None:
    _settled_a_day_ago(graph)
    _change_definition_of_a(graph)

    own = _element(page(graph.api, f"/ui/metrics/{A}"), "staleness")
    below = _element(page(graph.api, f"/ui/metrics/{D}"), "staleness")

    assert 'data-stale="definition changed"' in own
    assert "definition changed" in own
    assert "computed with an older definition" in own
    assert 'data-stale="upstream stale"' in below
    assert f"upstream stale: {C}" in below


def test_a_metric_that_never_succeeded_has_no_data_time(graph: Graph) -> None:
    html = page(graph.api, f"/ui/metrics/{B}")

    assert "none yet: it has not succeeded" in _element(html, "data-time")
    assert _element(html, "staleness") == "yes"


def test_refresh_on_a_metric_page_queues_a_manual_run_on_its_freshest_inputs(
    graph: Graph,
) -> None:
    _settled_a_day_ago(graph)
    _change_definition_of_a(graph)
    html = page(graph.api, f"/ui/metrics/{A}")
    # the one manual-run button, now called Refresh (no twin beside it)
    assert f'action="/ui/metrics/{A}/run"' in html
    assert ">Refresh</button>" in html
    assert "Run now" not in html

    location = _post(graph, f"/ui/metrics/{A}/run")

    run = graph.api.runs_of(A)[0]
    assert location == f"/ui/runs/{run['id']}"
    assert (run["status"], run["trigger"]) == ("queued", "manual")
    assert "manual run queued" in page(graph.api, location)


def test_why_not_yet_says_what_an_upstream_metric_itself_waits_for(graph: Graph) -> None:
    html = page(graph.api, f"/ui/metrics/{B}")

    cell = re.search(
        rf'<tr data-dataset="metric:{A}">.*?<td class="upstream">(.*?)</td>', html, re.S
    )
    assert cell, html
    assert f'<a href="/ui/metrics/{A}">{A}</a>' in cell.group(1)
    assert 'data-state="waiting"' in cell.group(1)
    # the reason names what X's run waits for
    assert "first run waiting for d1 (no version yet)" in cell.group(1)
    # a dataset of projections has no upstream metric
    dataset_row = re.search(
        r'<tr data-dataset="d1">.*?</tr>', page(graph.api, f"/ui/metrics/{A}"), re.S
    )
    assert dataset_row
    assert '<td class="upstream">—</td>' in dataset_row.group(0)


def test_why_not_yet_says_an_upstream_metric_failed_or_is_disabled(graph: Graph) -> None:
    graph.update("d1", "v1")
    graph.clock.advance(timedelta(minutes=5))
    graph.complete(graph.only_run(A, "queued"), succeeded=False)

    failed = page(graph.api, f"/ui/metrics/{C}")
    assert 'data-state="failing"' in failed
    assert "failed at 2025-11-11 12:05:00 UTC" in failed

    assert graph.client.patch(f"/metrics/{A}", json={"enabled": False}).status_code == 200
    disabled = page(graph.api, f"/ui/metrics/{B}")
    cell = re.search(r'<td class="upstream">(.*?)</td>', disabled, re.S)
    assert cell
    assert 'data-state="disabled"' in cell.group(1)


# --- the metrics list and the overview ------------------------------------------------------


def test_the_metrics_list_shows_data_age_and_stale_badges_and_filters_the_stale(
    graph: Graph,
) -> None:
    produced = graph.clock.now() - timedelta(days=1)
    _settled_a_day_ago(graph)
    _change_definition_of_a(graph)

    html = page(graph.api, "/ui/metrics")

    assert f'title="data time {when(produced)}' in _row(html, B)
    assert "data 1 d old" in _row(html, B)
    assert 'data-stale="definition changed"' in _row(html, A)
    assert f"upstream stale: {A}, {B}" in _row(html, C)
    assert "data-stale" not in _row(html, "e.other")
    assert "4 stale" in _element(html, "stale-summary")
    stale_only = page(graph.api, "/ui/metrics?stale=yes")
    assert re.findall(r'<tr data-metric="([^"]+)">', stale_only) == [A, B, C, D]


def test_the_overview_lists_the_stale_metrics_and_the_oldest_data(graph: Graph) -> None:
    produced = graph.clock.now() - timedelta(days=1)
    _settled_a_day_ago(graph)
    _change_definition_of_a(graph)

    html = page(graph.api, "/")

    assert _element(html, "stale-count") == "4"
    assert f"upstream stale: {C}" in _row(html, D)
    assert "definition changed" in _row(html, A)
    oldest = _element(html, "oldest-data")
    assert f'<a href="/ui/metrics/{A}">{A}</a>' in oldest  # the first of those a day old
    assert when(produced) in oldest
    assert 'action="/ui/metrics/refresh-stale?back=overview"' in html


def test_refresh_stale_metrics_runs_the_roots_and_says_so(graph: Graph) -> None:
    _settled_a_day_ago(graph)
    _change_definition_of_a(graph)

    location = _post(graph, "/ui/metrics/refresh-stale?back=overview")

    assert location == "/"
    (run,) = [r for r in graph.api.runs_of(A) if r["status"] == "queued"]
    assert run["trigger"] == "manual"
    assert graph.runs(B, "queued") == []  # the chain brings the rest up to date
    notice = page(graph.api, location)
    assert f"refresh queued for 1 stale metric: {A}" in notice
    # again: the root's run is on its way, so nothing more is queued
    again = _post(graph, "/ui/metrics/refresh-stale?back=metrics")
    assert again == "/ui/metrics"
    assert "nothing to refresh" in page(graph.api, again)
    assert len(graph.runs(A, "queued")) == 1


def test_refresh_stale_metrics_reports_a_root_that_cannot_run(graph: Graph) -> None:
    _settled_a_day_ago(graph)
    _change_definition_of_a(graph)
    assert graph.client.patch(f"/metrics/{A}", json={"enabled": False}).status_code == 200

    # an unknown `back` goes to the metrics list: the form redirects only to its own pages
    location = _post(graph, "/ui/metrics/refresh-stale?back=https://evil.example/")

    assert location == "/ui/metrics"
    html = page(graph.api, location)
    assert f"not run: {A} (" in html
    assert "disabled" in html


def test_refresh_stale_metrics_is_refused_from_another_site_and_without_sign_in(
    database_url: str,
) -> None:
    with running_api(database_url, MutableClock(), env={"API_TOKEN": "s3cret"}) as api:
        graph = Graph(api)
        html = page(api, "/")
        assert "sign in with the API token to use this button" in html
        unsigned = api.client.post(
            "/ui/metrics/refresh-stale", headers=SAME_ORIGIN, follow_redirects=False
        )
        cross_site = api.client.post(
            "/ui/metrics/refresh-stale",
            headers={"Origin": "http://evil.example"},
            follow_redirects=False,
        )

        assert unsigned.status_code == 401
        assert cross_site.status_code == 403
        assert graph.api.rows("SELECT count(*) FROM metric_runs") == [(0,)]


# --- a run's page -----------------------------------------------------------------------------


def test_a_run_page_shows_its_data_time_and_definition_version(graph: Graph) -> None:
    produced = graph.clock.now() - timedelta(days=1)
    graph.update("d1", "v1", occurred_at=produced)
    queued = graph.only_run(A, "queued")
    (definition,) = graph.api.rows("SELECT definition_version FROM metrics WHERE code = %s", A)

    before = page(graph.api, f"/ui/runs/{queued}")
    assert "known once it succeeds" in _element(before, "data-time")
    assert f"<code>{definition[0]}</code>" in _element(before, "definition-version")

    graph.run_through(A)
    b = graph.run_through(B)
    after = page(graph.api, f"/ui/runs/{b}")
    # B's data time is the raw version behind A's output
    assert when(produced) in _element(after, "data-time")
    assert "data 1 d" in _element(after, "data-time")


# --- a dataset's impact -----------------------------------------------------------------------


def test_a_dataset_impact_lists_every_metric_downstream_with_its_depth(graph: Graph) -> None:
    html = page(graph.api, "/ui/datasets/d1")

    assert "Would run a.base at once" in _element(html, "impact-summary")
    rows = re.findall(
        r'<tr data-metric="([^"]+)"><td><a [^>]+>[^<]+</a></td><td>(\d+)</td></tr>',
        _element(html, "impact-downstream"),
    )
    assert rows == [(B, "1"), (C, "1"), (D, "2")]
    assert 'id="impact-downstream"' not in page(graph.api, "/ui/datasets/d2")
