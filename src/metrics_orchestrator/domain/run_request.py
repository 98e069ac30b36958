"""The `metric_run_requested` message (SPEC §4.3): the contract workers already speak."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from metrics_orchestrator.domain.model import MetricDependency

RUN_REQUESTED = "metric_run_requested"
SCHEMA_VERSION = "1"


@dataclass(frozen=True, slots=True)
class ConsumedUpdate:
    """A dataset update as a run request names it in `catalog.datasets`."""

    update_id: UUID
    dataset_id: str
    bucket: str
    manifest_path: str
    projections_path: str


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_run_request(
    *,
    run_id: UUID,
    attempt: int,
    requested_at: datetime,
    metric_code: str,
    expression_type: str,
    expression_json: Mapping[str, Any],
    dependencies: Sequence[MetricDependency],
    consumed: Mapping[str, ConsumedUpdate],
    output_base_path: str,
) -> dict[str, Any]:
    """The complete payload stored with a queued run and published as is."""
    missing = {d.dataset_id for d in dependencies} - consumed.keys()
    if missing:
        raise ValueError(f"run request lacks updates for datasets {sorted(missing)}")
    return {
        "type": RUN_REQUESTED,
        "schema": SCHEMA_VERSION,
        "runId": str(run_id),
        "attempt": attempt,
        "requestedAt": format_timestamp(requested_at),
        "metricCode": metric_code,
        "expressionType": expression_type,
        "expressionJson": dict(expression_json),
        "inputs": [{"datasetId": d.dataset_id, "seriesCode": d.series_code} for d in dependencies],
        "catalog": {
            "datasets": {
                dataset_id: {
                    "manifestPath": u.manifest_path,
                    "projectionsPath": u.projections_path,
                    "bucket": u.bucket,
                    "updateId": str(u.update_id),
                }
                for dataset_id, u in consumed.items()
            }
        },
        "output": {"basePath": output_base_path},
    }
