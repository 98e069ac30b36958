"""Dataset updates as the rules order them, for tests of the rules."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from metrics_orchestrator.domain.model import DatasetUpdate


def update_version(
    id: UUID, dataset_id: str, effective_at: datetime, received_at: datetime, seq: int
) -> DatasetUpdate:
    """A recorded update with this ordering (SPEC §5.2): its effective time is its occurred_at."""
    manifest = f"datasets/{dataset_id}/versions/{id}/manifest.json"
    return DatasetUpdate(
        id=id,
        event_key=f"{dataset_id}:{manifest}",
        dataset_id=dataset_id,
        bucket="ingestor-datasets",
        version_manifest_path=manifest,
        projections_path=f"datasets/{dataset_id}/projections",
        occurred_at=effective_at,
        received_at=received_at,
        seq=seq,
    )
