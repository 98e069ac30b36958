"""The benchmark's generators produce what they promise: loadable catalogs with the requested
fan-out, and streams of valid, distinct projection updates that intake accepts."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest
from bench.catalog import (
    CatalogShape,
    dataset_id,
    expected_dependents,
    generate_catalog,
    input_counts,
)
from bench.stream import EventStream, StreamShape, event_key, live_update

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.domain.events import decode_event, parse_projection_update
from metrics_orchestrator.infrastructure.clock import SystemClock


@pytest.mark.parametrize("fan_out", [1, 2, 3, 10, 11, 100])
def test_input_counts_sum_to_the_fan_out_with_one_to_three_inputs(fan_out: int) -> None:
    counts = input_counts(fan_out)
    assert sum(counts) == fan_out
    assert all(1 <= k <= 3 for k in counts)


def test_most_metrics_read_several_datasets() -> None:
    assert Counter(input_counts(10)) == {1: 3, 2: 2, 3: 1}


@pytest.mark.parametrize("shape", [CatalogShape(datasets=3, fan_out=1), CatalogShape(fan_out=4)])
def test_the_catalog_loads_and_every_dataset_has_the_requested_fan_out(
    uow_factory: UnitOfWorkFactory, database_url: str, shape: CatalogShape
) -> None:
    result = CatalogService(uow_factory, SystemClock(), 7).load_catalog(generate_catalog(shape))

    assert result.datasets.created == shape.datasets
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT dataset_id, count(DISTINCT metric_id) FROM metric_dependencies GROUP BY 1"
        ).fetchall()
        inputs = conn.execute(
            "SELECT count(DISTINCT dataset_id) FROM metric_dependencies GROUP BY metric_id"
        ).fetchall()
    assert dict(rows) == expected_dependents(shape)
    assert {k for (k,) in inputs} <= {1, 2, 3}
    assert max(k for (k,) in inputs) == min(3, max(input_counts(shape.fan_out)))


def test_a_catalog_needs_enough_datasets_for_three_inputs() -> None:
    with pytest.raises(ValueError, match="datasets must be >= 3"):
        CatalogShape(datasets=2)


def test_the_catalog_mixes_trigger_policies() -> None:
    metrics = generate_catalog(CatalogShape(datasets=3, fan_out=10))["metrics"]
    assert {m["trigger_policy"] for m in metrics} == {"any_new", "all_new"}


def test_stream_events_are_valid_distinct_and_visit_every_dataset_each_round() -> None:
    stream = EventStream(StreamShape(datasets=5, seed=3))
    bodies = stream.take(50)

    updates = [parse_projection_update(decode_event(body).payload) for body in bodies]
    assert len({u.event_key for u in updates}) == 50
    for round_start in range(0, 50, 5):
        assert {u.dataset_id for u in updates[round_start : round_start + 5]} == {
            dataset_id(d) for d in range(5)
        }
    occurred = [u.occurred_at for u in updates if u.occurred_at is not None]
    assert len(occurred) == 50
    assert occurred == sorted(occurred)


def test_worker_shares_split_one_stream_without_overlap() -> None:
    shape = StreamShape(datasets=4, seed=1)
    whole = EventStream(shape).take(30)
    shares = [EventStream(shape).bodies(worker=w, workers=3) for w in range(3)]
    merged = [next(shares[i % 3]) for i in range(30)]
    assert merged == whole


def test_duplicates_repeat_the_previous_event_and_late_events_are_older() -> None:
    stream = EventStream(StreamShape(datasets=4, duplicate_every=5, late_every=7))
    bodies = stream.take(10)
    assert bodies[4] == bodies[3]
    assert bodies[9] == bodies[8]
    late = json.loads(bodies[6])
    assert datetime.fromisoformat(late["occurred_at"]) < datetime.fromisoformat(
        json.loads(bodies[5])["occurred_at"]
    )


def test_live_updates_are_fresh_and_keyed_by_sequence() -> None:
    body = live_update(2, 7, tag="t")
    assert (
        event_key(body)
        == f"{dataset_id(2)}:datasets/{dataset_id(2)}/versions/t000000007/manifest.json"
    )
    occurred = datetime.fromisoformat(json.loads(body)["occurred_at"])
    assert (datetime.now(UTC) - occurred).total_seconds() < 5


def test_a_generated_stream_is_ingested_without_rejections(uow_factory: UnitOfWorkFactory) -> None:
    shape = CatalogShape(datasets=4, fan_out=3)
    CatalogService(uow_factory, SystemClock(), 7).load_catalog(generate_catalog(shape))
    intake = IntakeService(uow_factory, SystemClock(), lambda code: f"s3://out/{code}/")
    stream = EventStream(StreamShape(datasets=4, duplicate_every=6))

    statuses = Counter(
        intake.ingest(decode_event(body), source="test", received_at=datetime.now(UTC)).status
        for body in stream.take(24)
    )

    assert statuses == {EventStatus.PROCESSED: 20, EventStatus.DUPLICATE: 4}
