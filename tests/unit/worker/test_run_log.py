"""The run's log beside its output (issue 25): what the worker writes, when, and its bound."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.run_files import MAX_RUN_LOG_BYTES
from metrics_orchestrator.worker.compute import ComputeOutcome, RunRequestHandler, WorkerOptions
from metrics_orchestrator.worker.inputs import InputReader
from metrics_orchestrator.worker.run_log import MAX_LINE_BYTES, RunLog
from tests.unit.worker.fakes import (
    OUTPUT_BASE,
    FixedClock,
    ListPublisher,
    MemoryStore,
    day,
    put_dataset,
    run_request,
)
from tests.unit.worker.test_compute import RATIO, parse, two_datasets

RUN_ID = "11111111-1111-1111-1111-111111111111"
LOG_URI = f"{OUTPUT_BASE}runs/{RUN_ID}-1.log"


def run(store: MemoryStore, publisher: Any, document: dict[str, Any], **options: Any) -> str:
    worker = RunRequestHandler(store, publisher, FixedClock(), WorkerOptions(**options))
    assert worker.handle(parse(document), threading.Event()) is ComputeOutcome.COMPLETED
    return store.objects[LOG_URI].decode()


def test_a_succeeded_run_logs_what_it_read_computed_and_wrote() -> None:
    store, publisher = MemoryStore(), ListPublisher()
    text = run(store, publisher, two_datasets(store))

    lines = text.splitlines()
    assert lines[0].startswith("2025-11-11T01:43:05.000Z INFO    run started metric_code=m.test")
    assert 'expression (series_math) canonical={"op":"ratio"' in lines[1]
    assert "input d1: 2 files to read manifest=s3://" in text
    assert sum("INFO    read s3://" in line for line in lines) == 3
    assert "input d2: 1 file to read manifest=s3://" in text
    assert "expression evaluated rows=4" in text
    manifest = publisher.events[-1]["outputManifest"]
    assert f"output written manifest={manifest}" in text
    assert lines[-1].endswith("run completed status=SUCCESS row_count=4")


def test_a_failed_run_logs_why_and_is_written_before_its_completed_event() -> None:
    store = MemoryStore()
    document = two_datasets(store)
    del store.objects["s3://ingestor-datasets/datasets/d2/versions/v1/manifest.json"]
    seen_at_completion: list[bool] = []

    class Watching(ListPublisher):
        def publish(self, event: Mapping[str, Any]) -> None:
            if event["type"] == "metric_run_completed":
                seen_at_completion.append(LOG_URI in store.objects)
            super().publish(event)

    text = run(store, Watching(), document)

    assert seen_at_completion == [True]
    last = text.splitlines()[-1]
    assert "WARNING run failed status=FAILURE" in last
    assert "INPUT_READ_ERROR: manifest of dataset d2" in last
    assert last.endswith("retryable=False")


def test_a_worker_bug_leaves_its_traceback_in_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    document = run_request(
        "series_math",
        RATIO,
        {"A": "d1", "B": "d1"},
        {"d1": put_dataset(store, "d1", {"A": {"2024-01": [(day(1), 1.0)]}, "B": {}})},
    )
    broken = RunRequestHandler(store, ListPublisher(), FixedClock())

    def boom(*_: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(InputReader, "read", boom)
    with structlog.testing.capture_logs():
        broken.handle(parse(document), threading.Event())

    text = store.objects[LOG_URI].decode()
    assert "ERROR   unexpected error computing the run" in text
    assert "ERROR   Traceback (most recent call last):" in text
    assert "ERROR   ZeroDivisionError: a bug" in text


def test_a_log_s3_refuses_does_not_fail_the_run() -> None:
    store, publisher = MemoryStore(), ListPublisher()
    store.refuse_writes_ending = ".log"
    worker = RunRequestHandler(store, publisher, FixedClock())

    outcome = worker.handle(parse(two_datasets(store)), threading.Event())

    assert outcome is ComputeOutcome.COMPLETED
    assert publisher.events[-1]["status"] == "SUCCESS"
    assert LOG_URI not in store.objects


def test_a_running_run_writes_its_log_so_far_on_its_heartbeats() -> None:
    store = MemoryStore()
    during: list[str] = []

    class Watching(ListPublisher):
        def publish(self, event: Mapping[str, Any]) -> None:
            if event["type"] == "metric_run_heartbeat" and LOG_URI in store.objects:
                during.append(store.objects[LOG_URI].decode())
            super().publish(event)

    run(store, Watching(), two_datasets(store), heartbeat_interval=0.05, min_run_seconds=0.4)

    assert during, "no heartbeat found the log written"
    assert "run started" in during[-1]
    assert "run completed" not in during[-1]


def test_an_abandoned_run_says_so_in_its_log() -> None:
    store = MemoryStore()
    document = two_datasets(store)
    stop = threading.Event()
    stop.set()
    worker = RunRequestHandler(store, ListPublisher(), FixedClock())

    assert worker.handle(parse(document), stop) is ComputeOutcome.ABANDONED

    assert "stop requested: run abandoned" in store.objects[LOG_URI].decode()


def test_a_redelivery_keeps_the_first_log() -> None:
    store = MemoryStore()
    document = two_datasets(store)
    worker = RunRequestHandler(store, ListPublisher(), FixedClock())
    worker.handle(parse(document), threading.Event())
    first = store.objects[LOG_URI]

    assert worker.handle(parse(document), threading.Event()) is ComputeOutcome.RESENT
    assert store.objects[LOG_URI] == first


# -- the bound ---------------------------------------------------------------------------------


def rendered(messages: list[str], limit: int) -> list[str]:
    log = RunLog(structlog.get_logger(), FixedClock(), run_id=RUN_ID, attempt=1, limit=limit)
    for message in messages:
        log.line("INFO", message)
    body = log.render()
    assert len(body) <= limit
    return body.decode().split("\n")[:-1]


# No control characters (a line break in a message is written as a space) nor lone surrogates.
MESSAGES = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=300),
    max_size=400,
)


@given(MESSAGES, st.integers(min_value=2_000, max_value=20_000))
def test_a_log_keeps_its_first_and_newest_lines_within_its_limit(
    messages: list[str], limit: int
) -> None:
    lines = rendered(messages, limit)

    gaps = [line for line in lines if line.startswith("... ")]  # a kept line starts with a time
    assert len(gaps) <= 1
    left_out = int(gaps[0].split()[1].replace(",", "")) if gaps else 0
    head = lines.index(gaps[0]) if gaps else len(lines)
    shown = [line.split(" INFO    ", 1)[1] for line in lines if not line.startswith("... ")]
    assert len(shown) + left_out == len(messages)
    assert shown[:head] == messages[:head]
    assert shown[head:] == messages[head + left_out :]


def test_a_long_line_is_cut_and_the_newest_line_is_kept() -> None:
    lines = rendered(["x" * 10_000] * 200 + ["the end"], MAX_RUN_LOG_BYTES)

    assert all(len(line.encode()) <= MAX_LINE_BYTES for line in lines)
    assert lines[0].endswith("x...")
    assert any(line.endswith(" lines left out ...") for line in lines)
    assert lines[-1].endswith("INFO    the end")
