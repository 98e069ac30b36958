"""Inputs that are other metrics' outputs (SPEC §8): the request's catalog entry of kind
`metric_output` as parsed, and the worker reading exactly the files the upstream run's output
manifest lists, refusing (not retryable) a manifest that is missing, unreadable or points
outside that output's base path."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import polars as pl
import pytest

from metrics_orchestrator.domain.messages.run_requested import (
    DatasetVersion,
    InvalidRequest,
    RunRequest,
    Unanswerable,
    build_run_request,
    read_message,
)
from metrics_orchestrator.domain.metric_outputs import OutputFacts, output_version
from metrics_orchestrator.domain.model import MetricDependency
from metrics_orchestrator.domain.s3_locations import S3Location
from metrics_orchestrator.worker.compute import RunRequestHandler, WorkerOptions
from tests.unit.worker.fakes import (
    INPUT_BUCKET,
    OUTPUT_BASE,
    FixedClock,
    ListPublisher,
    MemoryStore,
    day,
    parquet,
    put_dataset,
    run_request,
)

OUTPUT_BUCKET = "metrics-output"
UPSTREAM_BASE = "metrics/m.up/"
UPSTREAM_VERSION = "20251110T000000.000000Z"
UPSTREAM_MANIFEST = f"{UPSTREAM_BASE}{UPSTREAM_VERSION}/manifest.json"
UPSTREAM_RUN = "22222222-2222-2222-2222-222222222222"
SMA_OF_UPSTREAM = {"op": "sma", "series": {"metric_code": "m.up"}, "window": 2}


def output_entry(**overrides: Any) -> dict[str, Any]:
    """The catalog entry the control plane writes for `metric:m.up` (SPEC §8)."""
    return {
        "manifestPath": UPSTREAM_MANIFEST,
        "projectionsPath": UPSTREAM_BASE,
        "bucket": OUTPUT_BUCKET,
        "updateId": "00000000-0000-0000-0000-000000000009",
        "kind": "metric_output",
        "metricCode": "m.up",
        "runId": UPSTREAM_RUN,
        **overrides,
    }


def put_output(store: MemoryStore, files: dict[str, list[tuple[datetime, float | None]]]) -> None:
    """An upstream run's output: one parquet per entry of `files` (name -> points) under its
    version, and the manifest listing their full URIs; plus a `current/` copy and a stray file
    that no run may read."""
    uris = []
    for name, points in files.items():
        uri = f"s3://{OUTPUT_BUCKET}/{UPSTREAM_BASE}{UPSTREAM_VERSION}/data/{name}"
        store.objects[uri] = parquet(points)
        uris.append(uri)
    manifest = {
        "run_id": UPSTREAM_RUN,
        "metric_code": "m.up",
        "version_ts": UPSTREAM_VERSION,
        "row_count": sum(len(p) for p in files.values()),
        "files": uris,
        "inputs": {"datasets": {}},
    }
    put_manifest(store, manifest)
    store.objects[f"s3://{OUTPUT_BUCKET}/{UPSTREAM_BASE}current/manifest.json"] = b"{}"
    store.objects[f"s3://{OUTPUT_BUCKET}/{UPSTREAM_BASE}stray/data/part-0.parquet"] = parquet(
        [(day(1), 1000.0)]
    )


def put_manifest(store: MemoryStore, manifest: dict[str, Any]) -> None:
    store.objects[f"s3://{OUTPUT_BUCKET}/{UPSTREAM_MANIFEST}"] = json.dumps(manifest).encode()


def chained_request(expression: dict[str, Any] | None = None, **entry: Any) -> dict[str, Any]:
    return run_request(
        "window_op",
        expression or SMA_OF_UPSTREAM,
        {"m.up": "metric:m.up"},
        {"metric:m.up": output_entry(**entry)},
    )


def parse(document: dict[str, Any]) -> RunRequest | InvalidRequest:
    request = read_message(json.dumps(document))
    assert not isinstance(request, Unanswerable)
    return request


def run(store: MemoryStore, document: dict[str, Any]) -> dict[str, Any]:
    publisher = ListPublisher()
    handler = RunRequestHandler(store, publisher, FixedClock(), WorkerOptions())
    handler.handle(parse(document), threading.Event())
    return publisher.events[-1]


def written_values(store: MemoryStore, completed: dict[str, Any]) -> list[tuple[int, Any]]:
    manifest = store.json(completed["outputManifest"])
    (data,) = manifest["files"]
    frame = pl.read_parquet(io.BytesIO(store.objects[data]))
    return [(t.day, v) for t, v in frame.iter_rows()]


# -- parsing ------------------------------------------------------------------------------------


def test_a_metric_output_entry_parses_with_its_kind_metric_and_run() -> None:
    request = parse(chained_request())
    assert isinstance(request, RunRequest)
    assert request.series_datasets == {"m.up": "metric:m.up"}
    assert request.datasets["metric:m.up"] == DatasetVersion(
        dataset_id="metric:m.up",
        bucket=OUTPUT_BUCKET,
        manifest=S3Location(OUTPUT_BUCKET, UPSTREAM_MANIFEST),
        projections=S3Location(OUTPUT_BUCKET, UPSTREAM_BASE),
        kind="metric_output",
        metric_code="m.up",
        run_id=UPSTREAM_RUN,
    )
    assert request.datasets["metric:m.up"].is_metric_output


def test_an_entry_without_kind_is_projections_as_before() -> None:
    entry = put_dataset(MemoryStore(), "d1", {"A": {"2024-01": [(day(1), 1.0)]}})
    document = run_request(
        "window_op",
        {"op": "sma", "series": {"series_code": "A"}, "window": 2},
        {"A": "d1"},
        {"d1": entry},
    )
    request = parse(document)
    assert isinstance(request, RunRequest)
    version = request.datasets["d1"]
    assert version == DatasetVersion(
        dataset_id="d1",
        bucket=INPUT_BUCKET,
        manifest=S3Location(INPUT_BUCKET, entry["manifestPath"]),
        projections=S3Location(INPUT_BUCKET, entry["projectionsPath"]),
    )
    assert (version.kind, version.metric_code, version.run_id) == ("projection", None, None)
    assert not version.is_metric_output


def test_the_control_planes_request_on_a_metric_output_parses_to_that_output() -> None:
    """build_run_request's catalog entry for `metric:X` (SPEC §8) is what the worker reads."""
    upstream = output_version(
        OutputFacts(
            run_id=UUID(UPSTREAM_RUN),
            dataset_id="metric:m.up",
            base_path=f"s3://{OUTPUT_BUCKET}/{UPSTREAM_BASE}",
            formed_at=datetime(2025, 11, 10, tzinfo=UTC),
            manifest=f"s3://{OUTPUT_BUCKET}/{UPSTREAM_MANIFEST}",
        ),
        datetime(2025, 11, 10, 0, 1, tzinfo=UTC),
    )
    assert upstream is not None
    document = build_run_request(
        run_id=UUID("11111111-1111-1111-1111-111111111111"),
        attempt=1,
        requested_at=datetime(2025, 11, 11, tzinfo=UTC),
        metric_code="m.down",
        expression_type="window_op",
        expression_json=SMA_OF_UPSTREAM,
        dependencies=[MetricDependency(series_code="m.up", dataset_id="metric:m.up")],
        consumed={"metric:m.up": upstream},
        output_base_path=OUTPUT_BASE,
    )
    request = parse(document)
    assert isinstance(request, RunRequest)
    version = request.datasets["metric:m.up"]
    assert version.is_metric_output
    assert (version.metric_code, version.run_id) == ("m.up", UPSTREAM_RUN)
    assert version.manifest == S3Location(OUTPUT_BUCKET, UPSTREAM_MANIFEST)
    assert version.projections.child("") == S3Location(OUTPUT_BUCKET, UPSTREAM_BASE)


def test_an_unknown_kind_and_a_bad_origin_are_refused_each_named() -> None:
    request = parse(chained_request(kind="view", runId="not-a-uuid"))
    assert isinstance(request, InvalidRequest)
    assert request.problems == (
        "catalog.datasets.metric:m.up.kind: must be one of projection, metric_output (got 'view')",
        "catalog.datasets: no update for dataset metric:m.up",
    )
    request = parse(chained_request(metricCode=7, runId="not-a-uuid"))
    assert isinstance(request, InvalidRequest)
    code_problem, run_problem, coverage = request.problems
    assert code_problem.startswith("catalog.datasets.metric:m.up.metricCode: 7 ")
    assert run_problem == "catalog.datasets.metric:m.up.runId: must be a UUID (got 'not-a-uuid')"
    assert coverage == "catalog.datasets: no update for dataset metric:m.up"


def test_metric_code_and_run_id_are_optional() -> None:
    document = chained_request()
    del document["catalog"]["datasets"]["metric:m.up"]["metricCode"]
    del document["catalog"]["datasets"]["metric:m.up"]["runId"]
    request = parse(document)
    assert isinstance(request, RunRequest)
    version = request.datasets["metric:m.up"]
    assert (version.kind, version.metric_code, version.run_id) == ("metric_output", None, None)


def test_a_metric_reference_read_from_projections_is_refused() -> None:
    """`{"metric_code": X}` means X's output: an entry of projections cannot stand for it."""
    request = parse(chained_request(kind="projection"))
    assert isinstance(request, InvalidRequest)
    assert request.problems == (
        "catalog.datasets.metric:m.up: metric m.up's output must be an entry of kind "
        '"metric_output" (got "projection")',
    )


# -- reading ------------------------------------------------------------------------------------


def test_the_series_is_the_union_of_the_files_the_manifest_lists() -> None:
    store = MemoryStore()
    put_output(
        store,
        {
            "part-0.parquet": [(day(1), 2.0), (day(2), 4.0)],
            "part-1.parquet": [(day(3), None), (day(4), 8.0), (day(5), 10.0)],
        },
    )
    completed = run(store, chained_request())
    assert completed["status"] == "SUCCESS", completed
    assert completed["rowCount"] == 5
    # sma 2 over 2, 4, missing, 8, 10: a window holding a missing point is missing.
    assert written_values(store, completed) == [
        (1, None),
        (2, 3.0),
        (3, None),
        (4, None),
        (5, 9.0),
    ]
    upstream = f"s3://{OUTPUT_BUCKET}/{UPSTREAM_BASE}"
    # Exactly the manifest and the files it lists: never `current/` nor another version.
    assert [uri for uri in store.reads if uri.startswith(upstream)] == [
        f"{upstream}{UPSTREAM_VERSION}/manifest.json",
        f"{upstream}{UPSTREAM_VERSION}/data/part-0.parquet",
        f"{upstream}{UPSTREAM_VERSION}/data/part-1.parquet",
    ]


def test_an_output_with_no_files_is_an_empty_series() -> None:
    store = MemoryStore()
    put_output(store, {})
    completed = run(store, chained_request())
    assert completed["status"] == "SUCCESS", completed
    assert completed["rowCount"] == 0


def test_a_series_math_over_an_output_and_a_projection() -> None:
    store = MemoryStore()
    put_output(store, {"part-0.parquet": [(day(1), 2.0), (day(2), 4.0)]})
    entry = put_dataset(store, "d1", {"A": {"2024-01": [(day(1), 1.0), (day(2), 0.0)]}})
    document = run_request(
        "series_math",
        {"op": "ratio", "left": {"metric_code": "m.up"}, "right": {"series_code": "A"}},
        {"m.up": "metric:m.up", "A": "d1"},
        {"metric:m.up": output_entry(), "d1": entry},
    )
    completed = run(store, document)
    assert completed["status"] == "SUCCESS", completed
    assert written_values(store, completed) == [(1, 2.0), (2, None)]


def test_a_missing_output_manifest_is_refused_naming_it() -> None:
    completed = run(MemoryStore(), chained_request())
    assert completed["status"] == "FAILURE"
    assert completed["retryable"] is False
    assert completed["error"] == (
        f"INPUT_READ_ERROR: output manifest of metric:m.up "
        f"s3://{OUTPUT_BUCKET}/{UPSTREAM_MANIFEST} does not exist"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "is not JSON"),
        (b"[1, 2]", "is not an object"),
        (json.dumps({"files": "part-0.parquet"}).encode(), "files is not a list of s3:// URIs"),
        (json.dumps({"run_id": UPSTREAM_RUN}).encode(), "files is not a list of s3:// URIs"),
    ],
)
def test_an_unreadable_output_manifest_is_refused(body: bytes, reason: str) -> None:
    store = MemoryStore()
    store.objects[f"s3://{OUTPUT_BUCKET}/{UPSTREAM_MANIFEST}"] = body
    completed = run(store, chained_request())
    assert completed["status"] == "FAILURE"
    assert completed["retryable"] is False
    assert completed["error"].startswith(
        f"INPUT_READ_ERROR: output manifest of metric:m.up s3://{OUTPUT_BUCKET}/{UPSTREAM_MANIFEST}"
    )
    assert reason in completed["error"]


def test_an_output_manifest_s3_cannot_serve_now_stays_retryable() -> None:
    store = MemoryStore()
    put_output(store, {"part-0.parquet": [(day(1), 2.0)]})
    store.unreadable.add(f"s3://{OUTPUT_BUCKET}/{UPSTREAM_MANIFEST}")
    completed = run(store, chained_request())
    assert completed["status"] == "FAILURE"
    assert "retryable" not in completed  # an S3 outage: a later attempt may read it
    assert completed["error"].endswith(": AccessDenied")


@pytest.mark.parametrize(
    "file",
    [
        f"s3://another-bucket/{UPSTREAM_BASE}{UPSTREAM_VERSION}/data/part-0.parquet",
        f"s3://{OUTPUT_BUCKET}/metrics/m.other/{UPSTREAM_VERSION}/data/part-0.parquet",
        f"s3://{OUTPUT_BUCKET}/metrics/m.up.evil/data/part-0.parquet",
        f"s3://{OUTPUT_BUCKET}/{UPSTREAM_BASE}../m.other/data/part-0.parquet",
        f"s3://{OUTPUT_BUCKET}/{UPSTREAM_BASE}",
        f"{UPSTREAM_BASE}{UPSTREAM_VERSION}/data/part-0.parquet",
        "data/part-0.parquet",
    ],
)
def test_a_file_outside_the_outputs_base_path_is_refused(file: str) -> None:
    store = MemoryStore()
    put_output(store, {"part-0.parquet": [(day(1), 2.0)]})
    manifest = store.json(f"s3://{OUTPUT_BUCKET}/{UPSTREAM_MANIFEST}")
    put_manifest(store, {**manifest, "files": [*manifest["files"], file]})
    completed = run(store, chained_request())
    assert completed["status"] == "FAILURE"
    assert completed["retryable"] is False
    assert completed["error"] == (
        f"INPUT_READ_ERROR: output manifest of metric:m.up "
        f"s3://{OUTPUT_BUCKET}/{UPSTREAM_MANIFEST} lists {file!r}, which is not under the "
        "output's base path "
        f"s3://{OUTPUT_BUCKET}/{UPSTREAM_BASE}"
    )
    # Refused before any data file is read.
    assert not [uri for uri in store.reads if uri.endswith(".parquet")]


def test_a_listed_file_that_does_not_exist_is_refused() -> None:
    store = MemoryStore()
    put_output(store, {"part-0.parquet": [(day(1), 2.0)]})
    gone = f"s3://{OUTPUT_BUCKET}/{UPSTREAM_BASE}{UPSTREAM_VERSION}/data/part-0.parquet"
    del store.objects[gone]
    completed = run(store, chained_request())
    assert completed["status"] == "FAILURE"
    assert completed["retryable"] is False
    assert completed["error"] == (
        f"INPUT_READ_ERROR: output file of metric:m.up {gone} does not exist"
    )
