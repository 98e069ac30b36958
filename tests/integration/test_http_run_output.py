"""`GET /runs/{id}/output` (SPEC §6.3): a succeeded run's values read from S3 (moto over HTTP)
through its output manifest, paginated; 404 without output; 502 when S3 cannot be read."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import polars as pl
import psycopg
import pytest

from metrics_orchestrator.domain.model import RunStatus
from tests.factories import seed_metric, seed_run
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

START = datetime(2024, 1, 1, tzinfo=UTC)
VALUES: list[float | None] = [1.5, None, 3.0, 4.25, None]


@pytest.fixture
def bucket(output_bucket: str) -> str:
    return output_bucket


@pytest.fixture
def api(output_api: Api) -> Api:
    return output_api


def write_output(s3: S3Client, bucket: str, prefix: str = "metrics/m/v1/") -> str:
    frame = pl.DataFrame(
        {"obs_time": [START + timedelta(days=n) for n in range(len(VALUES))], "value": VALUES},
        schema={"obs_time": pl.Datetime("us", "UTC"), "value": pl.Float64},
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    data_key = f"{prefix}data/part-0.parquet"
    s3.put_object(Bucket=bucket, Key=data_key, Body=buffer.getvalue())
    manifest = {
        "run_id": "r",
        "metric_code": "m",
        "version_ts": "v1",
        "row_count": len(VALUES),
        "files": [f"s3://{bucket}/{data_key}"],
        "inputs": {"datasets": {}},
    }
    s3.put_object(Bucket=bucket, Key=f"{prefix}manifest.json", Body=json.dumps(manifest).encode())
    return f"{prefix}manifest.json"


def seed(api: Api, status: RunStatus, manifest: str | None) -> str:
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM metrics WHERE id = 'm.ratio'").fetchone():
            seed_metric(conn)
        run_id = seed_run(conn, status=status, now=api.clock.now())
        conn.execute(
            "UPDATE metric_runs SET output_manifest = %s, row_count = 5 WHERE id = %s",
            (manifest, run_id),
        )
    return str(run_id)


def test_pages_through_the_values_with_the_manifest(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    key = write_output(s3_client, bucket)
    run_id = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/{key}")
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = api.client.get(f"/runs/{run_id}/output", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert page["total"] == len(VALUES)
        assert page["metadata"]["row_count"] == len(VALUES)
        assert page["manifest_uri"] == f"s3://{bucket}/{key}"
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [item["value"] for item in seen] == VALUES
    assert [datetime.fromisoformat(item["obs_time"]) for item in seen] == [
        START + timedelta(days=n) for n in range(len(VALUES))
    ]


def test_latest_is_the_last_point_with_a_value(api: Api, s3_client: S3Client, bucket: str) -> None:
    key = write_output(s3_client, bucket)
    run_id = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/{key}")
    total, point = api.container.outputs.latest(UUID(run_id))
    assert total == len(VALUES)
    assert point is not None
    assert (point.obs_time, point.value) == (START + timedelta(days=3), 4.25)


def test_a_manifest_path_without_scheme_is_read_from_the_output_bucket(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    key = write_output(s3_client, bucket, prefix="metrics/rel/v2/")
    run_id = seed(api, RunStatus.SUCCEEDED, key)
    response = api.client.get(f"/runs/{run_id}/output")
    assert response.status_code == 200, response.text
    assert response.json()["manifest_uri"] == f"s3://{bucket}/{key}"


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.FAILED, RunStatus.QUEUED])
def test_a_run_that_did_not_succeed_has_no_output(
    api: Api, s3_client: S3Client, bucket: str, status: RunStatus
) -> None:
    key = write_output(s3_client, bucket)
    run_id = seed(api, status, f"s3://{bucket}/{key}")
    assert_problem(
        api.client.get(f"/runs/{run_id}/output"), 404, detail_contains=f"status {status}"
    )


def test_no_output_without_a_reported_or_existing_manifest(api: Api, bucket: str) -> None:
    no_manifest = seed(api, RunStatus.SUCCEEDED, None)
    assert_problem(
        api.client.get(f"/runs/{no_manifest}/output"),
        404,
        detail_contains="no output manifest reported",
    )
    simulated = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/simulated/v1/manifest.json")
    assert_problem(
        api.client.get(f"/runs/{simulated}/output"), 404, detail_contains="does not exist"
    )
    assert_problem(api.client.get("/runs/00000000-0000-0000-0000-000000000000/output"), 404)


def test_an_unreadable_output_is_a_502_problem(api: Api, s3_client: S3Client, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="broken/manifest.json", Body=b"{not json")
    run_id = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/broken/manifest.json")
    body = assert_problem(api.client.get(f"/runs/{run_id}/output"), 502, detail_contains="JSON")
    assert body["type"].endswith("output-unavailable")


def test_s3_unreachable_is_a_502_problem(database_url: str) -> None:
    # Nothing listens on port 9 of the loopback: every S3 call is refused at once.
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "OUTPUT_BUCKET": "out-bucket"}
    with running_api(database_url, MutableClock(datetime.now(UTC)), env) as api:
        run_id = seed(api, RunStatus.SUCCEEDED, "s3://b/m/manifest.json")
        assert_problem(
            api.client.get(f"/runs/{run_id}/output"), 502, detail_contains="could not be reached"
        )


def test_a_cursor_it_did_not_issue_is_refused(api: Api, s3_client: S3Client, bucket: str) -> None:
    run_id = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/{write_output(s3_client, bucket)}")
    assert_problem(api.client.get(f"/runs/{run_id}/output", params={"cursor": "nope"}), 422)


def test_the_dashboard_charts_the_output_of_a_succeeded_run(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    """SPEC §6.3: the run page draws the values the run wrote (missing ones left out)."""
    run_id = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/{write_output(s3_client, bucket)}")

    html = api.client.get(f"/ui/runs/{run_id}").text

    assert 'data-chart="output"' in html
    # each point at its obs_time in epoch ms, for the chart's linear time axis (docs/ui.md)
    points = [(START + timedelta(days=d), v) for d, v in ((0, 1.5), (2, 3.0), (3, 4.25))]
    drawn = ", ".join(f'{{"x": {at.timestamp() * 1000}, "y": {v}}}' for at, v in points)
    assert f'"points": [{drawn}]' in html
    assert "no output" not in html


# --- other workers' layout: JSON lines named relative to the manifest (issue 22) --------------

JSONL_LINES = [
    {"obs_time": "2024-01-01T00:00:00Z", "value": 1.5},
    {"obs_time": "2024-01-02T00:00:00+00:00", "value": None},
    {"obs_time": "2024-01-03", "value": 3},
]


def write_jsonl_output(
    s3: S3Client, bucket: str, prefix: str = "metrics/m/2025-01-15T10-30-00"
) -> str:
    """What the public dp-worker writes: `outputs.files` relative to the manifest's folder, and
    a manifest path reported as `bucket/key` (no scheme)."""
    body = "\n".join(json.dumps(line) for line in JSONL_LINES) + "\n"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/metrics.jsonl", Body=body.encode())
    manifest = {
        "run_id": "r",
        "metric_code": "m",
        "version_ts": "2025-01-15T10-30-00",
        "created_at": "2025-01-15T10:30:00Z",
        "row_count": len(JSONL_LINES),
        "outputs": {"data_prefix": f"{bucket}/{prefix}", "files": ["metrics.jsonl"]},
    }
    s3.put_object(Bucket=bucket, Key=f"{prefix}/manifest.json", Body=json.dumps(manifest).encode())
    return f"{bucket}/{prefix}/manifest.json"


def test_a_json_lines_output_reads_with_its_format(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    run_id = seed(api, RunStatus.SUCCEEDED, write_jsonl_output(s3_client, bucket))

    first = api.client.get(f"/runs/{run_id}/output", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    rest = api.client.get(
        f"/runs/{run_id}/output", params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()

    assert page["format"] == rest["format"] == "jsonl"
    assert page["total"] == 3
    assert page["manifest_uri"] == f"s3://{bucket}/metrics/m/2025-01-15T10-30-00/manifest.json"
    items = page["items"] + rest["items"]
    assert [item["value"] for item in items] == [1.5, None, 3.0]
    assert [datetime.fromisoformat(item["obs_time"]) for item in items] == [
        START + timedelta(days=n) for n in range(3)
    ]
    assert rest["next_cursor"] is None
    total, latest = api.container.outputs.latest(UUID(run_id))
    assert (total, latest and latest.value) == (3, 3.0)


def test_a_parquet_output_says_so(api: Api, s3_client: S3Client, bucket: str) -> None:
    run_id = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/{write_output(s3_client, bucket)}")
    assert api.client.get(f"/runs/{run_id}/output").json()["format"] == "parquet"


def test_the_run_page_charts_a_json_lines_output(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    run_id = seed(api, RunStatus.SUCCEEDED, write_jsonl_output(s3_client, bucket))

    html = api.client.get(f"/ui/runs/{run_id}").text

    # the present values at their obs_time (epoch ms; a date without a zone is UTC midnight)
    points = [(datetime(2024, 1, 1, tzinfo=UTC), 1.5), (datetime(2024, 1, 3, tzinfo=UTC), 3.0)]
    drawn = ", ".join(f'{{"x": {at.timestamp() * 1000}, "y": {v}}}' for at, v in points)
    assert f'"points": [{drawn}]' in html
    assert 'data-output-format="jsonl"' in html
    assert "JSON lines output, 3 rows" in html


def test_a_bucket_prefixed_manifest_in_another_bucket_is_found(
    api: Api, s3_client: S3Client, aws_prefix: str
) -> None:
    other = f"{aws_prefix}-dp"
    s3_client.create_bucket(Bucket=other)
    run_id = seed(api, RunStatus.SUCCEEDED, write_jsonl_output(s3_client, other))

    response = api.client.get(f"/runs/{run_id}/output")

    assert response.status_code == 200, response.text
    assert response.json()["manifest_uri"].startswith(f"s3://{other}/")


@pytest.mark.parametrize(
    ("manifest", "files", "detail"),
    [
        ({"row_count": 1}, {}, "names no data"),
        ({"outputs": {"files": ["metrics.csv"]}}, {"metrics.csv": b"a,b\n"}, "not a known format"),
        ({"outputs": {"files": ["gone.jsonl"]}}, {}, "does not exist"),
        (
            {"outputs": {"files": ["bad.jsonl"]}},
            {"bad.jsonl": b'{"obs_time": "2024-01-01", "value": 1}\n{"value": 2}\n'},
            "line 2 is not an object with obs_time and value",
        ),
        (
            {"outputs": {"files": ["bad.jsonl"]}},
            {"bad.jsonl": b'{"obs_time": 1704067200, "value": 1}\n'},
            "is not an ISO 8601 date and time",
        ),
        (
            {"outputs": {"files": ["bad.jsonl"]}},
            {"bad.jsonl": b'{"obs_time": "2024-01-01", "value": "1"}\n'},
            "is not a number or null",
        ),
    ],
)
def test_an_output_in_no_known_layout_is_a_clear_502(
    api: Api,
    s3_client: S3Client,
    bucket: str,
    manifest: dict[str, Any],
    files: dict[str, bytes],
    detail: str,
) -> None:
    for name, body in files.items():
        s3_client.put_object(Bucket=bucket, Key=f"odd/{name}", Body=body)
    s3_client.put_object(Bucket=bucket, Key="odd/manifest.json", Body=json.dumps(manifest).encode())
    run_id = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/odd/manifest.json")

    problem = assert_problem(api.client.get(f"/runs/{run_id}/output"), 502, detail_contains=detail)

    assert problem["type"].endswith("output-unavailable")


def test_pages_run_across_the_files_of_one_output(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    uris = []
    for part, days in enumerate([range(0, 3), range(3, 5)]):
        frame = pl.DataFrame(
            {
                "obs_time": [START + timedelta(days=n) for n in days],
                "value": [float(n) for n in days],
            },
            schema={"obs_time": pl.Datetime("us", "UTC"), "value": pl.Float64},
        )
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        key = f"parts/v1/data/part-{part}.parquet"
        s3_client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        uris.append(f"s3://{bucket}/{key}")
    s3_client.put_object(
        Bucket=bucket, Key="parts/v1/manifest.json", Body=json.dumps({"files": uris}).encode()
    )
    run_id = seed(api, RunStatus.SUCCEEDED, f"s3://{bucket}/parts/v1/manifest.json")

    values = []
    cursor = None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get(f"/runs/{run_id}/output", params=params).json()
        assert page["total"] == 5
        values += [item["value"] for item in page["items"]]
        cursor = page["next_cursor"]

    assert values == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert cursor is None
    total, latest = api.container.outputs.latest(UUID(run_id))
    assert (total, latest and latest.value) == (5, 4.0)
