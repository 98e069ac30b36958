"""PostgreSQL implementation of the run lifecycle port (queries in sql/runs.sql)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.ports.runs import (
    AttemptSummary,
    LineageEntry,
    LockedRun,
    NewRetry,
    PendingInput,
    RetryCandidate,
    RunCompletion,
    RunPageKey,
    RunSummary,
    ScheduledRetry,
    TimedOutRun,
)
from metrics_orchestrator.domain.model import MetricRun, RunStatus, RunTrigger, StatusChange
from metrics_orchestrator.domain.retries import EndedRun
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
        run_id, status, attempt, has_request, metric_code, metric_enabled = row
        return LockedRun(
            id=run_id,
            status=RunStatus(status),
            attempt=attempt,
            metric_code=metric_code,
            metric_enabled=metric_enabled,
            has_request=has_request,
        )

    def get(self, run_id: UUID) -> RunSummary | None:
        row = self._conn.execute(query(_FILE, "get_run"), {"id": run_id}).fetchone()
        return _run_summary(row) if row else None

    def _change(self, name: str, change: StatusChange, params: dict[str, Any]) -> int:
        params |= {"from": change.source.value, "to": change.target.value}
        return self._conn.execute(query(_FILE, name), params).rowcount

    def record_start(
        self,
        run_id: UUID,
        change: StatusChange,
        *,
        started_at: datetime,
        seen_at: datetime,
        at: datetime,
    ) -> int:
        params = {"id": run_id, "started_at": started_at, "seen_at": seen_at, "now": at}
        return self._change("record_start", change, params)

    def record_heartbeat(
        self,
        run_id: UUID,
        change: StatusChange,
        *,
        ts: datetime,
        progress: float | None,
        seen_at: datetime,
        at: datetime,
    ) -> int:
        params = {"id": run_id, "ts": ts, "progress": progress, "seen_at": seen_at, "now": at}
        return self._change("record_heartbeat", change, params)

    def record_completion(
        self, run_id: UUID, change: StatusChange, completion: RunCompletion, *, at: datetime
    ) -> int:
        params = {
            "id": run_id,
            "progress": completion.progress,
            "completed_at": completion.completed_at,
            "version_ts": completion.version_ts,
            "output_manifest": completion.output_manifest,
            "row_count": completion.row_count,
            "error": completion.error,
            "status_reason": completion.status_reason,
            "now": at,
        }
        return self._change("record_completion", change, params)

    def cancel(self, run_id: UUID, change: StatusChange, *, reason: str, at: datetime) -> int:
        return self._change("cancel_run", change, {"id": run_id, "reason": reason, "now": at})

    def lock_automatic_retry(self, run_id: UUID) -> LockedRun | None:
        row = self._conn.execute(
            query(_FILE, "lock_automatic_retry"),
            {"id": run_id, "trigger": RunTrigger.RETRY.value},
        ).fetchone()
        if row is None:
            return None
        retry_id, status, attempt = row
        # only id, status and attempt are read; the rest is not needed to supersede it
        return LockedRun(retry_id, RunStatus(status), attempt, "", True, True)

    def create_manual_retry(
        self, run_id: UUID, *, new_id: UUID, requested_at: str, at: datetime
    ) -> UUID:
        row = self._conn.execute(
            query(_FILE, "create_manual_retry"),
            {
                "id": run_id,
                "new_id": new_id,
                "requested_at": requested_at,
                "now": at,
                "status": RunStatus.QUEUED.value,
                "trigger": RunTrigger.MANUAL.value,
            },
        ).fetchone()
        assert row is not None, f"run {run_id} vanished while locked"
        return UUID(str(row[0]))

    def time_out(
        self,
        change: StatusChange,
        *,
        cutoff: datetime,
        error: str,
        at: datetime,
        limit: int,
    ) -> list[TimedOutRun]:
        rows = self._conn.execute(
            query(_FILE, "time_out_runs"),
            {
                "from": change.source.value,
                "to": change.target.value,
                "reason": change.cause.value,
                "cutoff": cutoff,
                "now": at,
                "error": error,
                "limit": limit,
            },
        ).fetchall()
        return [_timed_out(r) for r in rows]

    def retry_candidates(self, statuses: Collection[RunStatus], limit: int) -> list[RetryCandidate]:
        rows = self._conn.execute(
            query(_FILE, "retry_candidates"),
            {"statuses": sorted(s.value for s in statuses), "limit": limit},
        ).fetchall()
        return [
            RetryCandidate(
                id=run_id,
                facts=EndedRun(
                    status=RunStatus(status),
                    attempt=attempt,
                    ended_at=ended_at,
                    max_attempts=max_attempts,
                    metric_enabled=enabled,
                    has_request=has_request,
                ),
            )
            for run_id, status, attempt, ended_at, max_attempts, enabled, has_request in rows
        ]

    def insert_retries(
        self, retries: Sequence[NewRetry], *, requested_at: str, at: datetime
    ) -> list[ScheduledRetry]:
        rows = self._conn.execute(
            query(_FILE, "insert_retries"),
            {
                "ids": [r.id for r in retries],
                "retry_ofs": [r.retry_of for r in retries],
                "not_befores": [r.not_before for r in retries],
                "status": RunStatus.QUEUED.value,
                "trigger": RunTrigger.RETRY.value,
                "requested_at": requested_at,
                "now": at,
            },
        ).fetchall()
        return [
            ScheduledRetry(id=r[0], retry_of=r[1], metric_id=r[2], attempt=r[3], not_before=r[4])
            for r in rows
        ]

    def mark_retries_decided(self, run_ids: Sequence[UUID], at: datetime) -> None:
        self._conn.execute(query(_FILE, "mark_retries_decided"), {"ids": list(run_ids), "now": at})

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
