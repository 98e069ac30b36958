"""PostgreSQL implementation of the run lifecycle port (queries in sql/runs.sql)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from metrics_orchestrator.application.ports.runs import (
    AttemptSummary,
    ChainHead,
    LockedRetry,
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
from metrics_orchestrator.domain.model import (
    DatasetUpdate,
    MetricRun,
    RunStatus,
    RunTrigger,
    StatusChange,
)
from metrics_orchestrator.domain.retries import EndedRun
from metrics_orchestrator.domain.status_reasons import timeout_reason
from metrics_orchestrator.infrastructure.postgres.jsonb import jsonb
from metrics_orchestrator.infrastructure.postgres.named_queries import query
from metrics_orchestrator.infrastructure.postgres.rows import Row, fetch_all, fetch_one, record

_FILE = "runs.sql"


def _run_summary(row: Row) -> RunSummary:
    """A row of the get_run / list_runs column list."""
    lineage: dict[str, Any] = row["lineage"] or {}
    run = record(
        MetricRun,
        row,
        status=RunStatus(row["status"]),
        trigger=RunTrigger(row["trigger"]),
        lineage={dataset: UUID(update) for dataset, update in lineage.items()},
    )
    return RunSummary(run=run, metric_code=row["metric_code"])


def _timed_out(row: Row) -> TimedOutRun:
    return TimedOutRun(id=row["id"], metric_id=row["metric_id"], reason=row["status_reason"])


class PostgresRunRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def lock(self, run_id: UUID) -> LockedRun | None:
        row = fetch_one(self._conn, query(_FILE, "lock_run"), {"id": run_id})
        if row is None:
            return None
        return record(LockedRun, row, status=RunStatus(row["status"]))

    def get(self, run_id: UUID) -> RunSummary | None:
        row = fetch_one(self._conn, query(_FILE, "get_run"), {"id": run_id})
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
            "retryable": completion.retryable,
            "data_time": completion.data_time,
            "now": at,
        }
        return self._change("record_completion", change, params)

    def cancel(self, run_id: UUID, change: StatusChange, *, reason: str, at: datetime) -> int:
        return self._change("cancel_run", change, {"id": run_id, "reason": reason, "now": at})

    def lock_automatic_retry(self, run_id: UUID) -> LockedRetry | None:
        row = fetch_one(
            self._conn,
            query(_FILE, "lock_automatic_retry"),
            {"id": run_id, "trigger": RunTrigger.RETRY.value},
        )
        if row is None:
            return None
        return LockedRetry(id=row["id"], status=RunStatus(row["status"]))

    def latest_attempt(self, run_id: UUID) -> ChainHead | None:
        row = fetch_one(self._conn, query(_FILE, "latest_attempt"), {"id": run_id})
        return ChainHead(id=row["id"], attempt=row["attempt"]) if row else None

    def create_manual_retry(
        self, run_id: UUID, *, new_id: UUID, request_payload: dict[str, Any] | None, at: datetime
    ) -> UUID:
        row = fetch_one(
            self._conn,
            query(_FILE, "create_manual_retry"),
            {
                "id": run_id,
                "new_id": new_id,
                "payload": _optional_jsonb(request_payload),
                "now": at,
                "status": RunStatus.QUEUED.value,
                "trigger": RunTrigger.MANUAL.value,
            },
        )
        assert row is not None, f"run {run_id} vanished while locked"
        return UUID(str(row["id"]))

    def time_out(
        self,
        change: StatusChange,
        *,
        cutoff: datetime,
        error: str,
        at: datetime,
        limit: int,
    ) -> list[TimedOutRun]:
        rows = fetch_all(
            self._conn,
            query(_FILE, "time_out_runs"),
            {
                "from": change.source.value,
                "to": change.target.value,
                "reason": timeout_reason(change.cause),
                "cutoff": cutoff,
                "now": at,
                "error": error,
                "limit": limit,
            },
        )
        return [_timed_out(r) for r in rows]

    def retry_candidates(self, statuses: Collection[RunStatus], limit: int) -> list[RetryCandidate]:
        rows = fetch_all(
            self._conn,
            query(_FILE, "retry_candidates"),
            {"statuses": sorted(s.value for s in statuses), "limit": limit},
        )
        return [
            RetryCandidate(
                id=row["id"],
                facts=EndedRun(
                    status=RunStatus(row["status"]),
                    attempt=row["attempt"],
                    ended_at=row["completed_at"],
                    max_attempts=row["max_attempts"],
                    metric_enabled=row["enabled"],
                    has_request=row["has_request"],
                    retryable=row["retryable"],
                    latest_in_chain=row["latest_in_chain"],
                ),
                request_payload=row["request_payload"],
                metric_code=row["metric_code"],
                error=row["error"],
            )
            for row in rows
        ]

    def insert_retries(self, retries: Sequence[NewRetry], *, at: datetime) -> list[ScheduledRetry]:
        rows = fetch_all(
            self._conn,
            query(_FILE, "insert_retries"),
            {
                "ids": [r.id for r in retries],
                "retry_ofs": [r.retry_of for r in retries],
                "not_befores": [r.not_before for r in retries],
                "payloads": [_optional_jsonb(r.request_payload) for r in retries],
                "status": RunStatus.QUEUED.value,
                "trigger": RunTrigger.RETRY.value,
                "now": at,
            },
        )
        return [record(ScheduledRetry, r) for r in rows]

    def mark_retries_decided(self, run_ids: Sequence[UUID], at: datetime) -> None:
        self._conn.execute(query(_FILE, "mark_retries_decided"), {"ids": list(run_ids), "now": at})

    def pending_inputs(self, run_id: UUID) -> list[PendingInput]:
        rows = fetch_all(self._conn, query(_FILE, "pending_inputs"), {"id": run_id})
        return [
            PendingInput(r["dataset_id"], record(DatasetUpdate, r) if r["id"] else None)
            for r in rows
        ]

    def lineage(self, run_id: UUID) -> list[DatasetUpdate]:
        rows = fetch_all(self._conn, query(_FILE, "lineage"), {"id": run_id})
        return [record(DatasetUpdate, r) for r in rows]

    def attempt_chain(self, run_id: UUID) -> list[AttemptSummary]:
        rows = fetch_all(self._conn, query(_FILE, "attempt_chain"), {"id": run_id})
        return [record(AttemptSummary, r, status=RunStatus(r["status"])) for r in rows]

    def list(
        self,
        *,
        statuses: Collection[RunStatus] | None,
        metric_code: str | None,
        since: datetime | None,
        until: datetime | None,
        after: RunPageKey | None,
        limit: int,
    ) -> list[RunSummary]:
        rows = fetch_all(
            self._conn,
            query(_FILE, "list_runs"),
            {
                "statuses": sorted(s.value for s in statuses) if statuses else None,
                "metric_code": metric_code,
                "since": since,
                "until": until,
                "after_created_at": after.created_at if after else None,
                "after_id": after.id if after else None,
                "limit": limit,
            },
        )
        return [_run_summary(r) for r in rows]


def _optional_jsonb(value: dict[str, Any] | None) -> Jsonb | None:
    """A payload as a JSONB parameter; None stays SQL NULL (not the JSON `null`)."""
    return None if value is None else jsonb(value)
