"""The catalog as a directed graph dataset -> series -> metric, as Cytoscape.js elements.

A series node is one (dataset, series) pair: the same series code provided by two datasets
is two nodes, so the graph shows which provider each metric reads (SPEC §2 pins it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from metrics_orchestrator.domain.metric_state import MetricState
from metrics_orchestrator.domain.model import Dataset, Metric

# Above this many nodes the browser lays the graph out in three columns instead of with dagre,
# whose crossing minimisation takes many seconds there (static/app.js reads it from the page).
DAGRE_MAX_NODES = 250


@dataclass
class CatalogGraph:
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)

    def add_node(self, node_id: str, label: str, kind: str, href: str, state: str) -> None:
        if node_id in self._ids:
            return
        self._ids.add(node_id)
        self.nodes.append(
            {"data": {"id": node_id, "label": label, "kind": kind, "href": href, "state": state}}
        )

    def add_edge(self, source: str, target: str) -> None:
        edge_id = f"{source}->{target}"
        if edge_id in self._ids:
            return
        self._ids.add(edge_id)
        self.edges.append({"data": {"id": edge_id, "source": source, "target": target}})

    def count(self, kind: str) -> int:
        return sum(1 for n in self.nodes if n["data"]["kind"] == kind)

    def elements(self) -> list[dict[str, Any]]:
        return [*self.nodes, *self.edges]


def dataset_node(dataset_id: str) -> str:
    return f"dataset:{dataset_id}"


def series_node(dataset_id: str, series_code: str) -> str:
    return f"series:{dataset_id}/{series_code}"


def metric_node(code: str) -> str:
    return f"metric:{code}"


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
    inputs. With a metric: the metric and its inputs. Without either: everything.
    """
    datasets = list(datasets)
    metrics = list(metrics)
    chosen = _chosen_metrics(metrics, dataset_filter, metric_filter)
    graph = CatalogGraph()
    whole = dataset_filter is None and metric_filter is None
    shown_datasets = {d.id for d in datasets} if whole else set()
    if dataset_filter is not None:
        shown_datasets.add(dataset_filter)
    for metric in chosen:
        shown_datasets.update(dep.dataset_id for dep in metric.dependencies)
    for dataset in datasets:
        if dataset.id not in shown_datasets:
            continue
        graph.add_node(
            dataset_node(dataset.id),
            dataset.id,
            "dataset",
            f"/ui/datasets/{quote(dataset.id)}",
            "enabled" if dataset.enabled else "disabled",
        )
        if whole or dataset.id == dataset_filter:
            for code in dataset.series:
                _add_series(graph, dataset.id, code)
    for metric in chosen:
        state = states.get(metric.code)
        graph.add_node(
            metric_node(metric.code),
            metric.code,
            "metric",
            f"/ui/metrics/{quote(metric.code)}",
            str(state) if state is not None else "unknown",
        )
        for dep in metric.dependencies:
            _add_series(graph, dep.dataset_id, dep.series_code)
            graph.add_edge(series_node(dep.dataset_id, dep.series_code), metric_node(metric.code))
    return graph


def _add_series(graph: CatalogGraph, dataset_id: str, code: str) -> None:
    graph.add_node(
        series_node(dataset_id, code), code, "series", f"/ui/datasets/{quote(dataset_id)}", "series"
    )
    graph.add_edge(dataset_node(dataset_id), series_node(dataset_id, code))


def _chosen_metrics(
    metrics: list[Metric], dataset_filter: str | None, metric_filter: str | None
) -> list[Metric]:
    if metric_filter is not None:
        return [m for m in metrics if m.code == metric_filter]
    if dataset_filter is not None:
        return [m for m in metrics if any(d.dataset_id == dataset_filter for d in m.dependencies)]
    return metrics
