"""The reference worker computes metrics over metrics (SPEC §8) on S3 (moto over HTTP).

A projection is written to S3; A (an `sma` over its series) is computed; B (an `ema` over A's
output) and C (B over A, a ratio of two outputs) read the upstream runs' output manifests named
by the run requests the control plane builds (`build_run_request`, with the `metric:X` versions
`output_version` makes of each completion). Every output must equal what SPEC §3.1 gives,
computed here by plain Python: A from the projection's points, B and C from A's and B's
written parquet. A request whose upstream manifest is missing fails, not retryable, naming it.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import polars as pl
import pytest

from metrics_orchestrator.domain.messages.run_requested import (
    RunRequest,
    build_run_request,
    read_message,
)
from metrics_orchestrator.domain.metric_outputs import (
    OutputFacts,
    output_dataset_id,
    output_version,
)
from metrics_orchestrator.domain.model import DatasetUpdate, MetricDependency
from metrics_orchestrator.infrastructure.aws.provisioning import create_bucket
from metrics_orchestrator.worker.adapters.s3 import S3ObjectStore
from metrics_orchestrator.worker.compute import RunRequestHandler, WorkerOptions

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Point = tuple[datetime, float | None]

DATASET = "chain_ds"
SERIES = "CHAIN_S"
SMA_WINDOW = 3
EMA_WINDOW = 4
SCALE = 100.0
START = datetime(2024, 1, 1, tzinfo=UTC)


class ListPublisher:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))


class UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def projection_points() -> list[Point]:
    """Daily points over two months, weekends as gaps, a few missing values and a zero."""
    points: list[Point] = []
    for n in range(60):
        moment = START + timedelta(days=n)
        if moment.weekday() >= 5:
            continue
        value: float | None = 100.0 + 3.0 * math.sin(n / 5) + n * 0.25
        if n in (9, 31):
            value = None
        if n == 44:
            value = 0.0
        points.append((moment, value))
    return points


def parquet(points: Sequence[Point]) -> bytes:
    frame = pl.DataFrame(
        {
            "obs_time": [t for t, _ in points],
            "value": [v for _, v in points],
            "internal_series_code": [SERIES] * len(points),
        },
        schema_overrides={"value": pl.Float64},
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def write_projection(s3: S3Client, bucket: str, points: Sequence[Point]) -> DatasetUpdate:
    """One version of the dataset, one file per month (SPEC §4.4); its update."""
    create_bucket(s3, bucket)
    projections = f"datasets/{DATASET}/projections"
    files = []
    for month in sorted({t.month for t, _ in points}):
        relative = f"{SERIES}/year=2024/month={month:02d}/data.parquet"
        part = [p for p in points if p[0].month == month]
        s3.put_object(Bucket=bucket, Key=f"{projections}/{relative}", Body=parquet(part))
        files.append(relative)
    manifest_key = f"datasets/{DATASET}/versions/v1/manifest.json"
    manifest = {
        "version_id": "v1",
        "dataset_id": DATASET,
        "created_at": "2024-03-01T00:00:00Z",
        "series_codes": [SERIES],
        "parquet_files": files,
        "partitions": [],
        "date_range": {},
        "data_points_count": len(points),
        "partition_strategy": "series_year_month",
    }
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
    return DatasetUpdate(
        id=uuid4(),
        event_key=f"{DATASET}:{manifest_key}",
        dataset_id=DATASET,
        bucket=bucket,
        version_manifest_path=manifest_key,
        projections_path=projections,
        occurred_at=None,
        received_at=datetime.now(UTC),
    )


@dataclass
class Chain:
    """Runs metrics one after another, each reading the outputs of those it names."""

    s3: S3Client
    output_bucket: str
    publisher: ListPublisher = field(default_factory=ListPublisher)
    outputs: dict[str, DatasetUpdate] = field(default_factory=dict)

    def run(
        self,
        code: str,
        expression_type: str,
        expression: dict[str, Any],
        inputs: Mapping[str, DatasetUpdate],
    ) -> dict[str, Any]:
        """Compute `code` over `inputs` (series code -> the update providing it); its completed
        event. A success becomes the version of `metric:code` its dependents consume."""
        run_id = uuid4()
        base = f"s3://{self.output_bucket}/metrics/{code}/"
        document = build_run_request(
            run_id=run_id,
            attempt=1,
            requested_at=datetime.now(UTC),
            metric_code=code,
            expression_type=expression_type,
            expression_json=expression,
            dependencies=[MetricDependency(s, u.dataset_id) for s, u in inputs.items()],
            consumed={u.dataset_id: u for u in inputs.values()},
            output_base_path=base,
        )
        request = read_message(json.dumps(document))
        assert isinstance(request, RunRequest), request
        handler = RunRequestHandler(
            S3ObjectStore(self.s3), self.publisher, UtcClock(), WorkerOptions()
        )
        handler.handle(request, threading.Event())
        completed = self.publisher.events[-1]
        assert completed["type"] == "metric_run_completed"
        if completed["status"] == "SUCCESS":
            version = output_version(
                OutputFacts(
                    run_id=run_id,
                    dataset_id=output_dataset_id(code),
                    base_path=base,
                    formed_at=datetime.now(UTC),
                    manifest=completed["outputManifest"],
                ),
                datetime.now(UTC),
            )
            assert version is not None
            self.outputs[code] = version
        return completed

    def manifest(self, code: str) -> dict[str, Any]:
        version = self.outputs[code]
        body = self.s3.get_object(Bucket=version.bucket, Key=version.version_manifest_path)
        document: dict[str, Any] = json.loads(body["Body"].read())
        return document

    def written(self, code: str) -> list[Point]:
        """The (obs_time, value) rows of every file `code`'s output manifest lists."""
        rows: list[Point] = []
        for uri in self.manifest(code)["files"]:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            frame = pl.read_parquet(io.BytesIO(body), columns=["obs_time", "value"])
            rows += [(t, v) for t, v in frame.iter_rows()]
        return sorted(rows, key=lambda row: row[0])


# -- SPEC §3.1 in plain Python, written from its sentences ---------------------------------------


def sma(points: Sequence[Point], window: int) -> list[Point]:
    """Rolling mean over the last `window` points; missing until `window` points exist or
    while the window holds a missing point."""
    result: list[Point] = []
    for index, (moment, _) in enumerate(points):
        values = [v for _, v in points[max(0, index - window + 1) : index + 1]]
        whole = len(values) == window and all(v is not None for v in values)
        result.append((moment, sum(v for v in values if v is not None) / window if whole else None))
    return result


def ema(points: Sequence[Point], window: int) -> list[Point]:
    """Exponential mean, span `window`, not adjusted, seeded with the first present value; a
    missing point gives a missing output and the mean carries over it."""
    alpha = 2 / (window + 1)
    mean: float | None = None
    result: list[Point] = []
    for moment, value in points:
        if value is None:
            result.append((moment, None))
            continue
        mean = value if mean is None else alpha * value + (1 - alpha) * mean
        result.append((moment, mean))
    return result


def ratio(left: Sequence[Point], right: Sequence[Point], scale: float) -> list[Point]:
    """Outer join on obs_time; left / right, missing on a missing side or a zero divisor."""
    lefts, rights = dict(left), dict(right)
    result: list[Point] = []
    for moment in sorted(lefts.keys() | rights.keys()):
        top, bottom = lefts.get(moment), rights.get(moment)
        if top is None or bottom is None or bottom == 0:
            result.append((moment, None))
        else:
            result.append((moment, top / bottom * scale))
    return result


def assert_same_series(got: Sequence[Point], expected: Sequence[Point]) -> None:
    assert [t for t, _ in got] == [t for t, _ in expected]
    for (moment, value), (_, wanted) in zip(got, expected, strict=True):
        if wanted is None:
            assert value is None, moment
        else:
            assert value is not None, moment
            assert math.isclose(value, wanted, rel_tol=1e-12), (moment, value, wanted)


# -- the chain ----------------------------------------------------------------------------------


@pytest.fixture
def chain(s3_client: S3Client, aws_prefix: str) -> Chain:
    create_bucket(s3_client, f"{aws_prefix}-out")
    return Chain(s3_client, f"{aws_prefix}-out")


def test_a_chain_computes_each_metric_over_the_outputs_it_names(
    chain: Chain, s3_client: S3Client, aws_prefix: str
) -> None:
    points = projection_points()
    projection = write_projection(s3_client, f"{aws_prefix}-in", points)

    a = chain.run(
        "chain.a",
        "window_op",
        {"op": "sma", "series": {"series_code": SERIES}, "window": SMA_WINDOW},
        {SERIES: projection},
    )
    assert a["status"] == "SUCCESS", a
    written_a = chain.written("chain.a")
    assert_same_series(written_a, sma(points, SMA_WINDOW))

    b = chain.run(
        "chain.b",
        "window_op",
        {"op": "ema", "series": {"metric_code": "chain.a"}, "window": EMA_WINDOW},
        {"chain.a": chain.outputs["chain.a"]},
    )
    assert b["status"] == "SUCCESS", b
    assert b["rowCount"] == len(written_a)
    written_b = chain.written("chain.b")
    assert_same_series(written_b, ema(written_a, EMA_WINDOW))

    c = chain.run(
        "chain.c",
        "series_math",
        {
            "op": "ratio",
            "left": {"metric_code": "chain.b"},
            "right": {"metric_code": "chain.a"},
            "scale": SCALE,
        },
        {"chain.b": chain.outputs["chain.b"], "chain.a": chain.outputs["chain.a"]},
    )
    assert c["status"] == "SUCCESS", c
    assert_same_series(chain.written("chain.c"), ratio(written_b, written_a, SCALE))
    assert any(v is not None for _, v in chain.written("chain.c"))

    # C's manifest records the exact upstream versions it consumed (SPEC §4.4 `inputs`).
    consumed = chain.manifest("chain.c")["inputs"]["datasets"]
    assert set(consumed) == {"metric:chain.a", "metric:chain.b"}
    upstream_a = chain.outputs["chain.a"]
    assert consumed["metric:chain.a"]["kind"] == "metric_output"
    assert consumed["metric:chain.a"]["metricCode"] == "chain.a"
    assert consumed["metric:chain.a"]["runId"] == str(upstream_a.run_id)
    assert consumed["metric:chain.a"]["manifestPath"] == upstream_a.version_manifest_path


def test_a_missing_upstream_manifest_fails_not_retryable_naming_it(
    chain: Chain, aws_prefix: str
) -> None:
    gone = f"metrics/chain.a/{uuid4().hex}/manifest.json"
    upstream = DatasetUpdate(
        id=uuid4(),
        event_key=f"metric:chain.a:run:{uuid4()}",
        dataset_id="metric:chain.a",
        bucket=chain.output_bucket,
        version_manifest_path=gone,
        projections_path="metrics/chain.a/",
        occurred_at=None,
        received_at=datetime.now(UTC),
        run_id=UUID(int=7),
        formed_at=datetime.now(UTC),
    )
    completed = chain.run(
        "chain.b",
        "window_op",
        {"op": "ema", "series": {"metric_code": "chain.a"}, "window": EMA_WINDOW},
        {"chain.a": upstream},
    )
    assert completed["status"] == "FAILURE"
    assert completed["retryable"] is False
    assert completed["error"] == (
        "INPUT_READ_ERROR: output manifest of metric:chain.a "
        f"s3://{chain.output_bucket}/{gone} does not exist"
    )
    assert "chain.b" not in chain.outputs
