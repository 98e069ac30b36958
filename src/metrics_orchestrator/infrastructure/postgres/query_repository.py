"""Read-only queries of the API and the metrics endpoint (application/queries.py)."""

from __future__ import annotations

from datetime import datetime

from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.ports.queries import HourlyRunCount, RunGauges, RunWaits
from metrics_orchestrator.domain.model import DatasetUpdate, RunStatus
from metrics_orchestrator.infrastructure.postgres.queries import query

_SQL = "queries.sql"


class PostgresQueryRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def recent_dataset_updates(self, dataset_id: str, limit: int) -> list[DatasetUpdate]:
        rows = self._conn.execute(
            query(_SQL, "recent_dataset_updates"), {"dataset_id": dataset_id, "limit": limit}
        ).fetchall()
        return [
            DatasetUpdate(
                id=row[0],
                event_key=row[1],
                dataset_id=row[2],
                bucket=row[3],
                version_manifest_path=row[4],
                projections_path=row[5],
                occurred_at=row[6],
                received_at=row[7],
                seq=row[8],
            )
            for row in rows
        ]

    def run_gauges(self, now: datetime) -> RunGauges:
        row = self._conn.execute(query(_SQL, "run_gauges"), {"now": now}).fetchone()
        assert row is not None
        return RunGauges(pending_runs=int(row[0]), dispatcher_backlog=int(row[1]))

    def runs_by_status(self) -> dict[RunStatus, int]:
        rows = self._conn.execute(query(_SQL, "runs_by_status")).fetchall()
        return {RunStatus(row[0]): int(row[1]) for row in rows}

    def runs_by_hour_and_status(self, since: datetime) -> list[HourlyRunCount]:
        rows = self._conn.execute(
            query(_SQL, "runs_by_hour_and_status"), {"since": since}
        ).fetchall()
        return [HourlyRunCount(row[0], RunStatus(row[1]), int(row[2])) for row in rows]

    def run_waits(self, now: datetime) -> RunWaits:
        row = self._conn.execute(query(_SQL, "run_waits"), {"now": now}).fetchone()
        assert row is not None
        return RunWaits(
            oldest_pending_since=row[0], dispatcher_backlog=int(row[1]), rejected_events=int(row[2])
        )

    def latest_run_status_by_metric(self) -> dict[str, RunStatus | None]:
        rows = self._conn.execute(query(_SQL, "latest_run_status_by_metric")).fetchall()
        return {row[0]: RunStatus(row[1]) if row[1] is not None else None for row in rows}
