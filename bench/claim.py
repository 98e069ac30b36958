"""One dispatcher claim as the backlog grows (issue 14: it must not depend on the backlog).

A database with the fan-out-10 catalog gets `backlog` queued, due runs (synthetic, with
~1 KB payloads), analysed. Then the production claim (`PostgresDispatchRepository.
claim_dispatchable`, ten runs, as the dispatcher asks) runs in a transaction that is rolled
back, so every repetition sees the same backlog; the figure is the median wall time of one
claim, on one long-lived connection (the statement prepared, as in `serve`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from bench.catalog import CatalogShape
from bench.environment import BenchDatabases, connection, median
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.infrastructure.postgres.dispatch_repository import (
    PostgresDispatchRepository,
)

CLAIM_LIMIT = 10

_BACKLOG_SQL = """
WITH ms AS (SELECT array_agg(id ORDER BY id) AS ids FROM metrics)
INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, inputs_fingerprint,
                         request_payload, not_before, created_at, queued_at, updated_at)
SELECT gen_random_uuid(), ms.ids[1 + g %% cardinality(ms.ids)], 'queued', 'manual', 1,
       'backlog-' || g, jsonb_build_object('metricCode', 'bench.backlog', 'pad', repeat('x', 900)),
       t, t, t, t
FROM ms, generate_series(1, %(runs)s) AS g,
     LATERAL (SELECT now() - interval '1 day' + g * interval '1 millisecond') AS at(t)
"""


@dataclass(frozen=True)
class ClaimPoint:
    backlog: int
    claim_ms: float


def run_claim_cost(
    databases: BenchDatabases, backlogs: tuple[int, ...], repeats: int
) -> list[ClaimPoint]:
    url = databases.with_catalog(CatalogShape(datasets=16, fan_out=10))
    points: list[ClaimPoint] = []
    try:
        queued = 0
        for backlog in sorted(backlogs):
            with connection(url) as conn:
                conn.execute(_BACKLOG_SQL, {"runs": backlog - queued})
                conn.commit()
                conn.execute("ANALYZE metric_runs")
                conn.commit()
            queued = backlog
            points.append(ClaimPoint(backlog, _claim_ms(url, repeats)))
    finally:
        databases.drop(url)
    return points


def _claim_ms(url: str, repeats: int) -> float:
    with psycopg.connect(url) as conn:
        dispatch = PostgresDispatchRepository(conn)
        times = []
        for n in range(repeats + 10):
            started = time.perf_counter()
            claimed = dispatch.claim_dispatchable(RunStatus.QUEUED, datetime.now(UTC), CLAIM_LIMIT)
            elapsed = time.perf_counter() - started
            conn.rollback()
            if len(claimed) != CLAIM_LIMIT:
                raise AssertionError(f"claimed {len(claimed)} of a backlog, expected {CLAIM_LIMIT}")
            if n >= 10:  # the first ones prepare the statement
                times.append(elapsed * 1000)
        return median(times)
