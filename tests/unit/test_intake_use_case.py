"""IntakeService driven with the in-memory fakes (tests/fakes.py): the use case, no database.

The same use case runs against PostgreSQL in tests/integration (test_intake_scenarios.py and
the others); tests/integration/test_fakes_contract.py pins the fakes to the real adapter.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics_orchestrator.application.intake import MAX_BATCH, IntakeResult
from metrics_orchestrator.application.ports.changes import NEW_RUN
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.model import (
    RunStatus,
    RunTrigger,
    TriggerPolicy,
)
from tests.fakes import START as T0
from tests.fakes import IntakeWorld, manifest, metric, update_body

PENDING = RunStatus.PENDING_DEPENDENCIES.value
QUEUED = RunStatus.QUEUED.value


def test_a_first_update_queues_a_run_with_its_request() -> None:
    world = IntakeWorld().with_datasets("d1")
    world.store.add_metric(metric("m1", ("d1",)))

    result = world.send(update_body("d1", "v1"))

    assert result.status is EventStatus.PROCESSED
    assert result.pending_runs == ()
    (run_id,) = result.queued_runs
    (run,) = world.store.runs
    assert (run.id, run.status, run.trigger) == (run_id, RunStatus.QUEUED, RunTrigger.AUTOMATIC)
    assert run.queued_at == run.not_before == run.created_at == T0
    assert run.request_payload is not None
    assert run.request_payload == {
        "type": "metric_run_requested",
        "schema": run.request_payload["schema"],
        "runId": str(run_id),
        "attempt": 1,
        "requestedAt": "2025-11-11T12:00:00Z",
        "metricCode": "m1",
        "expressionType": "series_math",
        "expressionJson": {"op": "sum", "operands": [{"series_code": "S_d1"}]},
        "inputs": [{"datasetId": "d1", "seriesCode": "S_d1"}],
        "catalog": {
            "datasets": {
                "d1": {
                    "manifestPath": manifest("d1", "v1"),
                    "projectionsPath": "datasets/d1/projections",
                    "bucket": "ingestor-datasets",
                    "updateId": str(result.update_id),
                }
            }
        },
        "output": {"basePath": "s3://out/m1/"},
    }
    update = world.store.freshest("d1")
    assert update is not None
    assert update.id == result.update_id
    assert world.store.lineage(run_id) == {"d1": update}
    assert world.store.last_automatic_run("m1") == run_id
    assert [(e.event_key, e.status) for e in world.store.events()] == [
        (f"d1:{manifest('d1', 'v1')}", EventStatus.PROCESSED)
    ]


def test_an_update_without_a_bucket_is_stored_with_its_datasets() -> None:
    world = IntakeWorld().with_datasets("d1")
    world.store.add_metric(metric("m1", ("d1",)))

    (run_id,) = world.send(update_body("d1", "v1", bucket=None)).queued_runs

    assert world.store.lineage(run_id)["d1"].bucket == "b"
    (run,) = world.store.runs
    assert run.request_payload is not None
    assert run.request_payload["catalog"]["datasets"]["d1"]["bucket"] == "b"


def test_a_duplicate_is_recorded_as_such_and_queues_nothing() -> None:
    world = IntakeWorld().with_datasets("d1")
    world.store.add_metric(metric("m1", ("d1",)))
    world.send(update_body("d1", "v1"))

    again = world.send(update_body("d1", "v1"))
    # and twice in one batch: the second copy is the duplicate
    in_batch = world.send_many([update_body("d1", "v2"), update_body("d1", "v2")])

    assert (again.status, again.queued_runs, again.update_id) == (EventStatus.DUPLICATE, (), None)
    assert [r.status for r in in_batch] == [EventStatus.PROCESSED, EventStatus.DUPLICATE]
    assert len(world.store.runs) == 2
    assert [e.status for e in world.store.events()] == [
        EventStatus.PROCESSED,
        EventStatus.DUPLICATE,
        EventStatus.PROCESSED,
        EventStatus.DUPLICATE,
    ]


@pytest.mark.parametrize(
    ("dataset_id", "error"),
    [("nope", "unknown dataset 'nope'"), ("off", "dataset is disabled 'off'")],
)
def test_an_unknown_or_disabled_dataset_is_rejected(dataset_id: str, error: str) -> None:
    world = IntakeWorld()
    world.store.add_dataset("off", enabled=False)
    body = update_body(dataset_id, "v1")

    result = world.send(body)

    assert (result.status, result.error) == (EventStatus.REJECTED, error)
    assert world.store.state.updates == {}
    assert world.store.runs == []
    (logged,) = world.store.events()
    assert (logged.status, logged.error, logged.raw_body) == (EventStatus.REJECTED, error, body)


def test_all_new_waits_for_every_input_then_queues_its_pending_run() -> None:
    world = IntakeWorld().with_datasets("d1", "d2")
    world.store.add_metric(metric("m", ("d1", "d2"), TriggerPolicy.ALL_NEW))

    first = world.send(update_body("d1", "v1"))
    (pending_id,) = first.pending_runs
    waiting = [(r.id, r.status) for r in world.store.runs]
    u1 = world.store.freshest("d1")
    world.clock.advance(timedelta(minutes=5))
    second = world.send(update_body("d2", "v1"))
    u2 = world.store.freshest("d2")

    assert first.queued_runs == ()
    assert waiting == [(pending_id, RunStatus.PENDING_DEPENDENCIES)]
    assert first.transitions == {(NEW_RUN, PENDING): 1}
    # the run that waited is the run that is queued
    assert second.queued_runs == (pending_id,)
    assert second.transitions == {(PENDING, QUEUED): 1}
    (run,) = world.store.runs
    assert (run.id, run.status, run.created_at) == (pending_id, RunStatus.QUEUED, T0)
    assert run.queued_at == T0 + timedelta(minutes=5)
    assert world.store.lineage(pending_id) == {"d1": u1, "d2": u2}
    # its pending rows stay as the record of what it waited for, filled with what it consumed
    assert world.store.pending_rows(pending_id) == {"d1": u1, "d2": u2}


def test_all_new_holds_only_what_is_new_since_its_last_run() -> None:
    world = IntakeWorld().with_datasets("d1", "d2")
    world.store.add_metric(metric("m", ("d1", "d2"), TriggerPolicy.ALL_NEW))
    world.send_many([update_body("d1", "v1"), update_body("d2", "v1")])

    later = world.send(update_body("d1", "v2"))

    (pending_id,) = later.pending_runs
    assert world.store.pending_rows(pending_id) == {"d1": world.store.freshest("d1"), "d2": None}


def test_any_new_runs_on_each_new_version_once_every_input_is_there() -> None:
    world = IntakeWorld().with_datasets("d1", "d2")
    world.store.add_metric(metric("m", ("d1", "d2"), TriggerPolicy.ANY_NEW))

    waits = world.send(update_body("d1", "v1"))
    queues = world.send(update_body("d2", "v1"))
    again = world.send(update_body("d1", "v2"))
    late = world.send(update_body("d1", "v0", occurred_at=T0 - timedelta(days=1)))

    assert len(waits.pending_runs) == 1
    assert queues.queued_runs == waits.pending_runs
    (second_run,) = again.queued_runs
    assert second_run not in waits.pending_runs
    lineage = world.store.lineage(second_run)
    assert {ds: u.version_manifest_path for ds, u in lineage.items()} == {
        "d1": manifest("d1", "v2"),
        "d2": manifest("d2", "v1"),
    }
    # an older version is recorded but changes nothing: v2 stays the freshest
    assert (late.status, late.queued_runs, late.pending_runs) == (EventStatus.PROCESSED, (), ())
    freshest = world.store.freshest("d1")
    assert freshest is not None
    assert freshest.version_manifest_path == manifest("d1", "v2")


def test_a_disabled_metric_gets_no_runs() -> None:
    world = IntakeWorld().with_datasets("d1")
    world.store.add_metric(metric("m", ("d1",), enabled=False))

    result = world.send(update_body("d1", "v1"))

    assert (result.status, result.queued_runs, result.pending_runs) == (
        EventStatus.PROCESSED,
        (),
        (),
    )
    assert world.store.runs == []


def test_the_transitions_are_recorded_on_the_unit_of_work() -> None:
    world = IntakeWorld().with_datasets("d1", "d2")
    world.store.add_metric(metric("m", ("d1", "d2")))

    world.send(update_body("d1", "v1"))
    world.send(update_body("d1", "v1"))  # a duplicate: a transaction that changes no run
    world.send(update_body("d2", "v1"))

    assert [dict(c.transitions) for c in world.store.committed] == [
        {(NEW_RUN, PENDING): 1},
        {},
        {(PENDING, QUEUED): 1},
    ]
    # after the commit, to telemetry; the dispatcher is woken once: one transaction queued
    assert world.telemetry.transitions == {(NEW_RUN, PENDING): 1, (PENDING, QUEUED): 1}
    assert world.store.notifications == 1


def test_a_unit_of_work_that_raises_leaves_nothing() -> None:
    world = IntakeWorld().with_datasets("d1")
    before = copy.deepcopy(world.store.state)

    def record_then_fail() -> None:
        with world.store() as uow:
            update = decode_event(update_body("d1", "v1"), received_at=T0).projection_update()
            uow.intake.record_and_load([(update.dataset_update(T0), {})])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        record_then_fail()

    assert world.store.state == before
    assert world.store.state.updates == {}
    assert world.store.committed == []


# -- a batch of N equals N one-by-one calls (SPEC §7) ---------------------------------------

DATASETS = ("d1", "d2", "d3")


@dataclass(frozen=True)
class Announcement:
    dataset_id: str
    version: int
    age_hours: int | None  # occurred_at this long before T0; None: none given

    def body(self) -> str:
        occurred = None if self.age_hours is None else T0 - timedelta(hours=self.age_hours)
        return update_body(self.dataset_id, f"v{self.version}", occurred_at=occurred)


announcements = st.builds(
    Announcement,
    st.sampled_from(DATASETS),
    st.integers(min_value=0, max_value=3),  # few versions: keys come back (duplicates)
    st.one_of(st.none(), st.integers(min_value=-1, max_value=100)),
)
# slices, each received some hours after the one before it
streams = st.lists(
    st.tuples(
        st.lists(announcements, min_size=1, max_size=MAX_BATCH),
        st.sampled_from([0, 1, 30]),
    ),
    min_size=1,
    max_size=5,
)
metric_sets = st.lists(
    st.tuples(
        st.lists(st.sampled_from(DATASETS), min_size=1, max_size=3, unique=True),
        st.sampled_from(list(TriggerPolicy)),
        st.integers(min_value=1, max_value=3),
    ),
    min_size=1,
    max_size=3,
)


def _world(metrics: list[tuple[list[str], TriggerPolicy, int]]) -> IntakeWorld:
    world = IntakeWorld().with_datasets(*DATASETS)
    for n, (datasets, policy, days) in enumerate(metrics):
        world.store.add_metric(metric(f"m{n}", tuple(datasets), policy, required_days=days))
    return world


def _observed(world: IntakeWorld, results: list[IntakeResult]) -> dict[str, Any]:
    """What the results and the store say, with generated ids replaced by what they name."""

    def run(run_id: UUID) -> tuple[Any, ...]:
        stored = world.store.state.runs[run_id]
        lineage = world.store.lineage(run_id)
        return (
            stored.metric_id,
            stored.status.value,
            tuple(sorted((ds, u.version_manifest_path) for ds, u in lineage.items())),
        )

    def freshest(dataset_id: str) -> str | None:
        update = world.store.freshest(dataset_id)
        return None if update is None else update.version_manifest_path

    return {
        "results": [
            (r.status, r.error, [run(i) for i in r.queued_runs], len(r.pending_runs))
            for r in results
        ],
        "freshest": {ds: freshest(ds) for ds in DATASETS},
        "runs": sorted(run(r.id) for r in world.store.runs),
    }


@settings(max_examples=50, deadline=None)
@given(metrics=metric_sets, stream=streams)
def test_a_batch_gives_what_one_by_one_calls_give(
    metrics: list[tuple[list[str], TriggerPolicy, int]],
    stream: list[tuple[list[Announcement], int]],
) -> None:
    one_by_one, batched = _world(metrics), _world(metrics)
    singles: list[IntakeResult] = []
    batches: list[IntakeResult] = []
    for piece, hours_later in stream:
        for world in (one_by_one, batched):
            world.clock.advance(timedelta(hours=hours_later, seconds=1))
        bodies = [a.body() for a in piece]
        singles += [one_by_one.send(body) for body in bodies]
        batches += batched.send_many(bodies)

    assert _observed(batched, batches) == _observed(one_by_one, singles)
