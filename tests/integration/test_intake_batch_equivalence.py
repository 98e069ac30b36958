"""Batches give exactly the one-by-one outcome (SPEC §7), on random catalogs and streams.

Each example loads one random catalog into two fresh databases, sends the same stream to
both (one `ingest` per event into the first, `ingest_many` per slice into the second, the
slices received at the same moments) and compares everything intake leaves behind, with the
generated ids replaced by what they stand for (an update by its event key, a run by its
metric, status, lineage and holds).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.intake import MAX_BATCH, IntakeService
from metrics_orchestrator.domain.events import DecodedEvent, decode_event
from metrics_orchestrator.infrastructure.postgres.database import create_pool
from tests.conftest import PostgresUnitOfWorkFactory, drop_database, new_database
from tests.support import MutableClock

START = datetime(2025, 1, 1, tzinfo=UTC)
DATASETS = ["d0", "d1", "d2", "d3"]


@dataclass(frozen=True)
class MetricDef:
    datasets: tuple[str, ...]
    required_days: int
    policy: str


@dataclass(frozen=True)
class Slice:
    bodies: tuple[str, ...]
    hours_later: int  # how long after the previous slice this one is received


metric_defs = st.builds(
    MetricDef,
    datasets=st.lists(st.sampled_from(DATASETS), min_size=1, max_size=3, unique=True).map(
        lambda ds: tuple(sorted(ds))
    ),
    required_days=st.integers(min_value=1, max_value=3),
    policy=st.sampled_from(["any_new", "all_new"]),
)


def _update_body(dataset: str, version: int, age_hours: int | None) -> str:
    body: dict[str, Any] = {
        "event": "projection_update",
        "dataset_id": dataset,
        "version_manifest_path": f"{dataset}/v{version}",
        "projections_path": f"{dataset}/p",
    }
    if age_hours is not None:
        # relative to START; slices are received later and later, so these turn late or stale
        body["occurred_at"] = (START - timedelta(hours=age_hours)).isoformat()
    return json.dumps(body)


bodies = st.one_of(
    # few versions per dataset: the same key comes back (a duplicate, even in one slice)
    st.builds(
        _update_body,
        st.sampled_from([*DATASETS, "unknown"]),
        st.integers(min_value=0, max_value=3),
        st.one_of(st.none(), st.integers(min_value=-1, max_value=120)),
    ),
    # decodable but not a valid update: rejected on its own
    st.sampled_from(DATASETS).map(
        lambda ds: json.dumps({"event": "projection_update", "dataset_id": ds})
    ),
)

slices = st.lists(
    st.builds(
        Slice,
        st.lists(bodies, min_size=1, max_size=MAX_BATCH).map(tuple),
        st.sampled_from([0, 1, 30, 50]),
    ),
    min_size=1,
    max_size=6,
)


def catalog_document(metrics: list[MetricDef]) -> dict[str, Any]:
    def metric(n: int, m: MetricDef) -> dict[str, Any]:
        refs = [{"series_code": f"S_{ds}"} for ds in m.datasets]
        single = len(refs) == 1
        return {
            "id": f"m{n}",
            "code": f"m{n}",
            "expression_type": "window_op" if single else "composite",
            "expression": {"op": "sma", "series": refs[0], "window": 3}
            if single
            else {"op": "sum", "operands": refs},
            "required_days": m.required_days,
            "trigger_policy": m.policy,
        }

    return {
        "series": [{"code": f"S_{ds}"} for ds in DATASETS],
        "datasets": [{"id": ds, "bucket": "b", "series": [f"S_{ds}"]} for ds in DATASETS],
        "metrics": [metric(n, m) for n, m in enumerate(metrics)],
    }


@contextmanager
def intake_on(
    server: str, template: str, catalog: dict[str, Any], clock: MutableClock
) -> Iterator[tuple[IntakeService, str]]:
    url = new_database(server, template)
    pool = create_pool(url, max_size=2)
    try:
        uow_factory = PostgresUnitOfWorkFactory(pool)
        CatalogService(uow_factory, clock, 7).load_catalog(catalog)
        yield IntakeService(uow_factory, clock, lambda code: f"s3://out/{code}/"), url
    finally:
        pool.close()
        drop_database(server, url)


def send(
    intake: IntakeService, clock: MutableClock, stream: list[Slice], *, batched: bool
) -> list[tuple[str, str | None]]:
    clock.set(START)
    outcomes: list[tuple[str, str | None]] = []
    for piece in stream:
        clock.advance(timedelta(hours=piece.hours_later, seconds=1))
        now = clock.now()
        events = [decode_event(body, received_at=now) for body in piece.bodies]
        results = (
            intake.ingest_many(events, source="t", received_at=now)
            if batched
            else [_one(intake, event, now) for event in events]
        )
        outcomes += [(r.status.value, r.error) for r in results]
    return outcomes


def _one(intake: IntakeService, event: DecodedEvent, now: datetime) -> Any:
    return intake.ingest(event, source="t", received_at=now)


def _fingerprint(lineage: list[tuple[str, Any]]) -> str:
    canonical = ",".join(f"{ds}={uid}" for ds, uid in sorted(lineage))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def state(url: str) -> dict[str, Any]:
    """Everything intake writes, with generated ids replaced by what they stand for."""
    with psycopg.connect(url) as conn:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return conn.execute(sql).fetchall()

        key_of = dict(rows("SELECT id, event_key FROM dataset_updates"))
        lineage: dict[Any, list[tuple[str, Any]]] = {}
        for run_id, ds, uid in rows(
            "SELECT run_id, dataset_id, update_id FROM run_dataset_updates"
        ):
            lineage.setdefault(run_id, []).append((ds, uid))
        holds: dict[Any, list[tuple[Any, ...]]] = {}
        for run_id, ds, uid, received in rows(
            "SELECT run_id, dataset_id, update_id, received_at FROM metric_run_pending_datasets"
        ):
            holds.setdefault(run_id, []).append((ds, key_of.get(uid), received))
        last = {r for (r,) in rows("SELECT last_automatic_run_id FROM metrics")}
        runs: Counter[tuple[Any, ...]] = Counter()
        for run_id, metric_id, status, trigger, fingerprint, created, queued, not_before in rows(
            "SELECT id, metric_id, status, trigger, inputs_fingerprint, created_at, queued_at,"
            " not_before FROM metric_runs"
        ):
            used = lineage.get(run_id, [])
            runs[
                (
                    metric_id,
                    status,
                    trigger,
                    created,
                    queued,
                    not_before,
                    tuple(sorted((ds, key_of[uid]) for ds, uid in used)),
                    # the fingerprint is the identity of exactly that lineage
                    fingerprint is None if not used else fingerprint == _fingerprint(used),
                    tuple(sorted(holds.get(run_id, []), key=repr)),
                    run_id in last,
                )
            ] += 1
        return {
            "updates": sorted(
                rows(
                    "SELECT event_key, dataset_id, bucket, effective_at, received_at, seq"
                    " FROM dataset_updates"
                )
            ),
            "freshest": sorted(
                (ds, key_of.get(uid))
                for ds, uid in rows("SELECT id, freshest_update_id FROM datasets")
            ),
            "events": rows("SELECT event_key, status, error, raw_body FROM event_log ORDER BY id"),
            "runs": sorted(runs.items(), key=repr),
        }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(metrics=st.lists(metric_defs, min_size=1, max_size=5), stream=slices)
def test_batches_leave_what_one_by_one_leaves(
    postgres_server_url: str,
    template_database: str,
    metrics: list[MetricDef],
    stream: list[Slice],
) -> None:
    catalog = catalog_document(metrics)
    clock = MutableClock(START)
    with intake_on(postgres_server_url, template_database, catalog, clock) as (one, one_url):
        one_outcomes = send(one, clock, stream, batched=False)
        expected = state(one_url)
    with intake_on(postgres_server_url, template_database, catalog, clock) as (many, url):
        many_outcomes = send(many, clock, stream, batched=True)
        assert many_outcomes == one_outcomes
        assert state(url) == expected
