"""The worker's use case with in-memory ports: feedback, output layout, errors, redelivery."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import polars as pl
import pytest
import structlog

from metrics_orchestrator.domain.messages.run_requested import (
    InvalidRequest,
    RunRequest,
    Unanswerable,
    read_message,
)
from metrics_orchestrator.worker.compute import (
    ComputeOutcome,
    RunRequestHandler,
    WorkerOptions,
)
from tests.unit.worker.fakes import (
    INPUT_BUCKET,
    OUTPUT_BASE,
    FixedClock,
    ListPublisher,
    MemoryStore,
    day,
    put_dataset,
    run_request,
)

RATIO = {"op": "ratio", "left": {"series_code": "A"}, "right": {"series_code": "B"}}
VERSION = "20251111T014305.000000Z"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def publisher() -> ListPublisher:
    return ListPublisher()


def handler(store: MemoryStore, publisher: ListPublisher, **options: Any) -> RunRequestHandler:
    return RunRequestHandler(store, publisher, FixedClock(), WorkerOptions(**options))


def two_datasets(store: MemoryStore) -> dict[str, Any]:
    d1 = put_dataset(
        store,
        "d1",
        {
            "A": {"2024-01": [(day(1), 1.0), (day(2), 4.0)], "2024-02": [(day(40), 9.0)]},
            "UNUSED": {"2024-01": [(day(1), 0.0)]},
        },
    )
    d2 = put_dataset(store, "d2", {"B": {"2024-01": [(day(2), 2.0), (day(3), 0.0)]}})
    return run_request("series_math", RATIO, {"A": "d1", "B": "d2"}, {"d1": d1, "d2": d2})


def parse(document: dict[str, Any]) -> RunRequest | InvalidRequest:
    request = read_message(json.dumps(document))
    assert not isinstance(request, Unanswerable)
    return request


def written_outputs(store: MemoryStore) -> list[str]:
    """The run's output objects: everything under the base path but the run's claim and log."""
    return [
        u for u in store.objects if u.startswith(OUTPUT_BASE) and not u.endswith((".claim", ".log"))
    ]


def output_values(store: MemoryStore, uri: str) -> list[tuple[Any, Any]]:
    frame = pl.read_parquet(io.BytesIO(store.objects[uri]))
    assert frame.columns == ["obs_time", "value"]
    return [(t.day if t.month == 1 else (t.month, t.day), v) for t, v in frame.iter_rows()]


def test_success_writes_the_layout_and_reports_it(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    outcome = handler(store, publisher).handle(parse(two_datasets(store)), threading.Event())

    assert outcome is ComputeOutcome.COMPLETED
    assert publisher.types() == ["started", "completed"]
    completed = publisher.events[-1]
    manifest_uri = f"{OUTPUT_BASE}{VERSION}/manifest.json"
    assert completed == {
        "type": "metric_run_completed",
        "runId": "11111111-1111-1111-1111-111111111111",
        "metricCode": "m.test",
        "status": "SUCCESS",
        "versionTs": VERSION,
        "outputManifest": manifest_uri,
        "rowCount": 4,
    }
    manifest = store.json(manifest_uri)
    data_uri = f"{OUTPUT_BASE}{VERSION}/data/part-0.parquet"
    assert manifest["files"] == [data_uri]
    assert manifest["row_count"] == 4
    assert manifest["run_id"] == completed["runId"]
    assert manifest["metric_code"] == "m.test"
    assert manifest["version_ts"] == VERSION
    assert set(manifest["inputs"]["datasets"]) == {"d1", "d2"}
    assert manifest["date_range"]["max_obs_time"] == "2024-02-09T00:00:00.000Z"
    assert store.json(f"{OUTPUT_BASE}current/manifest.json") == manifest
    marker = f"{OUTPUT_BASE}runs/11111111-1111-1111-1111-111111111111-1.ok"
    assert store.json(marker) == completed
    # 1: B missing; 2: 4/2; 3: A missing; Feb 9: B missing. Nulls are kept.
    assert output_values(store, data_uri) == [(1, None), (2, 2.0), (3, None), ((2, 9), None)]


def test_reads_only_the_files_of_the_series_it_needs(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    handler(store, publisher).handle(parse(two_datasets(store)), threading.Event())
    reads = [uri for uri in store.reads if uri.endswith(".parquet")]
    assert sorted(reads) == sorted(
        [
            f"s3://{INPUT_BUCKET}/datasets/d1/projections/A/year=2024/month=01/data.parquet",
            f"s3://{INPUT_BUCKET}/datasets/d1/projections/A/year=2024/month=02/data.parquet",
            f"s3://{INPUT_BUCKET}/datasets/d2/projections/B/year=2024/month=01/data.parquet",
        ]
    )


def test_a_redelivered_request_is_not_recomputed_and_its_completed_event_is_resent(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    worker = handler(store, publisher)
    worker.handle(parse(document), threading.Event())
    first = publisher.events[-1]
    store.reads.clear()

    outcome = worker.handle(parse(document), threading.Event())

    assert outcome is ComputeOutcome.RESENT
    assert publisher.types() == ["started", "completed", "completed"]
    assert publisher.events[-1] == first
    assert store.reads == [f"{OUTPUT_BASE}runs/11111111-1111-1111-1111-111111111111-1.ok"]


def test_a_new_attempt_of_the_same_run_is_computed(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    worker = handler(store, publisher)
    worker.handle(parse(document), threading.Event())
    assert (
        worker.handle(parse({**document, "attempt": 2}), threading.Event())
        is ComputeOutcome.COMPLETED
    )
    assert publisher.types() == ["started", "completed", "started", "completed"]


def test_a_missing_manifest_is_an_input_read_error(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    del store.objects[f"s3://{INPUT_BUCKET}/datasets/d2/versions/v1/manifest.json"]
    handler(store, publisher).handle(parse(document), threading.Event())
    completed = publisher.events[-1]
    assert completed["status"] == "FAILURE"
    assert completed["error"].startswith("INPUT_READ_ERROR: manifest of dataset d2 s3://")
    assert "does not exist" in completed["error"]
    assert written_outputs(store) == []


def test_an_unreadable_file_is_an_input_read_error(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    file = f"s3://{INPUT_BUCKET}/datasets/d1/projections/A/year=2024/month=02/data.parquet"
    store.unreadable.add(file)
    handler(store, publisher).handle(parse(document), threading.Event())
    assert (
        publisher.events[-1]["error"] == f"INPUT_READ_ERROR: projection file {file}: AccessDenied"
    )


def test_a_corrupt_file_is_an_input_read_error(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    file = f"s3://{INPUT_BUCKET}/datasets/d2/projections/B/year=2024/month=01/data.parquet"
    store.objects[file] = b"not parquet"
    handler(store, publisher).handle(parse(document), threading.Event())
    error = publisher.events[-1]["error"]
    assert error.startswith(f"INPUT_READ_ERROR: {file} is not a readable projection file")


def test_a_series_the_manifest_does_not_have_is_an_input_read_error(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    d1 = put_dataset(store, "d1", {"A": {"2024-01": [(day(1), 1.0)]}})
    document = run_request("series_math", RATIO, {"A": "d1", "B": "d1"}, {"d1": d1})
    handler(store, publisher).handle(parse(document), threading.Event())
    assert "has no series B" in publisher.events[-1]["error"]
    assert publisher.events[-1]["error"].startswith("INPUT_READ_ERROR: ")


def test_a_file_without_the_value_column_is_an_input_read_error(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    file = f"s3://{INPUT_BUCKET}/datasets/d2/projections/B/year=2024/month=01/data.parquet"
    buffer = io.BytesIO()
    pl.DataFrame({"obs_time": [day(1)]}).write_parquet(buffer)
    store.objects[file] = buffer.getvalue()
    handler(store, publisher).handle(parse(document), threading.Event())
    assert publisher.events[-1]["error"].startswith("INPUT_READ_ERROR: ")


def test_an_output_that_cannot_be_written_is_an_output_write_error(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    store.refuse_writes_ending = ".parquet"
    handler(store, publisher).handle(parse(document), threading.Event())
    assert publisher.events[-1]["error"] == f"OUTPUT_WRITE_ERROR: {OUTPUT_BASE}: AccessDenied"
    assert "retryable" not in publisher.events[-1]


def test_a_claim_that_cannot_be_written_fails_the_run_before_it_starts(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    store.refuse_writes = True
    assert handler(store, publisher).handle(parse(document), threading.Event()) is (
        ComputeOutcome.COMPLETED
    )
    assert publisher.types() == ["completed"]
    claim = f"{OUTPUT_BASE}runs/11111111-1111-1111-1111-111111111111-1.claim"
    assert publisher.events[-1]["error"] == (
        f"OUTPUT_WRITE_ERROR: cannot claim the run at {claim}: AccessDenied"
    )
    assert "retryable" not in publisher.events[-1]  # an S3 outage: worth retrying


def test_a_value_column_of_strings_is_an_expression_eval_error(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    file = f"s3://{INPUT_BUCKET}/datasets/d2/projections/B/year=2024/month=01/data.parquet"
    buffer = io.BytesIO()
    pl.DataFrame({"obs_time": [day(1)], "value": ["high"]}).write_parquet(buffer)
    store.objects[file] = buffer.getvalue()
    handler(store, publisher).handle(parse(document), threading.Event())
    assert publisher.events[-1]["error"].startswith("EXPRESSION_EVAL_ERROR: ")


def test_an_invalid_request_is_answered_with_a_failure_naming_every_problem(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    document = two_datasets(store)
    document["expressionJson"] = {"op": "lag", "series": {"series_code": "A"}, "window": 0}
    document["expressionType"] = "window_op"
    document["output"] = {"basePath": "metrics/no-scheme/"}
    request = parse(document)
    assert isinstance(request, InvalidRequest)
    handler(store, publisher).handle(request, threading.Event())
    assert publisher.types() == ["completed"]
    error = publisher.events[-1]["error"]
    assert error.startswith("INVALID_REQUEST: ")
    assert "expressionJson.window: must be an integer between 1 and 36500" in error
    assert "output.basePath" in error


def test_heartbeats_carry_progress_and_extend_visibility(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    extended: list[float] = []
    worker = handler(store, publisher, heartbeat_interval=0.05, min_run_seconds=0.4)
    worker.handle(
        parse(two_datasets(store)), threading.Event(), lambda: extended.append(time.monotonic())
    )
    beats = [e for e in publisher.events if e["type"] == "metric_run_heartbeat"]
    assert len(beats) >= 3
    assert len(extended) == len(beats)
    progress = [b["progress"] for b in beats]
    assert progress == sorted(progress)
    assert 0.6 <= progress[0] <= progress[-1] <= 0.8
    assert publisher.types()[0] == "started"
    assert publisher.types()[-1] == "completed"


def test_a_stop_abandons_the_run_without_a_completed_event(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    stop = threading.Event()
    worker = handler(store, publisher, heartbeat_interval=5, min_run_seconds=30)
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    outcome = worker.handle(parse(two_datasets(store)), stop)
    assert outcome is ComputeOutcome.ABANDONED
    assert time.monotonic() - started < 5
    assert publisher.types() == ["started"]
    assert written_outputs(store) == []


def test_an_unexpected_error_is_reported_as_a_worker_error(
    store: MemoryStore, publisher: ListPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("metrics_orchestrator.worker.compute.evaluate", broken)
    outcome = handler(store, publisher).handle(parse(two_datasets(store)), threading.Event())
    assert outcome is ComputeOutcome.COMPLETED
    assert publisher.events[-1]["error"] == "WORKER_ERROR: RuntimeError: bug"


def test_a_feedback_that_cannot_be_published_raises(
    store: MemoryStore, publisher: ListPublisher
) -> None:
    publisher.fail = True
    with pytest.raises(OSError, match="SNS unavailable"):
        handler(store, publisher).handle(parse(two_datasets(store)), threading.Event())


class TestReadMessage:
    def test_sns_envelope_is_unwrapped(self, store: MemoryStore) -> None:
        document = two_datasets(store)
        envelope = {"Type": "Notification", "Message": json.dumps(document)}
        request = read_message(json.dumps(envelope))
        assert isinstance(request, RunRequest)
        assert request.key == ("11111111-1111-1111-1111-111111111111", 1)
        assert dict(request.series_datasets) == {"A": "d1", "B": "d2"}

    @pytest.mark.parametrize(
        "body",
        ["not json", "[]", '{"type": "metric_run_started", "runId": "x"}', '{"type": "x"}'],
    )
    def test_anything_else_is_not_a_run_request(self, body: str) -> None:
        assert isinstance(read_message(body), Unanswerable)

    def test_full_s3_uris_in_the_catalog_are_accepted(self, store: MemoryStore) -> None:
        document = two_datasets(store)
        entry = document["catalog"]["datasets"]["d1"]
        entry["manifestPath"] = f"s3://{INPUT_BUCKET}/{entry['manifestPath']}"
        request = read_message(json.dumps(document))
        assert isinstance(request, RunRequest)
        assert request.datasets["d1"].manifest.uri == entry["manifestPath"]

    def test_an_input_without_a_catalog_entry_is_invalid(self, store: MemoryStore) -> None:
        document = two_datasets(store)
        del document["catalog"]["datasets"]["d2"]
        request = read_message(json.dumps(document))
        assert isinstance(request, InvalidRequest)
        assert request.problems == ("catalog.datasets: no update for dataset d2",)


class TestRetryable:
    """SPEC §4.2: a FAILURE that would fail the same way again says `retryable: false`."""

    def test_a_series_missing_from_a_manifest_without_series_codes_is_an_input_error(
        self, store: MemoryStore, publisher: ListPublisher
    ) -> None:
        """Issue 20 item 12: it was a SUCCESS with 0 rows."""
        d1 = put_dataset(store, "d1", {"A": {"2024-01": [(day(1), 1.0)]}})
        manifest_uri = f"s3://{INPUT_BUCKET}/{d1['manifestPath']}"
        manifest = store.json(manifest_uri)
        del manifest["series_codes"]
        store.objects[manifest_uri] = json.dumps(manifest).encode()
        document = run_request("series_math", RATIO, {"A": "d1", "B": "d1"}, {"d1": d1})

        handler(store, publisher).handle(parse(document), threading.Event())

        completed = publisher.events[-1]
        assert completed["status"] == "FAILURE"
        assert completed["error"] == (
            f"INPUT_READ_ERROR: manifest {manifest_uri} (dataset d1) has no series B"
        )
        assert completed["retryable"] is False
        assert written_outputs(store) == []

    def test_a_listed_series_without_files_is_empty_not_missing(
        self, store: MemoryStore, publisher: ListPublisher
    ) -> None:
        d1 = put_dataset(store, "d1", {"A": {"2024-01": [(day(1), 1.0)]}})
        manifest_uri = f"s3://{INPUT_BUCKET}/{d1['manifestPath']}"
        manifest = store.json(manifest_uri)
        manifest["series_codes"] = ["A", "B"]
        store.objects[manifest_uri] = json.dumps(manifest).encode()
        document = run_request("series_math", RATIO, {"A": "d1", "B": "d1"}, {"d1": d1})
        handler(store, publisher).handle(parse(document), threading.Event())
        assert publisher.events[-1]["status"] == "SUCCESS"
        assert publisher.events[-1]["rowCount"] == 1

    def test_a_missing_manifest_or_file_is_not_retryable(
        self, store: MemoryStore, publisher: ListPublisher
    ) -> None:
        document = two_datasets(store)
        del store.objects[
            f"s3://{INPUT_BUCKET}/datasets/d1/projections/A/year=2024/month=02/data.parquet"
        ]
        handler(store, publisher).handle(parse(document), threading.Event())
        assert "does not exist" in publisher.events[-1]["error"]
        assert publisher.events[-1]["retryable"] is False

    def test_an_s3_outage_is_retryable(self, store: MemoryStore, publisher: ListPublisher) -> None:
        document = two_datasets(store)
        store.unreadable.add(f"s3://{INPUT_BUCKET}/datasets/d2/versions/v1/manifest.json")
        handler(store, publisher).handle(parse(document), threading.Event())
        assert publisher.events[-1]["error"].endswith(": AccessDenied")
        assert "retryable" not in publisher.events[-1]

    def test_an_invalid_request_is_not_retryable(
        self, store: MemoryStore, publisher: ListPublisher
    ) -> None:
        document = two_datasets(store)
        document["expressionType"] = "nonsense"
        handler(store, publisher).handle(parse(document), threading.Event())
        assert publisher.events[-1]["retryable"] is False

    def test_failures_are_logged_at_warning(
        self, store: MemoryStore, publisher: ListPublisher
    ) -> None:
        document = two_datasets(store)
        document["expressionType"] = "nonsense"
        with structlog.testing.capture_logs() as logs:
            handler(store, publisher).handle(parse(document), threading.Event())
            handler(store, publisher).handle(parse(two_datasets(store)), threading.Event())
        completed = [
            (e["log_level"], e["status"]) for e in logs if e["event"] == "ON_RUN_COMPLETED"
        ]
        assert completed == [("warning", "FAILURE"), ("info", "SUCCESS")]
