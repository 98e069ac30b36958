"""In-memory fakes of the worker's ports, and builders of projections and run requests."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from metrics_orchestrator.domain.s3_locations import S3Location
from metrics_orchestrator.worker.ports import ObjectNotFound, WriteConflict

INPUT_BUCKET = "ingestor-datasets"
OUTPUT_BASE = "s3://metrics-output/metrics/m.test/"


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.reads: list[str] = []
        self.unreadable: set[str] = set()
        self.refuse_writes = False
        self.refuse_writes_ending: str | None = None  # e.g. ".parquet": only those refused

    def get(self, location: S3Location) -> bytes:
        return self.get_tagged(location)[0]

    def get_tagged(self, location: S3Location) -> tuple[bytes, str]:
        self.reads.append(location.uri)
        if location.uri in self.unreadable:
            raise OSError("AccessDenied")
        if location.uri not in self.objects:
            raise ObjectNotFound(location.uri)
        body = self.objects[location.uri]
        return body, _tag(body)

    def put(
        self,
        location: S3Location,
        body: bytes,
        content_type: str,
        *,
        if_absent: bool = False,
        if_tag: str | None = None,
    ) -> str:
        ending = self.refuse_writes_ending
        if self.refuse_writes or (ending is not None and location.uri.endswith(ending)):
            raise OSError("AccessDenied")
        found = self.objects.get(location.uri)
        if if_absent and found is not None:
            raise WriteConflict(location.uri)
        if if_tag is not None and (found is None or _tag(found) != if_tag):
            raise WriteConflict(location.uri)
        self.objects[location.uri] = body
        return _tag(body)

    def json(self, uri: str) -> Any:
        return json.loads(self.objects[uri])


def _tag(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # S3's ETag of a single-part object


class ListPublisher:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail = False

    def publish(self, event: Mapping[str, Any]) -> None:
        if self.fail:
            raise OSError("SNS unavailable")
        self.events.append(dict(event))

    def types(self) -> list[str]:
        return [e["type"].removeprefix("metric_run_") for e in self.events]


class FixedClock:
    def __init__(self, moment: datetime | None = None) -> None:
        self.moment = moment or datetime(2025, 11, 11, 1, 43, 5, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


def parquet(points: list[tuple[datetime, float | None]], **extra: list[Any]) -> bytes:
    frame = pl.DataFrame(
        {"obs_time": [t for t, _ in points], "value": [v for _, v in points], **extra},
        schema_overrides={"value": pl.Float64},
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def day(n: int) -> datetime:
    return datetime(2024, 1, 1) + timedelta(days=n - 1)


def put_dataset(
    store: MemoryStore,
    dataset_id: str,
    series: Mapping[str, Mapping[str, list[tuple[datetime, float | None]]]],
) -> dict[str, str]:
    """Write a version (manifest + one file per series and partition); its catalog entry.

    `series` maps a code to {partition name: points}, e.g. {"A": {"2024-01": [...]}}.
    """
    projections = f"datasets/{dataset_id}/projections"
    manifest_key = f"datasets/{dataset_id}/versions/v1/manifest.json"
    files = []
    for code, partitions in series.items():
        for partition, points in partitions.items():
            year, month = partition.split("-")
            relative = f"{code}/year={year}/month={month}/data.parquet"
            files.append(relative)
            codes = [code] * len(points)
            store.objects[f"s3://{INPUT_BUCKET}/{projections}/{relative}"] = parquet(
                points, internal_series_code=codes
            )
    manifest = {
        "version_id": "v1",
        "dataset_id": dataset_id,
        "created_at": "2025-11-11T01:41:38Z",
        "series_codes": list(series),
        "parquet_files": files,
        "partitions": [],
        "date_range": {},
        "data_points_count": 0,
        "partition_strategy": "series_year_month",
    }
    store.objects[f"s3://{INPUT_BUCKET}/{manifest_key}"] = json.dumps(manifest).encode()
    return {
        "manifestPath": manifest_key,
        "projectionsPath": projections,
        "bucket": INPUT_BUCKET,
        "updateId": "00000000-0000-0000-0000-000000000001",
    }


def run_request(
    expression_type: str,
    expression: dict[str, Any],
    inputs: Mapping[str, str],
    catalog: Mapping[str, Mapping[str, str]],
    *,
    run_id: str = "11111111-1111-1111-1111-111111111111",
    attempt: int = 1,
) -> dict[str, Any]:
    return {
        "type": "metric_run_requested",
        "schema": "1",
        "runId": run_id,
        "attempt": attempt,
        "requestedAt": "2025-11-11T01:41:40Z",
        "metricCode": "m.test",
        "expressionType": expression_type,
        "expressionJson": expression,
        "inputs": [{"datasetId": d, "seriesCode": s} for s, d in inputs.items()],
        "catalog": {"datasets": dict(catalog)},
        "output": {"basePath": OUTPUT_BASE},
    }
