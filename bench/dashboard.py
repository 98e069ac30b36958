"""Figure 7: the dashboard at 500 metrics and 10k runs, page by page, against the database's
own time for the same statements (docs/ui.md: a page's server time stays under 300 ms).

A clone of the 500-metric synthetic catalog (100 datasets, fan-out 9) gets 10,000 runs (an
hour apart per metric, of every status: running, failed, timed out, succeeded), an objective on
every metric and dataset, and 300 rejected events; the sweeper then opens the incidents (as
tests/integration/test_web_incidents.py sets it up). One version of the first dataset is in
every run's lineage, so its page lists the newest 100 of 10k consuming runs.

Each page is requested in-process through the ASGI app (Starlette's TestClient: no socket, no
network), once to warm up and then `repeats` times; its median is the page's server time. The
ceiling is what PostgreSQL itself needs for that page: the statements the page ran (recorded
on its warm-up request) replayed back to back from Python on one connection, in one
transaction, the same number of times. The share is ceiling / page: how much of a page's time
is the database's own work; the rest is Python (rows into objects, the template).

Pages that read S3 (a run's output chart and log) are left out: their time is S3's.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog
from starlette.testclient import TestClient

from bench.catalog import CatalogShape, dataset_id
from bench.environment import BenchDatabases, connection, median
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.bootstrap import bootstrap
from metrics_orchestrator.infrastructure.settings import load_settings
from metrics_orchestrator.interfaces.web.app import create_app_with_dashboard

SHAPE = CatalogShape(datasets=100, fan_out=9)  # 500 metrics
BUDGET_MS = 300.0
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VERSION_DATASET = dataset_id(0)
PAGES = (
    "/",
    "/ui/runs",
    "/ui/runs?status=failed&status=timed_out",
    "/ui/runs/rows",
    "/ui/history",
    "/ui/history?runs=50",
    "/ui/metrics",
    "/ui/datasets",
    "/ui/incidents",
    "/ui/graph",
    f"/ui/search?q={dataset_id(1)}",
)
# Runs of every status, an hour apart per metric (as tests/integration/test_web_history.py);
# a success's data time is its creation time.
RUNS_SQL = """
WITH ms AS (SELECT array_agg(id ORDER BY id) AS ids FROM metrics)
INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, inputs_fingerprint,
                         request_payload, created_at, queued_at, dispatched_at, started_at,
                         completed_at, updated_at, data_time)
SELECT gen_random_uuid(), ms.ids[1 + g %% cardinality(ms.ids)], s.status, 'automatic', 1,
       'bench-' || g, '{}'::jsonb, t, t, t, t,
       CASE WHEN s.status = 'running' THEN NULL ELSE t + interval '40 seconds' END, t,
       CASE WHEN s.status = 'succeeded' THEN t END
FROM ms, generate_series(0, %(runs)s - 1) AS g,
     LATERAL (SELECT %(now)s::timestamptz
                     - (g / cardinality(ms.ids)) * interval '1 hour') AS at(t),
     LATERAL (SELECT CASE
         WHEN g < cardinality(ms.ids) AND g %% 50 = 0 THEN 'running'
         WHEN g %% 11 = 0 THEN 'timed_out'
         WHEN g %% 7 = 0 THEN 'failed'
         ELSE 'succeeded' END) AS s(status)
"""


@dataclass(frozen=True)
class DashboardConfig:
    repeats: int = 5
    runs: int = 10_000
    rejected_events: int = 300


@dataclass(frozen=True)
class PageTiming:
    path: str  # as shown: an update id is written {update_id}
    page_ms: float
    ceiling_ms: float
    statements: int

    @property
    def share(self) -> float:
        """The database's own share of the page's time."""
        return self.ceiling_ms / self.page_ms if self.page_ms else float("nan")

    @property
    def within_budget(self) -> bool:
        return self.page_ms < BUDGET_MS


@dataclass
class DashboardResult:
    config: DashboardConfig
    metrics: int = 0
    pages: list[PageTiming] = field(default_factory=list)


Statement = tuple[Any, Any]


@contextmanager
def recorded_statements() -> Iterator[list[Statement]]:
    """Every statement a psycopg cursor executes meanwhile, in order (query, params): the
    benchmark's own wrapper around `Cursor.execute`, removed on exit."""
    seen: list[Statement] = []
    original = psycopg.Cursor.execute

    def execute(self: psycopg.Cursor[Any], query: Any, params: Any = None, **kw: Any) -> Any:
        seen.append((query, params))
        return original(self, query, params, **kw)

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]


def run_dashboard(
    databases: BenchDatabases, config: DashboardConfig, progress: Callable[[str], None]
) -> DashboardResult:
    url = databases.with_catalog(SHAPE)
    result = DashboardResult(config)
    try:
        result.metrics = _seed(url, config)
        # S3 is never asked (no page below reads it); a refused port keeps it that way
        settings = load_settings(
            env={"PUBLIC_URL": "http://testserver", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
        )
        with (
            bootstrap(settings, database_url=url) as container,
            TestClient(create_app_with_dashboard(container)) as client,
            psycopg.connect(url) as replay,
        ):
            with structlog.testing.capture_logs():  # 300 rejections, each a WARNING line
                for n in range(config.rejected_events):
                    container.router.handle(f"{{broken {n}", source="bench")
                container.sweeper.sweep_once()  # late datasets, overdue metrics: incidents
            for path in (*PAGES, _version_read_by_every_run(container.router, url)):
                timing = _time_page(client, replay, path, config.repeats)
                result.pages.append(timing)
                progress(
                    f"  {path}: {timing.page_ms:.1f} ms, database {timing.ceiling_ms:.1f} ms "
                    f"({timing.share:.0%}, {timing.statements} statements)"
                )
    finally:
        databases.drop(url)
    return result


def _version_read_by_every_run(router: EventRouter, url: str) -> str:
    """A version of the first dataset, in every seeded run's lineage: the version's page then
    lists the newest 100 of 10k consuming runs. Returns the page's path."""
    event = {
        "event": "projection_update",
        "dataset_id": VERSION_DATASET,
        "bucket": SHAPE.bucket,
        "version_manifest_path": f"datasets/{VERSION_DATASET}/versions/v1/manifest.json",
        "projections_path": f"datasets/{VERSION_DATASET}/projections",
    }
    router.handle(json.dumps(event), source="bench")
    with connection(url) as conn:
        row = conn.execute(
            "SELECT id FROM dataset_updates WHERE dataset_id = %s", (VERSION_DATASET,)
        ).fetchone()
        assert row is not None, "the version was not recorded"
        conn.execute(
            "INSERT INTO run_dataset_updates (run_id, dataset_id, update_id)"
            " SELECT id, %s, %s FROM metric_runs ON CONFLICT DO NOTHING",
            (VERSION_DATASET, row[0]),
        )
        conn.execute("ANALYZE run_dataset_updates")
    return f"/ui/datasets/{VERSION_DATASET}/versions/{row[0]}"


def _seed(url: str, config: DashboardConfig) -> int:
    now = datetime.now(UTC)
    with connection(url) as conn:
        conn.execute(RUNS_SQL, {"runs": config.runs, "now": now})
        # overdue: the metrics whose newest run failed (their data is an hour older); every
        # dataset late (registered two days ago, never updated, expected daily)
        conn.execute("UPDATE metrics SET max_data_age = interval '24 hours 30 minutes'")
        conn.execute("UPDATE datasets SET expected_every = interval '1 day'")
        conn.execute("UPDATE datasets SET created_at = %s", (now - timedelta(days=2),))
        conn.execute("ANALYZE")
        row = conn.execute("SELECT count(*) FROM metrics").fetchone()
    return int(row[0]) if row else 0


def _time_page(
    client: TestClient, replay: psycopg.Connection[Any], path: str, repeats: int
) -> PageTiming:
    with recorded_statements() as statements:
        _get(client, path)  # warm: statements prepared, pages cached
    page_times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _get(client, path)
        page_times.append(time.perf_counter() - started)
    _replay(replay, statements)  # warm
    ceiling_times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _replay(replay, statements)
        ceiling_times.append(time.perf_counter() - started)
    shown = _UUID.sub("{update_id}", path)
    return PageTiming(
        shown, median(page_times) * 1000, median(ceiling_times) * 1000, len(statements)
    )


def _get(client: TestClient, path: str) -> None:
    # the search answers 303 to the one match it found: its own work, not the page it names
    response = client.get(path, follow_redirects=False)
    if response.status_code not in (200, 303):
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")


def _replay(conn: psycopg.Connection[Any], statements: list[Statement]) -> None:
    with conn.transaction():
        for query, params in statements:
            cursor = conn.execute(query, params)
            if cursor.description is not None:
                cursor.fetchall()
