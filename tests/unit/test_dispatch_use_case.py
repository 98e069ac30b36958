"""The dispatcher (application/dispatch.py) driven with the in-memory fakes (tests/fakes.py).

Runs are queued by the intake use case on the same fake store, as in production; the
PostgreSQL dispatcher tests stay in tests/integration/test_dispatcher.py.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from metrics_orchestrator.application.dispatch import Dispatcher, DispatchReport
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.domain.status_reasons import DISPATCH_FAILED
from tests.fakes import FakePublisher, IntakeWorld, StoredRun, metric, update_body

BACKOFF = timedelta(seconds=2)


def queued_world(*metric_ids: str) -> tuple[IntakeWorld, list[UUID]]:
    """A world where each named metric (over d1) got one queued run."""
    world = IntakeWorld().with_datasets("d1")
    for metric_id in metric_ids:
        world.store.add_metric(metric(metric_id, ("d1",)))
    result = world.send(update_body("d1", "v1"))
    return world, list(result.queued_runs)


def dispatcher(world: IntakeWorld, publisher: FakePublisher, max_attempts: int = 3) -> Dispatcher:
    return Dispatcher(
        world.store,
        publisher,
        world.clock,
        max_attempts=max_attempts,
        backoff_base=BACKOFF,
        telemetry=world.telemetry,
    )


def run(world: IntakeWorld, run_id: UUID) -> StoredRun:
    return world.store.state.runs[run_id]


def test_a_published_run_is_marked_dispatched() -> None:
    world, (run_id,) = queued_world("m1")
    publisher = FakePublisher()
    world.clock.advance(timedelta(seconds=1))

    report = dispatcher(world, publisher).dispatch_once()

    assert report == DispatchReport(published=1)
    dispatched = run(world, run_id)
    assert dispatched.status is RunStatus.DISPATCHED
    assert dispatched.dispatched_at == world.clock.now()
    assert dispatched.dispatch_attempts == 1
    (message,) = publisher.published
    assert (message.run_id, message.attempt, message.metric_code) == (run_id, 1, "m1")
    assert message.payload == dispatched.request_payload
    assert dict(world.store.committed[-1].transitions) == {("queued", "dispatched"): 1}
    # nothing is left to claim
    assert dispatcher(world, publisher).dispatch_once() == DispatchReport()


def test_a_failed_publish_backs_off_and_records_the_reason() -> None:
    world, (run_id,) = queued_world("m1")
    publisher = FakePublisher()
    publisher.fail_all = True
    now = world.clock.now()

    report = dispatcher(world, publisher).dispatch_once()

    assert report == DispatchReport(failed=1)
    waiting = run(world, run_id)
    assert waiting.status is RunStatus.QUEUED
    assert waiting.dispatch_attempts == 1
    assert waiting.last_dispatch_error == "simulated publish failure"
    assert waiting.not_before == now + BACKOFF
    assert dict(world.store.committed[-1].transitions) == {}
    # not due again before its backoff; then the backoff doubles
    assert dispatcher(world, publisher).dispatch_once() == DispatchReport()
    world.clock.advance(BACKOFF)
    assert dispatcher(world, publisher).dispatch_once() == DispatchReport(failed=1)
    assert run(world, run_id).not_before == world.clock.now() + 2 * BACKOFF


def test_a_publisher_outage_counts_as_a_failed_attempt() -> None:
    world, (run_id,) = queued_world("m1")
    publisher = FakePublisher()
    publisher.raises = ConnectionError("SNS unreachable")

    assert dispatcher(world, publisher).dispatch_once() == DispatchReport(failed=1)
    assert run(world, run_id).last_dispatch_error == "ConnectionError: SNS unreachable"


def test_only_the_runs_that_failed_are_retried() -> None:
    world, (first, second) = queued_world("m1", "m2")
    publisher = FakePublisher()
    publisher.failing = {second}

    report = dispatcher(world, publisher).dispatch_once()

    assert report == DispatchReport(published=1, failed=1)
    assert [m.run_id for m in publisher.published] == [first]
    assert (run(world, first).status, run(world, second).status) == (
        RunStatus.DISPATCHED,
        RunStatus.QUEUED,
    )


def test_dispatch_gives_up_after_its_last_attempt() -> None:
    world, (run_id,) = queued_world("m1")
    publisher = FakePublisher()
    publisher.fail_all = True
    dispatch = dispatcher(world, publisher, max_attempts=2)

    dispatch.dispatch_once()
    world.clock.advance(BACKOFF)
    report = dispatch.dispatch_once()

    assert report == DispatchReport(given_up=1)
    failed = run(world, run_id)
    assert failed.status is RunStatus.FAILED
    assert failed.status_reason == DISPATCH_FAILED
    assert failed.error == "dispatch gave up after 2 attempt(s): simulated publish failure"
    assert failed.completed_at == world.clock.now()
    assert dict(world.store.committed[-1].transitions) == {("queued", "failed"): 1}
    assert world.telemetry.transitions[("queued", "failed")] == 1
