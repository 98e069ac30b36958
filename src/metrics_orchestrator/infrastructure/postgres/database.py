"""Connection pool creation and small helpers around psycopg."""

from __future__ import annotations

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool


def create_pool(url: str, *, max_size: int = 10, min_size: int = 1) -> ConnectionPool:
    pool: ConnectionPool[Connection[TupleRow]] = ConnectionPool(
        url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        open=False,
        kwargs={"autocommit": False},
        name="metrics-orchestrator",
    )
    pool.open(wait=True, timeout=30)
    return pool
