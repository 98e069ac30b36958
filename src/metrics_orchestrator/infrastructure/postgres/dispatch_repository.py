"""PostgreSQL side of the dispatcher: claiming queued runs, recording outcomes, LISTEN."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg import Connection, sql
from psycopg.rows import TupleRow

from metrics_orchestrator.application.ports.dispatch import (
    ClaimedRun,
    DispatchGiveUp,
    DispatchRetry,
)
from metrics_orchestrator.domain.model import RunStatus, StatusChange
from metrics_orchestrator.domain.status_reasons import DISPATCH_FAILED
from metrics_orchestrator.infrastructure.postgres.named_queries import query
from metrics_orchestrator.infrastructure.postgres.params import columns
from metrics_orchestrator.infrastructure.postgres.rows import Row, fetch_all

_FILE = "dispatch.sql"


class PostgresDispatchRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def claim_dispatchable(self, status: RunStatus, now: datetime, limit: int) -> list[ClaimedRun]:
        rows = fetch_all(
            self._conn,
            query(_FILE, "claim_dispatchable"),
            {"from": status.value, "now": now, "limit": limit},
        )
        return [_claimed_run(row) for row in rows]

    def mark_dispatched(self, run_ids: Sequence[UUID], change: StatusChange, now: datetime) -> int:
        params = {"ids": list(run_ids), "now": now} | _statuses(change)
        return self._conn.execute(query(_FILE, "mark_dispatched"), params).rowcount

    def schedule_dispatch_retries(
        self, retries: Sequence[DispatchRetry], status: RunStatus, now: datetime
    ) -> int:
        arrays = columns(retries, ids="run_id", errors="error", not_befores="not_before")
        params = arrays | {"from": status.value, "now": now}
        return self._conn.execute(query(_FILE, "schedule_dispatch_retries"), params).rowcount

    def give_up_dispatch(
        self, give_ups: Sequence[DispatchGiveUp], change: StatusChange, now: datetime
    ) -> int:
        arrays = columns(give_ups, ids="run_id", errors="error")
        params = arrays | {"reason": DISPATCH_FAILED, "now": now} | _statuses(change)
        return self._conn.execute(query(_FILE, "give_up_dispatch"), params).rowcount


def _statuses(change: StatusChange) -> dict[str, str]:
    return {"from": change.source.value, "to": change.target.value}


def _claimed_run(row: Row) -> ClaimedRun:
    payload = row["request_payload"]
    return ClaimedRun(
        run_id=row["id"],
        attempt=row["attempt"],
        status=RunStatus(row["status"]),
        payload=payload if isinstance(payload, dict) else None,
        dispatch_attempts=row["dispatch_attempts"],
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
