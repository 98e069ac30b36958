"""Four processes ingest the same shuffled stream at once (SPEC §5.1, §5.3.5, §7)."""

from __future__ import annotations

import multiprocessing
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.infrastructure.clock import SystemClock
from metrics_orchestrator.infrastructure.postgres.database import create_pool
from metrics_orchestrator.infrastructure.postgres.unit_of_work import PostgresUnitOfWork
from tests.integration.intake_helpers import load_catalog_file, update_body
from tests.support import MutableClock

PROCESSES = 4


def _ingest_all(database_url: str, bodies: list[str], batch: int) -> dict[str, int]:
    pool = create_pool(database_url, max_size=2)
    try:
        intake = IntakeService(
            lambda: PostgresUnitOfWork(pool), SystemClock(), lambda code: f"s3://o/{code}/"
        )
        counts: dict[str, int] = {}
        for start in range(0, len(bodies), batch):
            events = [decode_event(body) for body in bodies[start : start + batch]]
            for result in intake.ingest_many(events, source="proc", received_at=datetime.now(UTC)):
                counts[result.status.value] = counts.get(result.status.value, 0) + 1
        return counts
    finally:
        pool.close()


def _deadlocks(url: str) -> int:
    (count,) = _rows(
        url, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )[0]
    return int(count)


def _stream(seed: int) -> tuple[list[str], set[str]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    bodies = []
    for dataset in ("reserves_daily", "fx_daily", "prices_monthly", "fx_mirror"):
        for n in range(8):
            occurred = now - timedelta(hours=rng.uniform(0, 20))
            bodies.append(update_body(dataset, f"v{n}", occurred_at=occurred))
    keys = {f"{b['dataset_id']}:{b['version_manifest_path']}" for b in map(_loads, bodies)}
    return bodies + rng.sample(bodies, 12), keys


def _loads(body: str) -> dict[str, Any]:
    return decode_event(body).payload


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 10], ids=["one-by-one", "batches-of-10"])
def test_four_processes_ingesting_one_stream_reach_a_consistent_state(
    database_url: str, uow_factory: Any, catalogs_dir: Path, batch: int
) -> None:
    load_catalog_file(uow_factory, MutableClock(), catalogs_dir / "multi_dataset_catalog.yaml")
    stream, keys = _stream(seed=7)
    shuffles = [random.Random(i).sample(stream, len(stream)) for i in range(PROCESSES)]
    deadlocks_before = _deadlocks(database_url)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as workers:
        results = workers.starmap(_ingest_all, [(database_url, s, batch) for s in shuffles])

    # Batches take all their locks up front in one global order (docs/orchestration.md):
    # overlapping batches wait for each other, never deadlock. (Backends report their
    # statistics when they exit; the workers' pools are closed by now.)
    time.sleep(1)
    assert _deadlocks(database_url) == deadlocks_before

    assert sum(r.get("processed", 0) for r in results) == len(keys)
    assert sum(r.get("duplicate", 0) for r in results) == PROCESSES * len(stream) - len(keys)
    assert not any(r.get("rejected") for r in results)

    # one update row per distinct event key
    assert _rows(
        database_url, "SELECT count(*), count(DISTINCT event_key) FROM dataset_updates"
    ) == [(len(keys), len(keys))]
    # at most one pending run per metric; no fingerprint reused by automatic runs
    assert (
        _rows(
            database_url,
            "SELECT metric_id FROM metric_runs WHERE status = 'pending_dependencies'"
            " GROUP BY 1 HAVING count(*) > 1",
        )
        == []
    )
    assert (
        _rows(
            database_url,
            "SELECT metric_id, inputs_fingerprint FROM metric_runs WHERE trigger = 'automatic'"
            " AND inputs_fingerprint IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1",
        )
        == []
    )
    # every queued run's lineage equals its payload's catalog
    assert (
        _rows(
            database_url,
            "SELECT r.id FROM metric_runs r WHERE r.status = 'queued' AND"
            " (SELECT jsonb_object_agg(l.dataset_id, l.update_id::text)"
            "    FROM run_dataset_updates l WHERE l.run_id = r.id)"
            " IS DISTINCT FROM (SELECT jsonb_object_agg(k, v->>'updateId')"
            "    FROM jsonb_each(r.request_payload->'catalog'->'datasets') AS e(k, v))",
        )
        == []
    )

    freshest = dict(
        _rows(
            database_url,
            "SELECT DISTINCT ON (dataset_id) dataset_id, id::text FROM dataset_updates"
            " ORDER BY dataset_id, effective_at DESC, received_at DESC, seq DESC",
        )
    )
    runs_by_metric: dict[str, list[dict[str, str]]] = {}
    for metric, run_id, dataset, update in _rows(
        database_url,
        "SELECT m.code, r.id, l.dataset_id, l.update_id::text FROM metric_runs r"
        " JOIN metrics m ON m.id = r.metric_id JOIN run_dataset_updates l ON l.run_id = r.id"
        " WHERE r.trigger = 'automatic' ORDER BY r.id",
    ):
        lineages = runs_by_metric.setdefault(metric, [])
        if not lineages or lineages[-1].get("__run") != str(run_id):
            lineages.append({"__run": str(run_id)})
        lineages[-1][dataset] = update
    lineage_sets = {
        m: [{k: v for k, v in lin.items() if k != "__run"} for lin in lins]
        for m, lins in runs_by_metric.items()
    }
    dependencies = {
        code: sorted(
            {
                ds
                for (ds,) in _rows(
                    database_url,
                    "SELECT DISTINCT d.dataset_id FROM metric_dependencies d JOIN metrics m"
                    f" ON m.id = d.metric_id WHERE m.code = '{code}'",
                )
            }
        )
        for (code,) in _rows(database_url, "SELECT code FROM metrics")
    }
    # Single-input and any_new metrics must end with a run on the freshest update of every
    # input, whatever the processing order. (An all_new metric with several inputs need not:
    # see docs/orchestration.md; it must then wait in a pending run instead.)
    for code, datasets in dependencies.items():
        target = {ds: freshest[ds] for ds in datasets}
        policy = _rows(database_url, f"SELECT trigger_policy FROM metrics WHERE code = '{code}'")
        if len(datasets) == 1 or policy == [("any_new",)]:
            assert target in lineage_sets.get(code, []), code
        elif target not in lineage_sets.get(code, []):
            assert _rows(
                database_url,
                "SELECT count(*) FROM metric_runs r JOIN metrics m ON m.id = r.metric_id"
                f" WHERE m.code = '{code}' AND r.status = 'pending_dependencies'",
            ) == [(1,)], code
