"""The dependency graph's builder (SPEC §8): metric -> metric edges, columns by depth, and a
position per node that no other node of its column shares."""

from __future__ import annotations

from itertools import pairwise

from metrics_orchestrator.domain.model import Dataset, Metric, MetricDependency
from metrics_orchestrator.interfaces.web.graph import (
    ROW_HEIGHT,
    build_graph,
    downstream_metrics,
    upstream_metrics,
)
from metrics_orchestrator.interfaces.web.presenters import dataset_href


def _metric(code: str, *deps: MetricDependency) -> Metric:
    return Metric(f"id-{code}", code, "series_math", {}, 7, dependencies=deps)


def _on(code: str) -> MetricDependency:
    return MetricDependency(code, f"metric:{code}")


DATASETS = [Dataset("d1", series=("S", "T"))]
METRICS = [
    _metric("a", MetricDependency("S", "d1")),
    _metric("b", _on("a"), MetricDependency("T", "d1")),
    _metric("c", _on("b"), _on("a")),
]


def test_an_input_on_a_metric_output_is_an_edge_from_that_metric() -> None:
    graph = build_graph(DATASETS, METRICS, {})

    ids = {n["data"]["id"] for n in graph.nodes}
    edges = {(e["data"]["source"], e["data"]["target"]) for e in graph.edges}
    assert ids == {"dataset:d1", "series:d1/S", "series:d1/T", "metric:a", "metric:b", "metric:c"}
    assert {("metric:a", "metric:b"), ("metric:b", "metric:c"), ("metric:a", "metric:c")} <= edges
    assert not any("metric:" in source for source, _ in edges if source.startswith("series:"))


def test_columns_are_datasets_series_then_metrics_by_depth() -> None:
    graph = build_graph(DATASETS, METRICS, {})

    columns = {n["data"]["id"]: n["data"]["column"] for n in graph.nodes}
    assert columns["dataset:d1"] == 0
    assert columns["series:d1/S"] == columns["series:d1/T"] == 1
    assert (columns["metric:a"], columns["metric:b"], columns["metric:c"]) == (2, 3, 4)
    assert graph.columns() == 5
    x = {n["data"]["id"]: n["position"]["x"] for n in graph.nodes}
    assert all(x[e["data"]["source"]] < x[e["data"]["target"]] for e in graph.edges)


def test_positions_in_a_column_are_unique_and_a_row_apart() -> None:
    wide = [_metric(f"m{i}", MetricDependency("S" if i % 2 else "T", "d1")) for i in range(30)]
    graph = build_graph(DATASETS, [*wide, _metric("top", *(_on(m.code) for m in wide))], {})

    positions = [(n["position"]["x"], n["position"]["y"]) for n in graph.nodes]
    assert len(set(positions)) == len(positions)
    ys = sorted(n["position"]["y"] for n in graph.nodes if n["data"]["column"] == 2)
    assert all(b - a >= ROW_HEIGHT for a, b in pairwise(ys))


def test_a_filtered_view_keeps_the_whole_catalogs_depths() -> None:
    graph = build_graph(DATASETS, METRICS, {}, metric_filter="c")

    columns = {n["data"]["id"]: n["data"]["column"] for n in graph.nodes}
    assert columns == {"metric:a": 2, "metric:b": 3, "metric:c": 4}


def test_upstream_and_downstream_metrics() -> None:
    assert upstream_metrics(METRICS[2]) == ["b", "a"]
    assert upstream_metrics(METRICS[0]) == []
    assert downstream_metrics("a", METRICS) == ["b", "c"]
    assert downstream_metrics("c", METRICS) == []


def test_a_metric_output_links_to_its_metric_page() -> None:
    assert dataset_href("metric:fx.gap") == "/ui/metrics/fx.gap"
    assert dataset_href("fx_daily") == "/ui/datasets/fx_daily"
