"""Helpers for the dashboard's tests: a catalog with waiting, queued and rejected work."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from metrics_orchestrator.domain.model import Dataset, Metric
from tests.integration.http_helpers import Api, running_api
from tests.support import MutableClock

# Where a dashboard POST comes from in the tests: the TestClient's own host.
SAME_ORIGIN = {"Origin": "http://testserver"}
UNKNOWN_DATASET_BODY = (
    '{"event": "projection_update", "dataset_id": "not_in_catalog", "bucket": "ingestor-datasets", '
    '"version_manifest_path": "datasets/not_in_catalog/versions/v1/manifest.json", '
    '"projections_path": "datasets/not_in_catalog/projections"}'
)


def seed_activity(api: Api) -> None:
    """fx_daily v1 arrives: fx.gap queues, reserves.at_parallel waits for reserves_daily;
    an event for an unknown dataset is rejected."""
    assert api.send_update("fx_daily", "v1").status_code == 200
    response = api.client.post(
        "/events/projection-update",
        content=UNKNOWN_DATASET_BODY,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text


@contextmanager
def seeded_api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    """The app over the multi-dataset catalog after `seed_activity`."""
    with running_api(database_url, MutableClock()) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        seed_activity(api)
        yield api


def page(api: Api, path: str, status: int = 200) -> str:
    """GET a dashboard page: this status, HTML, and its text."""
    response = api.client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    html: str = response.text
    return html


def run_id_of(api: Api, metric_code: str, status: str | None = None) -> str:
    runs = [r for r in api.runs_of(metric_code) if status is None or r["status"] == status]
    assert runs, f"no {status or ''} run of {metric_code}"
    run_id: str = runs[0]["id"]
    return run_id


def expected_graph_nodes(datasets: Iterable[Dataset], metrics: Iterable[Metric]) -> int:
    """Datasets + (dataset, series) pairs provided or read + metrics: the graph's node count."""
    datasets = list(datasets)
    metrics = list(metrics)
    pairs = {(d.id, code) for d in datasets for code in d.series}
    pairs |= {(dep.dataset_id, dep.series_code) for m in metrics for dep in m.dependencies}
    return len(datasets) + len(pairs) + len(metrics)


def graph_node_count(html: str) -> int:
    match = re.search(r'id="graph-summary" data-nodes="(\d+)"', html)
    assert match, "the graph page has no node summary"
    return int(match.group(1))


def external_urls(html: str) -> list[Any]:
    """Every src/href pointing off the site (the dashboard must work offline)."""
    return re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
