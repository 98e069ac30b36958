"""Figure 4: per-update cost as run history grows and as fan-out grows.

History: one database with the fan-out-10 catalog is filled, level by level, with synthetic
history — finished automatic runs with their payloads and lineage, old dataset updates and
event-log rows — up to 10k, 100k and 1M rows in `metric_runs`. After each level the tables
are vacuumed and analysed (as autovacuum would) and a checkpoint is taken, then one worker
ingests live updates for a fixed time (after one discarded run that warms the caches the bulk
load left cold). The worker keeps ONE object graph, and so one database connection, from the
first level to the last, as a long-running `serve` does: the statements it prepared at 10k
runs, and their cached plans, are the ones measured at 1M. SPEC §7 promises the cost does not
grow with history.

Fan-out: fresh databases whose catalogs give every dataset 1 … 100 dependent metrics; the
same single-worker measurement. SPEC §7 promises work proportional to the dependent metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.catalog import CatalogShape
from bench.claim import CLAIM_LIMIT, ClaimPoint, run_claim_cost
from bench.environment import BenchDatabases, connection, median
from bench.stream import StreamShape
from bench.throughput import ShareReport, close_kept, ingest_share
from bench.workers import Task, WorkerPool

DATASETS = 16
HISTORY_FAN_OUT = 10

# Old, stale history: older than any live update, so it never wins "freshest" — as in a
# long-running deployment, where it is only ballast in the tables and their indexes.
_HISTORY_SQL = (
    """
    WITH ms AS (SELECT array_agg(id ORDER BY id) AS ids FROM metrics)
    INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, inputs_fingerprint,
                             request_payload, created_at, queued_at, dispatched_at, started_at,
                             completed_at, retry_decided_at, updated_at, row_count)
    SELECT gen_random_uuid(), ms.ids[1 + g %% cardinality(ms.ids)], 'succeeded', 'automatic', 1,
           'history-' || %(level)s || '-' || g, %(payload)s::jsonb, t, t, t, t, t, t, t, 1
    FROM ms, generate_series(1, %(runs)s) AS g,
         LATERAL (SELECT now() - interval '400 days' + g * interval '1 second') AS at(t)
    """,
    """
    WITH ds AS (SELECT array_agg(id ORDER BY id) AS ids FROM datasets)
    INSERT INTO dataset_updates (id, event_key, dataset_id, bucket, version_manifest_path,
                                 projections_path, occurred_at, received_at, effective_at,
                                 payload)
    SELECT gen_random_uuid(), d || ':history/' || %(level)s || '/' || g, d, 'bench-datasets',
           'history/' || %(level)s || '/' || g || '/manifest.json', 'history/projections',
           t, t, t, '{}'::jsonb
    FROM ds, generate_series(1, %(updates)s) AS g,
         LATERAL (SELECT ds.ids[1 + g %% cardinality(ds.ids)]) AS pick(d),
         LATERAL (SELECT now() - interval '400 days' + g * interval '1 second') AS at(t)
    """,
    """
    WITH used AS (
        SELECT DISTINCT ON (dataset_id) dataset_id, id
        FROM dataset_updates
        WHERE version_manifest_path LIKE 'history/' || %(level)s || '/%%'
        ORDER BY dataset_id, effective_at
    )
    INSERT INTO run_dataset_updates (run_id, dataset_id, update_id)
    SELECT r.id, d.dataset_id, used.id
    FROM metric_runs r
    JOIN (SELECT DISTINCT metric_id, dataset_id FROM metric_dependencies) d
      ON d.metric_id = r.metric_id
    JOIN used ON used.dataset_id = d.dataset_id
    WHERE r.inputs_fingerprint LIKE 'history-' || %(level)s || '-%%'
    """,
    """
    INSERT INTO event_log (event_key, event_type, source, payload, status, received_at,
                           processed_at)
    SELECT event_key, 'projection_update', 'history', payload, 'processed', received_at,
           received_at
    FROM dataset_updates
    WHERE version_manifest_path LIKE 'history/' || %(level)s || '/%%'
    """,
    """
    UPDATE metrics m SET last_automatic_run_id = (
        SELECT r.id FROM metric_runs r
        WHERE r.metric_id = m.id AND r.trigger = 'automatic'
        ORDER BY r.created_at DESC, r.id DESC LIMIT 1)
    WHERE m.last_automatic_run_id IS NULL
    """,
)

_PAYLOAD = (
    '{"type": "metric_run_requested", "schema": "1", "attempt": 1, '
    '"metricCode": "bench.history", "expressionType": "series_math", '
    '"expressionJson": {"op": "ratio", "left": {"series_code": "A"}, '
    '"right": {"series_code": "B"}, "scale": 100}, '
    '"inputs": [{"datasetId": "d1", "seriesCode": "A"}, {"datasetId": "d2", "seriesCode": "B"}], '
    '"catalog": {"datasets": {"d1": {"manifestPath": "datasets/d1/versions/v1/manifest.json", '
    '"projectionsPath": "datasets/d1/projections", "bucket": "bench-datasets", '
    '"updateId": "00000000-0000-0000-0000-000000000001"}, '
    '"d2": {"manifestPath": "datasets/d2/versions/v1/manifest.json", '
    '"projectionsPath": "datasets/d2/projections", "bucket": "bench-datasets", '
    '"updateId": "00000000-0000-0000-0000-000000000002"}}}, '
    '"output": {"basePath": "s3://metrics-output/metrics/bench.history/"}}'
)


@dataclass(frozen=True)
class ScalingConfig:
    history_levels: tuple[int, ...] = (10_000, 100_000)
    fan_outs: tuple[int, ...] = (1, 10, 100)
    repeats: int = 3
    duration: float = 2.0
    warmup_events: int = 20
    claim_backlogs: tuple[int, ...] = (10, 100_000)
    claim_repeats: int = 200


@dataclass
class Point:
    x: int
    costs_ms: list[float] = field(default_factory=list)

    @property
    def cost_ms(self) -> float:
        return median(self.costs_ms)


@dataclass
class ScalingResult:
    config: ScalingConfig
    history: list[Point] = field(default_factory=list)
    fan_out: list[Point] = field(default_factory=list)
    claims: list[ClaimPoint] = field(default_factory=list)

    @property
    def history_change(self) -> float:
        """Relative change of per-update cost from the smallest to the largest history."""
        if len(self.history) < 2:
            return float("nan")
        return self.history[-1].cost_ms / self.history[0].cost_ms - 1

    @property
    def history_flat(self) -> bool:
        return abs(self.history_change) <= 0.20

    def fan_out_fit(self) -> tuple[float, float, float]:
        """Least squares `cost = fixed + per_metric * fan_out`: (fixed, per_metric, R²)."""
        xs = [float(p.x) for p in self.fan_out]
        ys = [p.cost_ms for p in self.fan_out]
        if len(xs) < 2:
            return float("nan"), float("nan"), float("nan")
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mean_x) ** 2 for x in xs)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
        fixed = mean_y - slope * mean_x
        total = sum((y - mean_y) ** 2 for y in ys)
        residual = sum((y - fixed - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
        return fixed, slope, 1 - residual / total if total else 1.0

    @property
    def fan_out_linear(self) -> bool:
        return self.fan_out_fit()[2] >= 0.95


def run_scaling(
    pool: WorkerPool,
    databases: BenchDatabases,
    config: ScalingConfig,
    progress: Callable[[str], None] = print,
) -> ScalingResult:
    result = ScalingResult(config)
    _history_curve(pool, databases, config, result, progress)
    _fan_out_curve(pool, databases, config, result, progress)
    result.claims = run_claim_cost(databases, config.claim_backlogs, config.claim_repeats)
    for claim in result.claims:
        progress(
            f"  one claim of {CLAIM_LIMIT}, {claim.backlog:>9,} queued: {claim.claim_ms:.3f} ms"
        )
    return result


def _history_curve(
    pool: WorkerPool,
    databases: BenchDatabases,
    config: ScalingConfig,
    result: ScalingResult,
    progress: Callable[[str], None],
) -> None:
    url = databases.with_catalog(CatalogShape(datasets=DATASETS, fan_out=HISTORY_FAN_OUT))
    try:
        for level, target in enumerate(config.history_levels):
            _grow_history(url, target, level)
            # The bulk load, VACUUM and CHECKPOINT leave caches cold: one discarded run first.
            settle = StreamShape(datasets=DATASETS, tag=f"h{level}settle-")
            _cost_ms(pool, url, settle, config, keep_open=True)
            point = Point(target)
            for repeat in range(config.repeats):
                stream = StreamShape(datasets=DATASETS, seed=repeat, tag=f"h{level}r{repeat}-")
                point.costs_ms.append(_cost_ms(pool, url, stream, config, keep_open=True))
            result.history.append(point)
            progress(f"  history {target:>9,} runs: {point.cost_ms:6.2f} ms/update")
    finally:
        pool.run([Task(close_kept, {})])
        databases.drop(url)


def _fan_out_curve(
    pool: WorkerPool,
    databases: BenchDatabases,
    config: ScalingConfig,
    result: ScalingResult,
    progress: Callable[[str], None],
) -> None:
    for fan_out in config.fan_outs:
        point = Point(fan_out)
        for repeat in range(config.repeats):
            url = databases.with_catalog(CatalogShape(datasets=DATASETS, fan_out=fan_out))
            try:
                stream = StreamShape(datasets=DATASETS, seed=repeat, tag=f"f{repeat}-")
                point.costs_ms.append(_cost_ms(pool, url, stream, config))
            finally:
                databases.drop(url)
        result.fan_out.append(point)
        progress(
            f"  fan-out {fan_out:>4}: {point.cost_ms:6.2f} ms/update "
            f"({point.cost_ms / fan_out:.3f} ms per dependent metric)"
        )


def _cost_ms(
    pool: WorkerPool,
    url: str,
    stream: StreamShape,
    config: ScalingConfig,
    *,
    keep_open: bool = False,
) -> float:
    kwargs: dict[str, Any] = {
        "keep_open": keep_open,
        "database_url": url,
        "stream": stream,
        "worker": 0,
        "workers": 1,
        "batch": 1,
        "warmup_events": config.warmup_events,
        "duration": config.duration,
    }
    (report,) = pool.run([Task(ingest_share, kwargs)])
    assert isinstance(report, ShareReport)
    return (report.finished - report.started) / report.events * 1000


def _grow_history(url: str, target_runs: int, level: int) -> None:
    with connection(url) as conn:
        row: Any = conn.execute("SELECT count(*) FROM metric_runs").fetchone()
        missing = target_runs - int(row[0])
        if missing <= 0:
            return
        params = {
            "level": str(level),
            "runs": missing,
            "updates": max(DATASETS, missing // 2),
            "payload": _PAYLOAD,
        }
        for statement in _HISTORY_SQL:
            conn.execute(statement, params)
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
