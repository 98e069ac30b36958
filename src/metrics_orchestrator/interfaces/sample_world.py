"""The sample world (SPEC §4.4): the bundled catalogs' datasets written into S3, for
`sample-data`, `serve --worker --sample-data` and the demo.

With `reference_worker.py`, the only part of the control plane that imports the worker package
(its generator writes with polars, the `[worker]` extra), and only inside a function.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from metrics_orchestrator.bootstrap import AwsWiring, Container, Settings, create_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUNDLED_CATALOGS = ("bcra_catalog.yaml", "multi_dataset_catalog.yaml", "chains_catalog.yaml")
SOURCE = "sample-data"


def bundled_catalogs() -> list[dict[str, Any]]:
    folder = resources.files("metrics_orchestrator.interfaces.demo_catalogs")
    return [yaml.safe_load(folder.joinpath(name).read_text("utf-8")) for name in BUNDLED_CATALOGS]


def write_world(
    s3: S3Client, documents: list[dict[str, Any]], *, version: str | None = None
) -> list[dict[str, Any]]:
    """Every catalog's datasets written once (a dataset in two catalogs is written once)."""
    # Lazy: the sample world is written with polars (the `[worker]` extra), not a cycle.
    from metrics_orchestrator.worker.sample_world import write_sample_world

    seen: set[str] = set()
    updates = []
    for document in documents:
        datasets = [d for d in document.get("datasets", []) if d.get("id") not in seen]
        seen |= {str(d.get("id")) for d in datasets}
        updates += write_sample_world(s3, {**document, "datasets": datasets}, version=version)
    return updates


def seed_sample_world(container: Container, settings: Settings, aws: AwsWiring) -> int:
    """Embedded `serve`: load the bundled catalogs, write the world, process its updates."""
    documents = bundled_catalogs()
    for document in documents:
        container.catalog.load_catalog(document)
    s3 = create_s3_client(settings.aws_region, aws.endpoint_url)
    updates = write_world(s3, documents)
    for update in updates:
        container.router.handle(json.dumps(update), source=SOURCE)
    return len(updates)
