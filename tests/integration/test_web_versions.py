"""Versions at the centre and finding things (issue 25 items 3 and 6), over real PostgreSQL.

A version's page (dashboard and `GET /datasets/{id}/versions/{update_id}`) says what the version
is, which run wrote it (a metric's output), which runs consumed it and what each produced; the
datasets list shows each dataset's freshest version; a run's lineage links each input to its
version; the header's search box goes to a metric, a dataset, an event or a run, or lists the
candidates. The chain is driven as in production (tests/integration/test_metric_graph_api.py
`Graph`): projection updates through the API, completions through the feedback use case.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from metrics_orchestrator.application.queries import MAX_SEARCH_TEXT
from metrics_orchestrator.domain.errors import NotFound
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.web.presenters import version_href
from tests.integration.http_helpers import assert_problem, running_api
from tests.integration.test_metric_graph_api import A, B, Graph
from tests.integration.web_helpers import page
from tests.support import MutableClock

D1_V1 = "datasets/d1/versions/v1/manifest.json"


@pytest.fixture
def graph(database_url: str) -> Iterator[Graph]:
    with running_api(database_url, MutableClock()) as api:
        yield Graph(api)


def _update_id(graph: Graph, dataset_id: str, version: str) -> UUID:
    """The id of `dataset_id`'s version `version` (a projection update), from the API."""
    updates = graph.client.get(f"/datasets/{dataset_id}").json()["recent_updates"]
    path = f"datasets/{dataset_id}/versions/{version}/manifest.json"
    return next(UUID(u["id"]) for u in updates if u["version_manifest_path"] == path)


def _lineage(graph: Graph, run_id: UUID) -> dict[str, UUID]:
    """The version of each input a run consumed, by dataset id."""
    lineage = graph.client.get(f"/runs/{run_id}").json()["lineage"]
    return {entry["dataset_id"]: UUID(entry["update_id"]) for entry in lineage}


def _version(graph: Graph, dataset_id: str, update_id: UUID) -> dict[str, Any]:
    response = graph.client.get(f"/datasets/{dataset_id}/versions/{update_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _a_then_b(graph: Graph) -> tuple[UUID, UUID, UUID]:
    """d1 v1 arrives, a.base runs through and its output makes b.smooth's run: the run of A,
    the queued run of B, and the version of `metric:a.base` B consumes."""
    graph.update("d1", "v1")
    run_a = graph.run_through(A)
    run_b = graph.only_run(B, "queued")
    return run_a, run_b, _lineage(graph, run_b)[f"metric:{A}"]


def _search(graph: Graph, text: str) -> tuple[int, str]:
    """GET the search page without following: (status, Location or the page)."""
    response = graph.client.get("/ui/search", params={"q": text}, follow_redirects=False)
    if response.status_code == 303:
        return 303, response.headers["location"]
    assert response.headers["content-type"].startswith("text/html")
    return response.status_code, response.text


# --- the query ------------------------------------------------------------------------------


def test_a_version_knows_its_consumers_and_what_each_produced(graph: Graph) -> None:
    run_a, _run_b, output = _a_then_b(graph)
    d1_v1 = _update_id(graph, "d1", "v1")

    version = graph.api.container.queries.dataset_version("d1", d1_v1)

    assert version.facts.update.version_manifest_path == D1_V1
    assert version.facts.is_freshest
    assert version.facts.produced_by is None
    assert [c.id for c in version.consumers] == [run_a]
    consumer = version.consumers[0]
    assert (consumer.metric_code, consumer.status) == (A, RunStatus.SUCCEEDED)
    assert (consumer.output_dataset_id, consumer.output_update_id) == (f"metric:{A}", output)
    assert consumer.output_manifest is not None
    assert not version.more_consumers


def test_a_version_of_a_metric_output_names_the_run_that_wrote_it(graph: Graph) -> None:
    run_a, run_b, output = _a_then_b(graph)

    version = graph.api.container.queries.dataset_version(f"metric:{A}", output)

    assert version.facts.produced_by is not None
    assert version.facts.produced_by.run_id == run_a
    assert version.facts.produced_by.metric_code == A
    assert version.facts.update.run_id == run_a
    by_metric = {c.metric_code: c for c in version.consumers}
    # b.smooth and c.ratio both read a.base's output; c.ratio waits for b.smooth's too
    assert by_metric[B].id == run_b
    assert by_metric[B].status is RunStatus.QUEUED
    assert by_metric[B].output_update_id is None
    assert by_metric[B].output_manifest is None


def test_a_newer_version_is_the_freshest_and_the_older_one_is_not(graph: Graph) -> None:
    graph.update("d1", "v1")
    graph.clock.advance(timedelta(minutes=1))
    graph.update("d1", "v2")
    queries = graph.api.container.queries

    older = queries.dataset_version("d1", _update_id(graph, "d1", "v1"))
    newer = queries.dataset_version("d1", _update_id(graph, "d1", "v2"))

    assert not older.facts.is_freshest
    assert newer.facts.is_freshest


def test_a_version_is_only_found_under_its_own_dataset(graph: Graph) -> None:
    graph.update("d1", "v1")
    d1_v1 = _update_id(graph, "d1", "v1")
    queries = graph.api.container.queries

    with pytest.raises(NotFound, match="has no version"):
        queries.dataset_version("d2", d1_v1)
    with pytest.raises(NotFound, match="has no version"):
        queries.dataset_version("d1", uuid4())


def test_the_consumers_listed_are_bounded_newest_first(graph: Graph) -> None:
    graph.update("d1", "v1")
    first = graph.only_run(A, "queued")
    graph.client.post(f"/runs/{first}/cancel")
    graph.clock.advance(timedelta(minutes=1))
    assert graph.client.post(f"/runs/{first}/retry").status_code == 201
    retried = graph.only_run(A, "queued")
    d1_v1 = _update_id(graph, "d1", "v1")
    queries = graph.api.container.queries

    one = queries.dataset_version("d1", d1_v1, limit=1)
    both = queries.dataset_version("d1", d1_v1, limit=2)

    assert [c.id for c in one.consumers] == [retried]
    assert one.more_consumers
    assert [c.id for c in both.consumers] == [retried, first]
    assert [c.attempt for c in both.consumers] == [2, 1]
    assert not both.more_consumers


# --- the version page and its JSON ----------------------------------------------------------


def test_the_version_page_lists_the_consuming_runs_and_links_what_they_produced(
    graph: Graph,
) -> None:
    run_a, _run_b, output = _a_then_b(graph)
    d1_v1 = _update_id(graph, "d1", "v1")

    html = page(graph.api, version_href("d1", d1_v1))

    assert D1_V1 in html
    assert 'id="version-freshest"><span class="badge ok">freshest' in html
    row = re.search(rf'<tr data-run-id="{run_a}">(.*?)</tr>', html, re.S)
    assert row is not None
    assert f'href="/ui/runs/{run_a}"' in row.group(1)
    assert "succeeded" in row.group(1)
    assert f'href="{version_href(f"metric:{A}", output)}"' in row.group(1)
    # the event key goes, through the search, to the event that announced the version
    assert 'href="/ui/search?q=d1%3Adatasets/d1/versions/v1/manifest.json"' in html


def test_the_version_page_of_a_metric_output_links_the_run_that_wrote_it(graph: Graph) -> None:
    run_a, run_b, output = _a_then_b(graph)

    html = page(graph.api, version_href(f"metric:{A}", output))

    producer = re.search(r'id="version-producer">(.*?)</dd>', html, re.S)
    assert producer is not None
    assert f'href="/ui/runs/{run_a}"' in producer.group(1)
    assert f'href="/ui/metrics/{A}"' in producer.group(1)
    consumer = re.search(rf'<tr data-run-id="{run_b}">(.*?)</tr>', html, re.S)
    assert consumer is not None
    assert "queued" in consumer.group(1)
    assert "not yet" in consumer.group(1)
    # `metric:X` is also reachable with the colon as typed
    assert page(graph.api, f"/ui/datasets/metric:{A}/versions/{output}") == html


def test_a_version_nobody_consumed_says_so_and_an_unknown_one_is_a_404(graph: Graph) -> None:
    # e.other, the one metric reading d2, disabled: its version makes no run
    assert graph.client.patch("/metrics/e.other", json={"enabled": False}).status_code == 200
    graph.update("d2", "w1")
    w1 = _update_id(graph, "d2", "w1")

    assert "No run has consumed this version yet." in page(graph.api, version_href("d2", w1))
    assert "has no version" in page(graph.api, version_href("d1", w1), status=404)
    assert "has no version" in page(graph.api, "/ui/datasets/d2/versions/not-a-uuid", status=404)


def test_the_api_answers_a_version_with_its_runs(graph: Graph) -> None:
    run_a, run_b, output = _a_then_b(graph)

    body = _version(graph, f"metric:{A}", output)

    assert body["id"] == str(output)
    assert body["dataset_id"] == f"metric:{A}"
    assert body["is_freshest"] is True
    assert body["run_id"] == str(run_a)
    assert body["produced_by"] == {"run_id": str(run_a), "metric_code": A, "status": "succeeded"}
    consumed = {c["metric_code"]: c for c in body["consumed_by"]}
    assert consumed[B]["run_id"] == str(run_b)
    assert consumed[B]["status"] == "queued"
    assert consumed[B]["output_update_id"] is None
    assert body["more_consumers"] is False
    upstream = _version(graph, "d1", _update_id(graph, "d1", "v1"))
    assert upstream["produced_by"] is None
    assert upstream["consumed_by"][0]["output_update_id"] == str(output)
    assert upstream["consumed_by"][0]["output_dataset_id"] == f"metric:{A}"


def test_the_api_refuses_an_unknown_version_and_a_malformed_id(graph: Graph) -> None:
    graph.update("d1", "v1")
    d1_v1 = _update_id(graph, "d1", "v1")

    assert_problem(
        graph.client.get(f"/datasets/d2/versions/{d1_v1}"), 404, detail_contains="no version"
    )
    assert_problem(graph.client.get("/datasets/d1/versions/42"), 422)


# --- the datasets list, a dataset's versions, a run's lineage -------------------------------


def test_the_datasets_list_shows_each_freshest_version_when_it_came_and_its_age(
    graph: Graph,
) -> None:
    graph.update("d1", "v1", occurred_at=graph.clock.now() - timedelta(hours=3))
    graph.run_through(A)  # a minute on; a version of a metric's output, which the list omits
    graph.clock.advance(timedelta(minutes=4))
    d1_v1 = _update_id(graph, "d1", "v1")

    html = page(graph.api, "/ui/datasets")

    row = re.search(r'<tr data-dataset="d1">(.*?)</tr>', html, re.S)
    assert row is not None
    assert f'href="{version_href("d1", d1_v1)}"' in row.group(1)
    assert D1_V1 in row.group(1)
    assert "3 h 5 min ago" in row.group(1)
    never = re.search(r'<tr data-dataset="d2">(.*?)</tr>', html, re.S)
    assert never is not None
    assert "no version yet" in never.group(1)
    assert "metric:" not in html


def test_a_dataset_page_links_each_recent_version_to_its_page(graph: Graph) -> None:
    graph.update("d1", "v1")
    graph.clock.advance(timedelta(minutes=1))
    graph.update("d1", "v2")

    html = page(graph.api, "/ui/datasets/d1")

    for version in ("v1", "v2"):
        assert f'href="{version_href("d1", _update_id(graph, "d1", version))}"' in html


def test_a_run_page_links_each_input_to_its_version(graph: Graph) -> None:
    _run_a, run_b, output = _a_then_b(graph)

    html = page(graph.api, f"/ui/runs/{run_b}")

    lineage = re.search(r'<table id="lineage">(.*?)</table>', html, re.S)
    assert lineage is not None
    assert f'href="{version_href(f"metric:{A}", output)}"' in lineage.group(1)


# --- search ---------------------------------------------------------------------------------


def test_search_goes_to_a_metric_a_dataset_an_event_and_a_run(graph: Graph) -> None:
    run_a, _run_b, _output = _a_then_b(graph)
    events = graph.client.get("/events").json()["items"]
    event_id = next(e["id"] for e in events if e["event_key"] == f"d1:{D1_V1}")

    assert _search(graph, A) == (303, f"/ui/metrics/{A}")
    assert _search(graph, " d1 ") == (303, "/ui/datasets/d1")
    assert _search(graph, f"metric:{A}") == (303, f"/ui/metrics/{A}")
    assert _search(graph, f"d1:{D1_V1}") == (303, f"/ui/events/{event_id}")
    assert _search(graph, str(run_a)) == (303, f"/ui/runs/{run_a}")
    assert _search(graph, str(run_a)[:8].upper()) == (303, f"/ui/runs/{run_a}")


def test_search_lists_the_candidates_when_a_text_names_several(graph: Graph) -> None:
    graph.update("d1", "v1")
    run_a = graph.only_run(A, "queued")
    # a dataset whose id is also a metric code, and a second run sharing the first's prefix
    assert graph.client.post("/datasets", json={"id": A, "series": ["S1"]}).status_code == 200
    twin = UUID(str(run_a)[:8] + "-0000-4000-8000-000000000000")
    with psycopg.connect(graph.api.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO metric_runs (id, metric_id, status, trigger, created_at, updated_at)"
            " VALUES (%s, 'a', 'canceled', 'manual', now(), now())",
            (twin,),
        )

    status, html = _search(graph, A)
    assert status == 200
    assert 'data-kind="metric"' in html
    assert 'data-kind="dataset"' in html
    assert f'href="/ui/metrics/{A}"' in html
    assert f'href="/ui/datasets/{A}"' in html

    status, html = _search(graph, str(run_a)[:8])
    assert status == 200
    assert html.count('data-kind="run"') == 2
    assert f'href="/ui/runs/{run_a}"' in html
    assert f'href="/ui/runs/{twin}"' in html


def test_search_says_when_nothing_matches(graph: Graph) -> None:
    graph.update("d1", "v1")

    for text in ("no.such.metric", "ffff", "abc", "x" * (MAX_SEARCH_TEXT + 1), "a\x00b"):
        status, html = _search(graph, text)
        assert status == 200
        assert 'id="search-summary">Nothing is named' in html, text
    status, html = _search(graph, "   ")
    assert status == 200
    assert "Type a metric code" in html


def test_every_page_has_the_search_box(graph: Graph) -> None:
    for path in ("/", "/ui/runs", "/ui/metrics", "/ui/datasets", "/ui/events", "/ui/graph"):
        html = page(graph.api, path)
        assert '<form class="search" method="get" action="/ui/search" role="search"' in html
        assert 'name="q"' in html


# --- the overview refreshes itself ----------------------------------------------------------


def test_the_overview_refreshes_itself_like_the_runs_list(graph: Graph) -> None:
    html = page(graph.api, "/")

    live = re.search(r'<div id="overview-live"([^>]*)>', html)
    assert live is not None
    assert 'hx-get="/"' in live.group(1)
    assert 'hx-select="#overview-live"' in live.group(1)
    assert 'hx-trigger="every 5s"' in live.group(1)
    # everything that counts is inside the part that is swapped
    inside = html[live.end() :]
    for element in ('id="metric-states"', 'id="pending-count"', 'id="stale-count"'):
        assert element in inside


# --- at scale -------------------------------------------------------------------------------

# A version read by 10,000 runs (docs/performance.md's 10k-run history): the version's page
# lists the newest 100 through run_dataset_updates_by_update; search reads indexes only.
# Their speed is bench/dashboard.py's (docs/performance.md, figure 7).
SCALE_RUNS = 10_000


def test_version_page_datasets_list_and_search_over_10k_runs(graph: Graph) -> None:
    graph.update("d1", "v1")
    d1_v1 = _update_id(graph, "d1", "v1")
    with psycopg.connect(graph.api.database_url, autocommit=True) as conn:
        conn.execute(
            "WITH runs AS ("
            " INSERT INTO metric_runs (id, metric_id, status, trigger, created_at, updated_at)"
            " SELECT gen_random_uuid(), 'a', 'canceled', 'manual',"
            "        now() - make_interval(secs => n), now()"
            " FROM generate_series(1, %s) AS n RETURNING id)"
            " INSERT INTO run_dataset_updates (run_id, dataset_id, update_id)"
            " SELECT id, 'd1', %s FROM runs",
            (SCALE_RUNS, d1_v1),
        )
        conn.execute("ANALYZE")

    for path in ("/ui/datasets", f"/ui/search?q={A}"):
        response = graph.client.get(path, follow_redirects=False)
        assert response.status_code in (200, 303), response.text

    html = page(graph.api, version_href("d1", d1_v1))
    assert html.count("<tr data-run-id=") == 100
    assert "the newest 100 are shown" in html
