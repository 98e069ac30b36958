"""One delivery of a run request computes it; the current manifest never goes back (issue 20
item 11). In-memory store with S3's conditional-write semantics; the same scenarios run
against moto with real threads in tests/acceptance/test_worker_hostile.py."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from metrics_orchestrator.domain.messages.run_requested import RunRequest, read_message
from metrics_orchestrator.worker.claims import Verdict, verdict
from metrics_orchestrator.worker.compute import ComputeOutcome, RunRequestHandler, WorkerOptions
from metrics_orchestrator.worker.evaluator import evaluate
from tests.unit.worker.fakes import (
    OUTPUT_BASE,
    FixedClock,
    ListPublisher,
    MemoryStore,
    day,
    put_dataset,
    run_request,
)

RUN_ID = "11111111-1111-1111-1111-111111111111"
CLAIM = f"{OUTPUT_BASE}runs/{RUN_ID}-1.claim"
MARKER = f"{OUTPUT_BASE}runs/{RUN_ID}-1.ok"
CURRENT = f"{OUTPUT_BASE}current/manifest.json"
VERSION = "20251111T014305.000000Z"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def publisher() -> ListPublisher:
    return ListPublisher()


def handler(store: MemoryStore, publisher: ListPublisher) -> RunRequestHandler:
    return RunRequestHandler(store, publisher, FixedClock(), WorkerOptions())


def request(store: MemoryStore) -> RunRequest:
    d1 = put_dataset(store, "d1", {"A": {"2024-01": [(day(1), 1.0), (day(2), 3.0)]}})
    expression = {"op": "sma", "series": {"series_code": "A"}, "window": 1}
    parsed = read_message(json.dumps(run_request("window_op", expression, {"A": "d1"}, {"d1": d1})))
    assert isinstance(parsed, RunRequest)
    return parsed


def claim(delivery: str, stage: str) -> bytes:
    document = {"run_id": RUN_ID, "attempt": 1, "delivery": delivery, "stage": stage}
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        ({"delivery": "m-1", "stage": "computing"}, Verdict.TAKE_OVER),
        ({"delivery": "m-1", "stage": "writing"}, Verdict.WAIT),
        ({"delivery": "m-2", "stage": "computing"}, Verdict.IN_HAND_ELSEWHERE),
        ({"delivery": "m-2", "stage": "writing"}, Verdict.IN_HAND_ELSEWHERE),
        (None, Verdict.TAKE_OVER),
        ([1], Verdict.TAKE_OVER),
        ({"stage": "computing"}, Verdict.TAKE_OVER),
    ],
)
def test_the_verdict_on_a_claim_found(found: Any, expected: Verdict) -> None:
    assert verdict(found, "m-1") is expected


def test_the_first_delivery_claims_the_run_and_a_duplicate_is_dropped(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    run = request(store)
    store.objects[CLAIM] = claim("message-of-the-owner", "computing")

    outcome = handler(store, publisher).handle(run, threading.Event(), delivery="a-duplicate")

    assert outcome is ComputeOutcome.DUPLICATE
    assert publisher.events == []
    assert json.loads(store.objects[CLAIM])["delivery"] == "message-of-the-owner"


def test_a_redelivery_of_the_owners_message_takes_the_run_over(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    """Its worker died (or was stopped) while computing: the message came back."""
    run = request(store)
    store.objects[CLAIM] = claim("message-1", "computing")

    outcome = handler(store, publisher).handle(run, threading.Event(), delivery="message-1")

    assert outcome is ComputeOutcome.COMPLETED
    assert publisher.types() == ["started", "completed"]
    assert json.loads(store.objects[CLAIM])["stage"] == "writing"
    assert json.loads(store.objects[MARKER]) == publisher.events[-1]


def test_a_redelivery_while_the_owner_writes_waits_for_its_marker(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    run = request(store)
    store.objects[CLAIM] = claim("message-1", "writing")
    worker = handler(store, publisher)

    assert worker.handle(run, threading.Event(), delivery="message-1") is ComputeOutcome.DEFERRED
    assert publisher.events == []
    # The owner finishes; the message, back after its visibility timeout, is answered.
    store.objects[MARKER] = json.dumps({"type": "metric_run_completed", "runId": RUN_ID}).encode()
    assert worker.handle(run, threading.Event(), delivery="message-1") is ComputeOutcome.RESENT


def test_a_delivery_whose_claim_was_taken_over_writes_and_reports_nothing(
    store: MemoryStore, publisher: ListPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its visibility ran out mid-run and a redelivery took the claim over."""

    def taken_over_meanwhile(*args: Any) -> Any:
        store.objects[CLAIM] = claim("message-1", "computing")  # the other taker's write
        return evaluate(*args)

    monkeypatch.setattr("metrics_orchestrator.worker.compute.evaluate", taken_over_meanwhile)
    run = request(store)

    outcome = handler(store, publisher).handle(run, threading.Event(), delivery="message-1")

    assert outcome is ComputeOutcome.DEFERRED
    assert publisher.types() == ["started"]
    assert [u for u in store.objects if u.startswith(OUTPUT_BASE)] == [CLAIM]


def test_the_current_manifest_never_goes_back_to_an_older_version(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    run = request(store)
    later = {"version_ts": "20251111T014306.000000Z", "run_id": "a later run"}
    store.objects[CURRENT] = json.dumps(later).encode()

    handler(store, publisher).handle(run, threading.Event())

    assert publisher.events[-1]["status"] == "SUCCESS"
    assert json.loads(store.objects[CURRENT]) == later
    assert f"{OUTPUT_BASE}{VERSION}/manifest.json" in store.objects
    assert MARKER in store.objects


def test_the_current_manifest_moves_forward(store: MemoryStore, publisher: ListPublisher) -> None:
    run = request(store)
    store.objects[CURRENT] = json.dumps({"version_ts": "20251111T014304.999999Z"}).encode()
    handler(store, publisher).handle(run, threading.Event())
    assert json.loads(store.objects[CURRENT])["version_ts"] == VERSION
