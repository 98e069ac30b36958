"""Downloading a run's whole output (`GET /runs/{id}/output.csv` and `.parquet`, docs/api.md),
read from S3 (moto over HTTP) through its manifest, and the run page's links to them and its
chart's input-version markers (issue 25 item 7)."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

import polars as pl
import pytest

from metrics_orchestrator.application.outputs import OutputService
from metrics_orchestrator.domain.model import RunStatus
from tests.integration.http_helpers import Api, assert_problem
from tests.integration.test_http_run_output import (
    START,
    VALUES,
    seed,
    write_jsonl_output,
    write_output,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CSV_LINES = [
    "obs_time,value",
    "2024-01-01T00:00:00+00:00,1.5",
    "2024-01-02T00:00:00+00:00,",
    "2024-01-03T00:00:00+00:00,3.0",
    "2024-01-04T00:00:00+00:00,4.25",
    "2024-01-05T00:00:00+00:00,",
]


@pytest.fixture
def bucket(output_bucket: str) -> str:
    return output_bucket


@pytest.fixture
def api(output_api: Api) -> Api:
    return output_api


def _parquet_output(api: Api, s3: S3Client, bucket: str) -> str:
    return seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/{write_output(s3, bucket)}")


def test_the_csv_is_every_row_in_order_with_missing_values_empty(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    run_id = _parquet_output(api, s3_client, bucket)

    response = api.client.get(f"/runs/{run_id}/output.csv")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="output-{run_id}.csv"'
    )
    assert response.text.split("\r\n") == [*CSV_LINES, ""]


def test_the_parquet_file_reads_back_as_the_same_values(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    run_id = _parquet_output(api, s3_client, bucket)

    response = api.client.get(f"/runs/{run_id}/output.parquet")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="output-{run_id}.parquet"'
    )
    frame = pl.read_parquet(io.BytesIO(response.content))
    assert frame.columns == ["obs_time", "value"]
    assert frame.schema["obs_time"] == pl.Datetime("us", "UTC")
    assert frame["value"].to_list() == VALUES
    assert frame["obs_time"].to_list() == [START + timedelta(days=n) for n in range(len(VALUES))]


def test_a_json_lines_output_downloads_as_csv_and_parquet(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    run_id = seed(api, RunStatus.SUCCEEDED, write_jsonl_output(s3_client, bucket))

    text = api.client.get(f"/runs/{run_id}/output.csv").text
    frame = pl.read_parquet(io.BytesIO(api.client.get(f"/runs/{run_id}/output.parquet").content))

    assert text.split("\r\n") == [
        *CSV_LINES[:2],
        "2024-01-02T00:00:00+00:00,",
        "2024-01-03T00:00:00+00:00,3.0",
        "",
    ]
    assert frame["value"].to_list() == [1.5, None, 3.0]


def test_the_whole_output_is_read_a_chunk_at_a_time_across_its_files(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    first = write_output(s3_client, bucket, prefix="metrics/two/a/")
    second = write_output(s3_client, bucket, prefix="metrics/two/b/")
    both = json.loads(s3_client.get_object(Bucket=bucket, Key=first)["Body"].read())
    both["files"] += json.loads(s3_client.get_object(Bucket=bucket, Key=second)["Body"].read())[
        "files"
    ]
    s3_client.put_object(Bucket=bucket, Key="metrics/two/manifest.json", Body=json.dumps(both))
    run_id = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/metrics/two/manifest.json")

    export = api.container.outputs.export(UUID(run_id), chunk=2)
    chunks = list(export.chunks())

    assert export.total == 2 * len(VALUES)
    assert [len(c) for c in chunks] == [2, 2, 1, 2, 2, 1]  # a chunk never spans two files
    assert [p.value for c in chunks for p in c] == VALUES + VALUES
    csv = api.client.get(f"/runs/{run_id}/output.csv").text
    assert csv.split("\r\n")[1:-1] == CSV_LINES[1:] * 2


def test_no_output_is_a_404_and_an_unreadable_one_a_502(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    failed = seed(api, RunStatus.FAILED, f"s3://{bucket}/{write_output(s3_client, bucket)}")
    s3_client.put_object(Bucket=bucket, Key="broken/manifest.json", Body=b"{not json")
    broken = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/broken/manifest.json")
    s3_client.put_object(
        Bucket=bucket,
        Key="gone/manifest.json",
        Body=json.dumps({"files": [f"s3://{bucket}/gone/part-0.parquet"]}).encode(),
    )
    gone = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/gone/manifest.json")

    for suffix in ("csv", "parquet"):
        assert_problem(
            api.client.get(f"/runs/{failed}/output.{suffix}"), 404, detail_contains="status failed"
        )
        assert_problem(
            api.client.get(f"/runs/00000000-0000-0000-0000-000000000000/output.{suffix}"), 404
        )
        unreadable = assert_problem(api.client.get(f"/runs/{broken}/output.{suffix}"), 502)
        assert unreadable["type"].endswith("output-unavailable")
        assert_problem(
            api.client.get(f"/runs/{gone}/output.{suffix}"),
            502,
            detail_contains="is named by the manifest but does not exist",
        )


def test_without_a_parquet_encoder_the_parquet_download_is_a_501_and_csv_still_works(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    """A control plane installed without polars (no `[worker]` extra) has no encoder."""
    run_id = seed(api, RunStatus.SUCCEEDED, write_jsonl_output(s3_client, bucket))
    configured = api.container.outputs
    app = api.client.app
    app.state.outputs = OutputService(  # type: ignore[attr-defined]
        lambda r: api.container.runs.get_run(r).run,
        configured._reader,
        api.container.settings.output_bucket,
    )

    refused = api.client.get(f"/runs/{run_id}/output.parquet")
    csv = api.client.get(f"/runs/{run_id}/output.csv")

    body = assert_problem(refused, 501, detail_contains="no Parquet download here")
    assert body["type"].endswith("export-unsupported")
    assert csv.status_code == 200


def test_the_run_page_links_the_downloads_and_marks_the_input_versions(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    run_id = _parquet_output(api, s3_client, bucket)
    lineage = api.client.get(f"/runs/{run_id}").json()["lineage"]
    assert {e["dataset_id"] for e in lineage} == {"d1", "d2"}

    html = api.client.get(f"/ui/runs/{run_id}").text

    assert f'<a href="/runs/{run_id}/output.csv" download>CSV</a>' in html
    assert f'<a href="/runs/{run_id}/output.parquet" download>Parquet</a>' in html
    data = re.search(r'<script type="application/json" class="chart-data">(.*?)</script>', html)
    assert data is not None
    markers = json.loads(data.group(1))["markers"]
    expected = sorted(
        (datetime.fromisoformat(e["effective_at"]).timestamp() * 1000, e["dataset_id"])
        for e in lineage
    )
    assert [(m["x"], m["label"]) for m in markers] == expected
    assert 'id="chart-markers"' in html
    assert "with 2 input versions marked" in html


def test_a_run_without_output_has_no_download_links(api: Api) -> None:
    run_id = seed(api, RunStatus.FAILED, None)

    html = api.client.get(f"/ui/runs/{run_id}").text

    assert 'data-output="none"' in html
    assert "output.csv" not in html
