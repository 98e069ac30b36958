"""The dashboard shows metrics over metrics (SPEC §8): metric -> metric edges in the graph laid
out in columns by depth, a metric's upstream and downstream metrics, `metric:X` inputs linking
to metric X, and no `metric:X` pseudo-dataset among the datasets."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from metrics_orchestrator.domain.metric_graph import MAX_CHAIN
from tests.integration.http_helpers import Api, running_api
from tests.integration.metric_graph_helpers import WIDTH, chain_catalog, tree_catalog
from tests.integration.web_helpers import graph_node_count, page
from tests.support import MutableClock


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        api.container.catalog.load_catalog(chain_catalog())
        yield api


def graph_elements(html: str) -> list[dict[str, Any]]:
    match = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', html, re.S)
    assert match, "the graph page has no elements"
    elements: list[dict[str, Any]] = json.loads(match.group(1))
    return elements


def nodes_of(html: str) -> dict[str, dict[str, Any]]:
    return {e["data"]["id"]: e for e in graph_elements(html) if "source" not in e["data"]}


def edges_of(html: str) -> set[tuple[str, str]]:
    return {
        (e["data"]["source"], e["data"]["target"])
        for e in graph_elements(html)
        if "source" in e["data"]
    }


def described(html: str, dd_id: str) -> str:
    """The content of the metric page's `<dd id=...>`."""
    match = re.search(rf'<dd id="{dd_id}">(.*?)</dd>', html, re.S)
    assert match, f"the page has no {dd_id}"
    return match.group(1)


# --- the graph -----------------------------------------------------------------------------


def test_the_graph_draws_metric_to_metric_edges_in_columns_by_depth(api: Api) -> None:
    html = page(api, "/ui/graph")
    nodes = nodes_of(html)

    assert set(nodes) == {
        "dataset:fx_daily",
        "series:fx_daily/FX_D",
        "metric:chain.a",
        "metric:chain.b",
        "metric:chain.c",
    }
    assert graph_node_count(html) == 5
    assert edges_of(html) == {
        ("dataset:fx_daily", "series:fx_daily/FX_D"),
        ("series:fx_daily/FX_D", "metric:chain.a"),
        ("metric:chain.a", "metric:chain.b"),
        ("metric:chain.b", "metric:chain.c"),
        ("metric:chain.a", "metric:chain.c"),
    }
    columns = {node_id: node["data"]["column"] for node_id, node in nodes.items()}
    assert columns == {
        "dataset:fx_daily": 0,
        "series:fx_daily/FX_D": 1,
        "metric:chain.a": 2,
        "metric:chain.b": 3,
        "metric:chain.c": 4,
    }
    assert 'data-columns="5"' in html
    # every edge points right
    xs = {node_id: node["position"]["x"] for node_id, node in nodes.items()}
    assert all(xs[source] < xs[target] for source, target in edges_of(html))


def test_a_metric_filter_shows_its_upstream_metrics_and_no_pseudo_dataset(api: Api) -> None:
    html = page(api, "/ui/graph?metric=chain.c")

    assert set(nodes_of(html)) == {"metric:chain.a", "metric:chain.b", "metric:chain.c"}
    assert "dataset:metric:" not in html
    assert "series:metric:" not in html


def test_a_dataset_filter_keeps_the_metrics_in_their_depth_columns(api: Api) -> None:
    html = page(api, "/ui/graph?dataset=fx_daily")
    nodes = nodes_of(html)

    assert nodes["metric:chain.a"]["data"]["column"] == 2
    assert "metric:chain.b" not in nodes  # it reads no series of fx_daily


# --- a metric's page -----------------------------------------------------------------------


def test_a_metric_page_links_its_upstream_and_downstream_metrics(api: Api) -> None:
    html = page(api, "/ui/metrics/chain.b")

    upstream, downstream = described(html, "upstream"), described(html, "downstream")
    assert '<a href="/ui/metrics/chain.a">chain.a</a>' in upstream
    assert '<a href="/ui/metrics/chain.c">chain.c</a>' in downstream
    assert "chain.c" not in upstream


def test_a_metric_over_two_metrics_lists_both_and_is_read_by_none(api: Api) -> None:
    html = page(api, "/ui/metrics/chain.c")

    upstream, downstream = described(html, "upstream"), described(html, "downstream")
    assert re.findall(r'href="/ui/metrics/([^"]+)"', upstream) == ["chain.b", "chain.a"]
    assert "no metric" in downstream
    assert "datasets only" in page(api, "/ui/metrics/chain.a")


def test_a_metric_input_links_to_the_upstream_metric(api: Api) -> None:
    html = page(api, "/ui/metrics/chain.b")

    row = re.search(r'<tr data-dataset="metric:chain.a">(.*?)</tr>', html, re.S)
    assert row, "the inputs table has no row for metric:chain.a"
    assert '<a href="/ui/metrics/chain.a">metric:chain.a</a>' in row.group(1)
    assert "/ui/datasets/metric" not in html


def test_the_metrics_list_links_a_metric_input_to_its_metric(api: Api) -> None:
    html = page(api, "/ui/metrics")

    assert '<a href="/ui/metrics/chain.a">chain.a@metric:chain.a</a>' in html


# --- pseudo-datasets -----------------------------------------------------------------------


def test_the_datasets_list_has_no_metric_outputs(api: Api) -> None:
    html = page(api, "/ui/datasets")

    assert 'data-dataset="fx_daily"' in html
    assert "metric:" not in html


def test_the_page_of_a_metric_output_redirects_to_the_metric(api: Api) -> None:
    response = api.client.get("/ui/datasets/metric:chain.a", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/metrics/chain.a"
    assert "Metric <code>chain.a</code>" in page(api, "/ui/datasets/metric:chain.a")


def test_the_output_of_an_unknown_metric_is_a_clean_404(api: Api) -> None:
    html = page(api, "/ui/datasets/metric:nope", status=404)

    assert "unknown metric &#39;nope&#39;" in html


# --- 500 metrics ---------------------------------------------------------------------------

# A page of 500 metrics (plus datasets and series) stays small: the elements JSON, the list
# under the graph and the layout come to well under 1 KiB a node.
MAX_BYTES_PER_NODE = 1024
MAX_SECONDS = 10.0


def test_a_500_metric_tree_renders_bounded_in_columns_with_unique_positions(
    database_url: str,
) -> None:
    with running_api(database_url, MutableClock()) as api:
        api.container.catalog.load_catalog(tree_catalog())
        assert len(api.container.catalog.list_metrics()) == 500

        started = time.monotonic()
        html = page(api, "/ui/graph")
        elapsed = time.monotonic() - started

        nodes = nodes_of(html)
        assert len(nodes) == 20 + 20 + 500
        assert elapsed < MAX_SECONDS
        assert len(html.encode()) < MAX_BYTES_PER_NODE * len(nodes)
        assert "A large graph: drag to pan" in html
        # datasets, series, then one column per depth: 16 metrics in the longest chain
        assert f'data-columns="{2 + MAX_CHAIN}"' in html
        assert nodes["metric:tree.m_499"]["data"]["column"] == 2 + 499 // WIDTH
        # no two nodes share a position, and a column's nodes are at least a row apart
        positions = [(n["position"]["x"], n["position"]["y"]) for n in nodes.values()]
        assert len(set(positions)) == len(positions)
        by_column: dict[int, list[int]] = {}
        for node in nodes.values():
            by_column.setdefault(node["data"]["column"], []).append(node["position"]["y"])
        for ys in by_column.values():
            ordered = sorted(ys)
            assert all(b - a >= 40 for a, b in pairwise(ordered))
        xs = {node_id: node["position"]["x"] for node_id, node in nodes.items()}
        assert all(xs[source] < xs[target] for source, target in edges_of(html))
