"""Read-only queries of the API and the metrics endpoint (application/queries.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.ports.queries import (
    HourlyRunCount,
    RunGauges,
    RunMatch,
    RunWaits,
)
from metrics_orchestrator.domain.model import DatasetUpdate, RunStatus
from metrics_orchestrator.infrastructure.postgres.queries import query
from metrics_orchestrator.infrastructure.postgres.rows import Row, fetch_all, fetch_one

_SQL = "queries.sql"


class PostgresQueryRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def _rows(self, name: str, params: Mapping[str, object] | None = None) -> list[Row]:
        return fetch_all(self._conn, query(_SQL, name), params or {})

    def _row(self, name: str, params: Mapping[str, object]) -> Row:
        row = fetch_one(self._conn, query(_SQL, name), params)
        assert row is not None  # an aggregate always returns its one row
        return row

    def recent_dataset_updates(self, dataset_id: str, limit: int) -> list[DatasetUpdate]:
        rows = self._rows("recent_dataset_updates", {"dataset_id": dataset_id, "limit": limit})
        return [
            DatasetUpdate(
                id=row["id"],
                event_key=row["event_key"],
                dataset_id=row["dataset_id"],
                bucket=row["bucket"],
                version_manifest_path=row["version_manifest_path"],
                projections_path=row["projections_path"],
                occurred_at=row["occurred_at"],
                received_at=row["received_at"],
                seq=row["seq"],
            )
            for row in rows
        ]

    def run_gauges(self, now: datetime) -> RunGauges:
        row = self._row("run_gauges", {"now": now})
        return RunGauges(
            pending_runs=int(row["pending_runs"]),
            dispatcher_backlog=int(row["dispatcher_backlog"]),
        )

    def runs_by_status(self) -> dict[RunStatus, int]:
        return {RunStatus(row["status"]): int(row["count"]) for row in self._rows("runs_by_status")}

    def runs_by_hour_and_status(self, since: datetime) -> list[HourlyRunCount]:
        rows = self._rows("runs_by_hour_and_status", {"since": since})
        return [
            HourlyRunCount(row["hour"], RunStatus(row["status"]), int(row["count"])) for row in rows
        ]

    def run_waits(self, now: datetime) -> RunWaits:
        row = self._row("run_waits", {"now": now})
        return RunWaits(
            oldest_pending_since=row["oldest_pending"],
            dispatcher_backlog=int(row["dispatcher_backlog"]),
            rejected_events=int(row["rejected_events"]),
        )

    def latest_run_status_by_metric(self) -> dict[str, RunStatus | None]:
        return {
            row["code"]: RunStatus(row["status"]) if row["status"] is not None else None
            for row in self._rows("latest_run_status_by_metric")
        }

    def runs_in_id_range(self, lowest: UUID, highest: UUID, limit: int) -> list[RunMatch]:
        rows = self._rows(
            "runs_in_id_range", {"lowest": lowest, "highest": highest, "limit": limit}
        )
        return [
            RunMatch(
                id=row["id"],
                metric_code=row["metric_code"],
                status=RunStatus(row["status"]),
                attempt=row["attempt"],
                created_at=row["created_at"],
            )
            for row in rows
        ]
