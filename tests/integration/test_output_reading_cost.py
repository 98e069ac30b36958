"""Reading a run's output costs what a page shows, not the whole output (issue 20 item 6).

A million-row Parquet output in S3 (moto over HTTP), written as the reference worker writes it
(polars, default row groups). The reader reports what it fetched and decoded: a one-row page
must fetch the footer and one row group and decode one row; a chart at most CHART_POINTS rows.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING
from uuid import uuid4

import polars as pl
import pytest

from metrics_orchestrator.application.outputs import CHART_POINTS, OutputService
from metrics_orchestrator.domain.model import MetricRun, RunStatus, RunTrigger
from metrics_orchestrator.infrastructure.aws.s3 import S3OutputReader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROWS = 1_000_000
START = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def parquet_bytes() -> bytes:
    frame = pl.DataFrame(
        {
            "obs_time": pl.datetime_range(
                START, START + timedelta(minutes=ROWS - 1), "1m", eager=True, time_zone="UTC"
            ),
            "value": pl.int_range(0, ROWS, eager=True).cast(pl.Float64),
        }
    ).with_columns(
        # every 7th value missing, and the very last ones, so "latest present" must look back
        pl.when((pl.int_range(0, ROWS) % 7 == 0) | (pl.int_range(0, ROWS) >= ROWS - 3))
        .then(None)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


@pytest.fixture
def service(
    s3_client: S3Client, aws_prefix: str, parquet_bytes: bytes
) -> tuple[OutputService, S3OutputReader, MetricRun]:
    bucket = f"{aws_prefix}-big"
    s3_client.create_bucket(Bucket=bucket)
    s3_client.put_object(Bucket=bucket, Key="big/v1/data/part-0.parquet", Body=parquet_bytes)
    manifest = {"row_count": ROWS, "files": [f"s3://{bucket}/big/v1/data/part-0.parquet"]}
    s3_client.put_object(
        Bucket=bucket, Key="big/v1/manifest.json", Body=json.dumps(manifest).encode()
    )
    run = MetricRun(
        id=uuid4(),
        metric_id="m",
        status=RunStatus.SUCCEEDED,
        trigger=RunTrigger.AUTOMATIC,
        attempt=1,
        created_at=START,
        output_manifest=f"s3://{bucket}/big/v1/manifest.json",
    )
    reader = S3OutputReader(lambda: s3_client)
    return OutputService(lambda _: run, reader, bucket), reader, run


def test_a_one_row_page_of_a_million_rows_fetches_one_row_group_and_decodes_one_row(
    service: tuple[OutputService, S3OutputReader, MetricRun], parquet_bytes: bytes
) -> None:
    outputs, reader, run = service

    page = outputs.read(run.id, offset=500_001, limit=1)

    assert page.total == ROWS
    assert [(p.obs_time, p.value) for p in page.points] == [
        (START + timedelta(minutes=500_001), 500_001.0)
    ]
    assert page.next_offset == 500_002
    assert reader.stats.rows_decoded == 1
    # the manifest, the footer, one row group: a fraction of the file
    assert reader.stats.bytes_fetched < len(parquet_bytes) / 4


def test_a_page_across_row_groups_is_exact(
    service: tuple[OutputService, S3OutputReader, MetricRun],
) -> None:
    outputs, reader, run = service

    page = outputs.read(run.id, offset=124_998, limit=4)  # polars groups hold 125,000 rows

    assert [p.obs_time for p in page.points] == [
        START + timedelta(minutes=n) for n in range(124_998, 125_002)
    ]
    assert [p.value for p in page.points] == [
        None if n % 7 == 0 else float(n) for n in range(124_998, 125_002)
    ]
    assert reader.stats.rows_decoded == 4


def test_the_chart_asks_for_at_most_chart_points_rows_spread_over_the_output(
    service: tuple[OutputService, S3OutputReader, MetricRun],
) -> None:
    outputs, reader, run = service

    chart = outputs.chart(run.id)

    assert len(chart.points) <= CHART_POINTS
    assert reader.stats.rows_decoded == len(chart.points)
    assert chart.points[0].obs_time == START
    assert chart.points[-1].obs_time >= START + timedelta(minutes=ROWS - ROWS // CHART_POINTS)
    gaps = {b.obs_time - a.obs_time for a, b in pairwise(chart.points)}
    assert len(gaps) == 1  # evenly spread


def test_latest_reads_from_the_end_only(
    service: tuple[OutputService, S3OutputReader, MetricRun], parquet_bytes: bytes
) -> None:
    outputs, reader, run = service

    total, latest = outputs.latest(run.id)

    assert total == ROWS
    assert latest is not None
    # the last three are missing: the latest present is row ROWS - 4 (not a multiple of 7)
    assert (latest.obs_time, latest.value) == (START + timedelta(minutes=ROWS - 4), ROWS - 4.0)
    assert reader.stats.rows_decoded == 1
    assert reader.stats.bytes_fetched < len(parquet_bytes) / 4
