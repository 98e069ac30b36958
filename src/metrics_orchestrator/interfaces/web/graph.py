"""The catalog as a directed graph dataset -> series -> metric -> metric, as Cytoscape.js
elements, laid out in columns by depth (SPEC §8).

A series node is one (dataset, series) pair: the same series code provided by two datasets
is two nodes, so the graph shows which provider each metric reads (SPEC §2 pins it). An input
on a metric's output (`metric:X`) is an edge from metric X's node, never a dataset node.

Columns: datasets, then series, then the metrics of depth 0, 1, ... (domain/metric_graph.py
`depths`), so every edge points right. Each node also carries a position in its column, the
layout the browser uses for big graphs (static/app.js): computed here in linear time, where it
can be tested, rather than by dagre, which takes many seconds beyond a few hundred nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from metrics_orchestrator.domain.metric_graph import depths
from metrics_orchestrator.domain.metric_outputs import output_metric_code
from metrics_orchestrator.domain.metric_state import MetricState
from metrics_orchestrator.domain.model import Dataset, Metric

# Above this many nodes the browser lays the graph out with the positions computed here instead
# of with dagre, whose crossing minimisation takes many seconds there (static/app.js reads it).
DAGRE_MAX_NODES = 250

DATASET_COLUMN = 0
SERIES_COLUMN = 1
FIRST_METRIC_COLUMN = 2
# Pixels between two columns (room for a 120 px label and the edges' turns between them) and
# the least between two nodes of a column (a node and its label wrapped on two lines).
COLUMN_WIDTH = 320
ROW_HEIGHT = 40


@dataclass
class CatalogGraph:
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)

    def add_node(
        self, node_id: str, label: str, kind: str, href: str, state: str, column: int
    ) -> None:
        if node_id in self._ids:
            return
        self._ids.add(node_id)
        data = {"id": node_id, "label": label, "kind": kind, "href": href, "state": state}
        self.nodes.append({"data": {**data, "column": column}})

    def add_edge(self, source: str, target: str) -> None:
        edge_id = f"{source}->{target}"
        if edge_id in self._ids:
            return
        self._ids.add(edge_id)
        self.edges.append({"data": {"id": edge_id, "source": source, "target": target}})

    def count(self, kind: str) -> int:
        return sum(1 for n in self.nodes if n["data"]["kind"] == kind)

    def columns(self) -> int:
        return 1 + max((n["data"]["column"] for n in self.nodes), default=-1)

    def elements(self) -> list[dict[str, Any]]:
        return [*self.nodes, *self.edges]


def dataset_node(dataset_id: str) -> str:
    return f"dataset:{dataset_id}"


def series_node(dataset_id: str, series_code: str) -> str:
    return f"series:{dataset_id}/{series_code}"


def metric_node(code: str) -> str:
    return f"metric:{code}"


def upstream_metrics(metric: Metric) -> list[str]:
    """The codes of the metrics whose outputs `metric` reads, in the order it reads them."""
    codes = (output_metric_code(dep.dataset_id) for dep in metric.dependencies)
    return list(dict.fromkeys(code for code in codes if code is not None))


def downstream_metrics(code: str, metrics: Iterable[Metric]) -> list[str]:
    """The codes of the metrics that read `code`'s output directly, sorted."""
    return sorted(m.code for m in metrics if code in upstream_metrics(m))


def build_graph(
    datasets: Iterable[Dataset],
    metrics: Iterable[Metric],
    states: Mapping[str, MetricState],
    *,
    dataset_filter: str | None = None,
    metric_filter: str | None = None,
) -> CatalogGraph:
    """The whole catalog, or the part around one dataset or one metric.

    With a dataset: the dataset, its series, every metric reading it and those metrics' other
    inputs (series and upstream metrics). With a metric: the metric and its inputs. Without
    either: everything.
    """
    datasets = list(datasets)
    metrics = list(metrics)
    by_code = {m.code: m for m in metrics}
    # depths of the whole catalog, so a metric keeps its column in a filtered view
    depth = depths({m.code: upstream_metrics(m) for m in metrics})
    chosen = _chosen_metrics(metrics, dataset_filter, metric_filter)
    graph = CatalogGraph()
    _add_datasets(graph, datasets, chosen, dataset_filter, metric_filter)

    def add_metric(metric: Metric) -> None:
        state = states.get(metric.code)
        graph.add_node(
            metric_node(metric.code),
            metric.code,
            "metric",
            f"/ui/metrics/{quote(metric.code)}",
            str(state) if state is not None else "unknown",
            FIRST_METRIC_COLUMN + depth.get(metric.code, 0),
        )

    for metric in chosen:
        add_metric(metric)
        for dep in metric.dependencies:
            upstream = output_metric_code(dep.dataset_id)
            if upstream is None:
                _add_series(graph, dep.dataset_id, dep.series_code)
                graph.add_edge(
                    series_node(dep.dataset_id, dep.series_code), metric_node(metric.code)
                )
            elif upstream in by_code:
                add_metric(by_code[upstream])
                graph.add_edge(metric_node(upstream), metric_node(metric.code))
    _place(graph)
    return graph


def _add_datasets(
    graph: CatalogGraph,
    datasets: list[Dataset],
    chosen: list[Metric],
    dataset_filter: str | None,
    metric_filter: str | None,
) -> None:
    whole = dataset_filter is None and metric_filter is None
    shown = {d.id for d in datasets} if whole else set()
    if dataset_filter is not None:
        shown.add(dataset_filter)
    for metric in chosen:
        shown.update(metric.required_datasets)
    for dataset in datasets:
        # a metric's output is drawn as the metric's node, never as a dataset
        if dataset.id not in shown or output_metric_code(dataset.id) is not None:
            continue
        graph.add_node(
            dataset_node(dataset.id),
            dataset.id,
            "dataset",
            f"/ui/datasets/{quote(dataset.id)}",
            "enabled" if dataset.enabled else "disabled",
            DATASET_COLUMN,
        )
        if whole or dataset.id == dataset_filter:
            for code in dataset.series:
                _add_series(graph, dataset.id, code)


def _add_series(graph: CatalogGraph, dataset_id: str, code: str) -> None:
    graph.add_node(
        series_node(dataset_id, code),
        code,
        "series",
        f"/ui/datasets/{quote(dataset_id)}",
        "series",
        SERIES_COLUMN,
    )
    graph.add_edge(dataset_node(dataset_id), series_node(dataset_id, code))


def _chosen_metrics(
    metrics: list[Metric], dataset_filter: str | None, metric_filter: str | None
) -> list[Metric]:
    if metric_filter is not None:
        return [m for m in metrics if m.code == metric_filter]
    if dataset_filter is not None:
        return [m for m in metrics if dataset_filter in m.required_datasets]
    return metrics


def _place(graph: CatalogGraph) -> None:
    """Give every node a position: x by its column, y by its rank in the column.

    Columns are ordered left to right, each by the mean place of a node's inputs in the columns
    before it (one barycentre pass: linear time, few crossings on a layered catalog). A column's
    nodes are spread over the tallest column's height, at least `ROW_HEIGHT` apart, so no two
    nodes of a column share a position.
    """
    inputs: dict[str, list[str]] = {}
    for edge in graph.edges:
        inputs.setdefault(edge["data"]["target"], []).append(edge["data"]["source"])
    columns: list[list[dict[str, Any]]] = [[] for _ in range(graph.columns())]
    for node in graph.nodes:
        columns[node["data"]["column"]].append(node)
    height = ROW_HEIGHT * max((len(c) for c in columns), default=0)
    place: dict[str, float] = {}  # node id -> its place in its column, 0 (top) to 1 (bottom)
    for index, column in enumerate(columns):
        if index > 0:
            column.sort(key=lambda node: _mean_place(inputs.get(node["data"]["id"], []), place))
        for rank, node in enumerate(column):
            place[node["data"]["id"]] = rank / max(len(column) - 1, 1)
            node["position"] = {
                "x": COLUMN_WIDTH * index,
                "y": round(place[node["data"]["id"]] * height),
            }


def _mean_place(sources: list[str], place: Mapping[str, float]) -> float:
    known = [place[s] for s in sources if s in place]
    return sum(known) / len(known) if known else 0.0
