"""The right ceiling: the rows the measured intake writes, with no logic at all (issue 14).

For one throughput cell (same catalog, same stream, same workers, same events per
transaction, measured right after the intake in the same run), each worker writes per
transaction exactly what the intake wrote for its updates, as one multi-row statement per
table: the updates, their `event_log` rows, the runs (~1 KB request payloads, as many per
update as the intake queued on average in that cell), their lineage rows, and the metrics'
last automatic run. No decoding rules, no locks, no reads: what is left between the intake
and this rate is the intake's own logic and round trips.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench.stream import EventStream, StreamShape

PAD = "x" * 900  # with the other fields: a ~1 KB payload, like a run request's

_INSERT_UPDATES = """
INSERT INTO dataset_updates (id, event_key, dataset_id, bucket, version_manifest_path,
                             projections_path, occurred_at, received_at, effective_at, payload)
SELECT id, key, ds, 'bench', manifest, projections, now, now, now, payload
FROM unnest(%(ids)b::uuid[], %(keys)b::text[], %(datasets)b::text[], %(manifests)b::text[],
            %(projections)b::text[], %(payloads)b::jsonb[])
     AS t(id, key, ds, manifest, projections, payload),
     (SELECT %(now)s::timestamptz AS now) n
"""
_INSERT_EVENTS = """
INSERT INTO event_log (event_key, event_type, source, payload, status, received_at,
                       processed_at)
SELECT key, 'projection_update', 'bench', payload, 'processed', %(now)s, %(now)s
FROM unnest(%(keys)b::text[], %(payloads)b::jsonb[]) AS t(key, payload)
"""
_INSERT_RUNS = """
INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, inputs_fingerprint,
                         request_payload, not_before, created_at, queued_at, updated_at)
SELECT id, metric_id, 'queued', 'automatic', 1, fingerprint, payload, %(now)s, %(now)s,
       %(now)s, %(now)s
FROM unnest(%(ids)b::uuid[], %(metrics)b::text[], %(fingerprints)b::text[],
            %(payloads)b::jsonb[]) AS t(id, metric_id, fingerprint, payload)
"""
_INSERT_LINEAGE = """
INSERT INTO run_dataset_updates (run_id, dataset_id, update_id)
SELECT * FROM unnest(%(runs)b::uuid[], %(datasets)b::text[], %(updates)b::uuid[])
"""
_SET_LAST_RUNS = """
UPDATE metrics m SET last_automatic_run_id = t.run_id
FROM unnest(%(metrics)b::text[], %(runs)b::uuid[]) AS t(metric_id, run_id)
WHERE m.id = t.metric_id
"""


@dataclass(frozen=True)
class RowsReport:
    started: float
    finished: float
    events: int


@dataclass
class _Batch:
    update_ids: list[uuid.UUID]
    keys: list[str]
    datasets: list[str]
    manifests: list[str]
    projections: list[str]
    payloads: list[Jsonb]
    run_ids: list[uuid.UUID]
    run_metrics: list[str]
    fingerprints: list[str]
    run_payloads: list[Jsonb]
    lineage: list[tuple[uuid.UUID, str, uuid.UUID]]


class _RowMaker:
    """The rows of one batch: each update queues `runs_per_update` runs (on average) of
    metrics that depend on its dataset, with lineage on the latest update of every input."""

    def __init__(self, conn: psycopg.Connection[Any], runs_per_update: float) -> None:
        self._dependents: dict[str, list[tuple[str, list[str]]]] = {}
        for dataset, metric, inputs in conn.execute(
            "SELECT d.dataset_id, d.metric_id, array_agg(DISTINCT i.dataset_id)"
            " FROM metric_dependencies d JOIN metric_dependencies i ON i.metric_id = d.metric_id"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ):
            self._dependents.setdefault(dataset, []).append((metric, inputs))
        self._rate = runs_per_update
        self._made = 0
        self._runs = 0.0
        self._latest: dict[str, uuid.UUID] = {}
        self._next: dict[str, int] = {}

    def batch(self, bodies: list[str]) -> _Batch:
        b = _Batch([], [], [], [], [], [], [], [], [], [], [])
        for body in bodies:
            event = json.loads(body)
            update_id = uuid.uuid4()
            dataset = event["dataset_id"]
            b.update_ids.append(update_id)
            b.keys.append(f"{dataset}:{event['version_manifest_path']}")
            b.datasets.append(dataset)
            b.manifests.append(event["version_manifest_path"])
            b.projections.append(event["projections_path"])
            b.payloads.append(Jsonb(event))
            self._latest[dataset] = update_id
            for metric, inputs in self._runs_for(dataset):
                run_id = uuid.uuid4()
                b.run_ids.append(run_id)
                b.run_metrics.append(metric)
                b.fingerprints.append(run_id.hex)
                b.run_payloads.append(Jsonb({"runId": str(run_id), "pad": PAD}))
                b.lineage += [(run_id, ds, self._latest[ds]) for ds in inputs if ds in self._latest]
        return b

    def _runs_for(self, dataset: str) -> Iterator[tuple[str, list[str]]]:
        self._made += 1
        due = int(self._made * self._rate) - int(self._runs)
        self._runs += due
        dependents = self._dependents.get(dataset, [])
        for _ in range(due if dependents else 0):
            n = self._next.get(dataset, 0)
            self._next[dataset] = n + 1
            yield dependents[n % len(dependents)]


def _write(conn: psycopg.Connection[Any], b: _Batch) -> None:
    for attempt in range(5):
        try:
            _write_once(conn, b)
            return
        except psycopg.errors.DeadlockDetected:
            conn.rollback()
            if attempt == 4:
                raise


def _write_once(conn: psycopg.Connection[Any], b: _Batch) -> None:
    now = datetime.now(UTC)
    # one row per metric, in id order: concurrent writers update metrics in one order
    last = dict(sorted(zip(b.run_metrics, b.run_ids, strict=True)))
    with conn.pipeline():
        conn.execute(
            _INSERT_UPDATES,
            {
                "ids": b.update_ids,
                "keys": b.keys,
                "datasets": b.datasets,
                "manifests": b.manifests,
                "projections": b.projections,
                "payloads": b.payloads,
                "now": now,
            },
        )
        conn.execute(_INSERT_EVENTS, {"keys": b.keys, "payloads": b.payloads, "now": now})
        if b.run_ids:
            conn.execute(
                _INSERT_RUNS,
                {
                    "ids": b.run_ids,
                    "metrics": b.run_metrics,
                    "fingerprints": b.fingerprints,
                    "payloads": b.run_payloads,
                    "now": now,
                },
            )
            conn.execute(
                _INSERT_LINEAGE,
                {
                    "runs": [r for r, _, _ in b.lineage],
                    "datasets": [d for _, d, _ in b.lineage],
                    "updates": [u for _, _, u in b.lineage],
                },
            )
            conn.execute(_SET_LAST_RUNS, {"metrics": list(last), "runs": list(last.values())})
    conn.commit()


def write_rows_share(
    start: Callable[[], None],
    *,
    database_url: str,
    stream: StreamShape,
    worker: int,
    workers: int,
    batch: int,
    runs_per_update: float,
    warmup_events: int,
    duration: float,
) -> RowsReport:
    """The job of one worker process: the intake's rows for its share of the stream."""
    with psycopg.connect(database_url) as conn:
        maker = _RowMaker(conn, runs_per_update)
        conn.commit()
        bodies = EventStream(stream).bodies(worker=worker, workers=workers)
        for _ in range(0, warmup_events, batch):
            _write(conn, maker.batch([next(bodies) for _ in range(batch)]))
        start()
        started = time.monotonic()
        deadline = started + duration
        events = 0
        while time.monotonic() < deadline:
            _write(conn, maker.batch([next(bodies) for _ in range(batch)]))
            events += batch
        finished = time.monotonic()
    return RowsReport(started, finished, events)
