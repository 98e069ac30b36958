"""PostgreSQL side of the dispatcher: claiming queued runs, recording outcomes, LISTEN."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg import Connection, sql
from psycopg.rows import TupleRow

from metrics_orchestrator.application.dispatch import (
    ClaimedRun,
    DispatchGiveUp,
    DispatchRetry,
)
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.infrastructure.postgres.queries import query

_FILE = "dispatch.sql"


class PostgresDispatchRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def claim_dispatchable(self, now: datetime, limit: int) -> list[ClaimedRun]:
        rows = self._conn.execute(
            query(_FILE, "claim_dispatchable"), {"now": now, "limit": limit}
        ).fetchall()
        return [_claimed_run(row) for row in rows]

    def mark_dispatched(self, run_ids: Sequence[UUID], now: datetime) -> int:
        cursor = self._conn.execute(
            query(_FILE, "mark_dispatched"), {"ids": list(run_ids), "now": now}
        )
        return cursor.rowcount

    def schedule_dispatch_retries(self, retries: Sequence[DispatchRetry], now: datetime) -> int:
        cursor = self._conn.execute(
            query(_FILE, "schedule_dispatch_retries"),
            {
                "ids": [r.run_id for r in retries],
                "errors": [r.error for r in retries],
                "not_befores": [r.not_before for r in retries],
                "now": now,
            },
        )
        return cursor.rowcount

    def give_up_dispatch(self, give_ups: Sequence[DispatchGiveUp], now: datetime) -> int:
        cursor = self._conn.execute(
            query(_FILE, "give_up_dispatch"),
            {
                "ids": [g.run_id for g in give_ups],
                "errors": [g.error for g in give_ups],
                "now": now,
            },
        )
        return cursor.rowcount

    def notify_runs_queued(self) -> None:
        self._conn.execute(query(_FILE, "notify_runs_queued"))


def _claimed_run(row: TupleRow) -> ClaimedRun:
    run_id, attempt, status, metric_code, payload, dispatch_attempts = row
    return ClaimedRun(
        run_id=run_id,
        attempt=attempt,
        status=RunStatus(status),
        metric_code=metric_code,
        payload=payload if isinstance(payload, dict) else None,
        dispatch_attempts=dispatch_attempts,
    )


class PostgresRunQueuedListener:
    """A dedicated autocommit connection LISTENing on the run-queued channel."""

    def __init__(self, dsn: str, channel: str) -> None:
        self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        try:
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except BaseException:
            self._conn.close()
            raise

    def wait(self, timeout: float) -> bool:
        received = False
        for _ in self._conn.notifies(timeout=timeout, stop_after=1):
            received = True
        if received:
            # Coalesce a burst of notifications into one wake-up.
            for _ in self._conn.notifies(timeout=0):
                pass
        return received

    def close(self) -> None:
        self._conn.close()
