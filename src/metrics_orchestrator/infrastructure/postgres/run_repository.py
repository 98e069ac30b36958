"""PostgreSQL implementation of the run lifecycle port (queries in sql/runs.sql)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.runs import (
    AttemptSummary,
    LineageEntry,
    LockedRun,
    PendingInput,
    RunCompletion,
    RunPageKey,
    RunSummary,
    ScheduledRetry,
    TimedOutRun,
)
from metrics_orchestrator.domain.model import MetricRun, RunStatus, RunTrigger
from metrics_orchestrator.infrastructure.postgres.queries import query

_FILE = "runs.sql"


def _run_summary(row: tuple[Any, ...]) -> RunSummary:
    """A row of the get_run / list_runs column list."""
    lineage: dict[str, Any] = row[22] or {}
    run = MetricRun(
        id=row[0],
        metric_id=row[1],
        status=RunStatus(row[2]),
        trigger=RunTrigger(row[3]),
        attempt=row[4],
        created_at=row[5],
        retry_of=row[6],
        inputs_fingerprint=row[7],
        request_payload=row[8],
        not_before=row[9],
        progress=row[10],
        dispatch_attempts=row[11],
        status_reason=row[12],
        error=row[13],
        queued_at=row[14],
        dispatched_at=row[15],
        started_at=row[16],
        last_heartbeat_at=row[17],
        completed_at=row[18],
        version_ts=row[19],
        output_manifest=row[20],
        row_count=row[21],
        lineage={dataset: UUID(update) for dataset, update in lineage.items()},
    )
    return RunSummary(run=run, metric_code=row[23])


def _timed_out(row: tuple[Any, ...]) -> TimedOutRun:
    return TimedOutRun(id=row[0], metric_id=row[1], reason=row[2])


class PostgresRunRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def lock(self, run_id: UUID) -> LockedRun | None:
        row = self._conn.execute(query(_FILE, "lock_run"), {"id": run_id}).fetchone()
        if row is None:
            return None
        return LockedRun(id=row[0], status=RunStatus(row[1]), metric_code=row[2])

    def get(self, run_id: UUID) -> RunSummary | None:
        row = self._conn.execute(query(_FILE, "get_run"), {"id": run_id}).fetchone()
        return _run_summary(row) if row else None

    def record_start(
        self, run_id: UUID, *, status: RunStatus, started_at: datetime, at: datetime
    ) -> None:
        self._conn.execute(
            query(_FILE, "record_start"),
            {"id": run_id, "status": status.value, "started_at": started_at, "now": at},
        )

    def record_heartbeat(
        self,
        run_id: UUID,
        *,
        status: RunStatus,
        ts: datetime,
        progress: float | None,
        at: datetime,
    ) -> None:
        self._conn.execute(
            query(_FILE, "record_heartbeat"),
            {"id": run_id, "status": status.value, "ts": ts, "progress": progress, "now": at},
        )

    def record_completion(self, run_id: UUID, completion: RunCompletion, *, at: datetime) -> None:
        self._conn.execute(
            query(_FILE, "record_completion"),
            {
                "id": run_id,
                "status": completion.status.value,
                "completed_at": completion.completed_at,
                "version_ts": completion.version_ts,
                "output_manifest": completion.output_manifest,
                "row_count": completion.row_count,
                "error": completion.error,
                "status_reason": completion.status_reason,
                "now": at,
            },
        )

    def cancel(self, run_id: UUID, *, reason: str, at: datetime) -> None:
        self._conn.execute(query(_FILE, "cancel_run"), {"id": run_id, "reason": reason, "now": at})

    def create_manual_retry(
        self, run_id: UUID, *, new_id: UUID, requested_at: str, at: datetime
    ) -> UUID:
        row = self._conn.execute(
            query(_FILE, "create_manual_retry"),
            {"id": run_id, "new_id": new_id, "requested_at": requested_at, "now": at},
        ).fetchone()
        assert row is not None, f"run {run_id} vanished while locked"
        return UUID(str(row[0]))

    def time_out_unstarted(
        self, *, cutoff: datetime, at: datetime, error: str, limit: int
    ) -> list[TimedOutRun]:
        return self._time_out("time_out_unstarted", cutoff, at, error, limit)

    def time_out_silent(
        self, *, cutoff: datetime, at: datetime, error: str, limit: int
    ) -> list[TimedOutRun]:
        return self._time_out("time_out_silent", cutoff, at, error, limit)

    def _time_out(
        self, name: str, cutoff: datetime, at: datetime, error: str, limit: int
    ) -> list[TimedOutRun]:
        rows = self._conn.execute(
            query(_FILE, name), {"cutoff": cutoff, "now": at, "error": error, "limit": limit}
        ).fetchall()
        return [_timed_out(r) for r in rows]

    def schedule_retries(
        self,
        *,
        at: datetime,
        requested_at: str,
        base_delay: timedelta,
        max_doublings: int,
        ended_since: datetime,
        limit: int,
    ) -> list[ScheduledRetry]:
        rows = self._conn.execute(
            query(_FILE, "schedule_retries"),
            {
                "now": at,
                "requested_at": requested_at,
                "base_delay": base_delay,
                "max_doublings": max_doublings,
                "ended_since": ended_since,
                "limit": limit,
            },
        ).fetchall()
        return [
            ScheduledRetry(id=r[0], retry_of=r[1], metric_id=r[2], attempt=r[3], not_before=r[4])
            for r in rows
        ]

    def notify_queued(self) -> None:
        self._conn.execute(query(_FILE, "notify_runs_queued"))

    def pending_inputs(self, run_id: UUID) -> list[PendingInput]:
        rows = self._conn.execute(query(_FILE, "pending_inputs"), {"id": run_id}).fetchall()
        return [
            PendingInput(
                dataset_id=r[0], update_id=r[1], received_at=r[2], version_manifest_path=r[3]
            )
            for r in rows
        ]

    def lineage(self, run_id: UUID) -> list[LineageEntry]:
        rows = self._conn.execute(query(_FILE, "lineage"), {"id": run_id}).fetchall()
        return [
            LineageEntry(
                dataset_id=r[0],
                update_id=r[1],
                event_key=r[2],
                bucket=r[3],
                version_manifest_path=r[4],
                projections_path=r[5],
                occurred_at=r[6],
                received_at=r[7],
                effective_at=r[8],
            )
            for r in rows
        ]

    def attempt_chain(self, run_id: UUID) -> list[AttemptSummary]:
        rows = self._conn.execute(query(_FILE, "attempt_chain"), {"id": run_id}).fetchall()
        return [
            AttemptSummary(
                id=r[0],
                attempt=r[1],
                trigger=r[2],
                status=RunStatus(r[3]),
                retry_of=r[4],
                created_at=r[5],
                completed_at=r[6],
            )
            for r in rows
        ]

    def list(
        self,
        *,
        status: RunStatus | None,
        metric_code: str | None,
        since: datetime | None,
        after: RunPageKey | None,
        limit: int,
    ) -> list[RunSummary]:
        rows = self._conn.execute(
            query(_FILE, "list_runs"),
            {
                "status": status.value if status else None,
                "metric_code": metric_code,
                "since": since,
                "after_created_at": after.created_at if after else None,
                "after_id": after.id if after else None,
                "limit": limit,
            },
        ).fetchall()
        return [_run_summary(r) for r in rows]
