"""A metric's output as a dataset (SPEC §8): the pseudo-dataset `metric:X`, its versions and
the data time behind a run. Pure functions; standard library only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from metrics_orchestrator.domain.model import DatasetUpdate
from metrics_orchestrator.domain.s3_locations import locate, parse_s3_uri

# A real dataset id may not contain ":" (domain/identifiers.py), so these never collide.
OUTPUT_PREFIX = "metric:"
# `kind` of a run request's catalog entry for a metric's output (SPEC §8)
METRIC_OUTPUT_KIND = "metric_output"


def output_dataset_id(metric_code: str) -> str:
    """The pseudo-dataset of a metric's output."""
    return f"{OUTPUT_PREFIX}{metric_code}"


def output_metric_code(dataset_id: str) -> str | None:
    """The metric whose output this dataset is; None for a dataset of projections."""
    return dataset_id[len(OUTPUT_PREFIX) :] if dataset_id.startswith(OUTPUT_PREFIX) else None


@dataclass(frozen=True, slots=True)
class OutputFacts:
    """What the control plane knows of a succeeded run's output when its completion arrives."""

    run_id: UUID
    dataset_id: str  # `metric:X` of the run's metric
    base_path: str | None  # the request's `output.basePath`
    formed_at: datetime  # when the run's chain (its first attempt) was formed
    manifest: str | None  # the completion's `outputManifest`


def output_version(output: OutputFacts, received_at: datetime) -> DatasetUpdate | None:
    """The version of `metric:X` a succeeded run's output makes (SPEC §8), or None when the
    completion names no manifest or the request no output base path (nothing to read).

    Effective when the completion was received; ordered among X's versions by when its run was
    formed (`DatasetUpdate.order_key`), so a late success of an older run never wins.
    """
    if not output.manifest or not output.base_path:
        return None
    try:
        base = parse_s3_uri(output.base_path)
        manifest = locate(output.manifest, base.bucket)
    except ValueError:
        return None
    if not manifest.key or not base.key:
        return None
    return DatasetUpdate(
        id=uuid4(),
        event_key=f"{output.dataset_id}:run:{output.run_id}",
        dataset_id=output.dataset_id,
        bucket=manifest.bucket,
        version_manifest_path=manifest.key,
        projections_path=base.key,
        occurred_at=None,
        received_at=received_at,
        run_id=output.run_id,
        formed_at=output.formed_at,
    )


@dataclass(frozen=True, slots=True)
class InputBehind:
    """An update a run consumed: its effective time and, for a metric's output, the data time
    of the run that wrote it (None when that run has none recorded)."""

    effective_at: datetime
    upstream_data_time: datetime | None = None
    from_metric: bool = False


def data_time(inputs: Iterable[InputBehind]) -> datetime | None:
    """SPEC §8: the oldest effective time among the external dataset versions behind a run,
    directly or through the upstream runs whose outputs it consumed (None: no inputs)."""
    times = [
        i.upstream_data_time
        if i.from_metric and i.upstream_data_time is not None
        else i.effective_at
        for i in inputs
    ]
    return min(times, default=None)


def output_catalog_entry(update: DatasetUpdate) -> Mapping[str, Any]:
    """The fields §8 adds to a run request's catalog entry for a metric's output."""
    if update.run_id is None:  # a projection update: the common case, decided first
        return {}
    code = output_metric_code(update.dataset_id)
    if code is None:
        return {}
    return {"kind": METRIC_OUTPUT_KIND, "metricCode": code, "runId": str(update.run_id)}
