"""Helpers for intake tests: load fixture catalogs, send updates, read back runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import yaml

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.intake import IntakeResult, IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.domain.events import decode_event
from tests.support import MutableClock


def load_catalog_file(uow_factory: UnitOfWorkFactory, clock: MutableClock, path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    CatalogService(uow_factory, clock, default_required_days=7).load_catalog(document)


def update_body(
    dataset_id: str, version: str, *, occurred_at: datetime | None = None, **extra: Any
) -> str:
    event: dict[str, Any] = {
        "event": "projection_update",
        "dataset_id": dataset_id,
        "bucket": "ingestor-datasets",
        "version_manifest_path": f"datasets/{dataset_id}/versions/{version}/manifest.json",
        "projections_path": f"datasets/{dataset_id}/projections",
        **extra,
    }
    if occurred_at is not None:
        event["occurred_at"] = occurred_at.isoformat()
    return json.dumps(event)


@dataclass
class Harness:
    """Drives the intake the way a consumer does, on a controllable clock."""

    intake: IntakeService
    clock: MutableClock
    database_url: str

    def send(
        self, dataset_id: str, version: str, *, occurred_at: datetime | None = None
    ) -> IntakeResult:
        body = update_body(dataset_id, version, occurred_at=occurred_at)
        return self.intake.ingest(decode_event(body), source="test", received_at=self.clock.now())

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def runs(self, metric_code: str) -> list[tuple[Any, ...]]:
        """(id, status, trigger, {dataset: version manifest}) of a metric's runs, oldest first."""
        found = self.rows(
            "SELECT r.id, r.status, r.trigger FROM metric_runs r"
            " JOIN metrics m ON m.id = r.metric_id"
            " WHERE m.code = %s ORDER BY r.created_at, r.id",
            metric_code,
        )
        return [
            (run_id, status, trigger, self.lineage(run_id)) for run_id, status, trigger in found
        ]

    def lineage(self, run_id: UUID) -> dict[str, str]:
        return {
            ds: _version(path)
            for ds, path in self.rows(
                "SELECT l.dataset_id, u.version_manifest_path FROM run_dataset_updates l"
                " JOIN dataset_updates u ON u.id = l.update_id WHERE l.run_id = %s",
                run_id,
            )
        }

    def pending_rows(self, run_id: UUID) -> dict[str, str | None]:
        return {
            ds: _version(path) if path else None
            for ds, path in self.rows(
                "SELECT p.dataset_id, u.version_manifest_path FROM metric_run_pending_datasets p"
                " LEFT JOIN dataset_updates u ON u.id = p.update_id WHERE p.run_id = %s",
                run_id,
            )
        }

    def statuses(self, metric_code: str) -> list[str]:
        return [status for _, status, _, _ in self.runs(metric_code)]


def _version(manifest_path: str) -> str:
    # datasets/<id>/versions/<version>/manifest.json
    return manifest_path.split("/")[-2]
