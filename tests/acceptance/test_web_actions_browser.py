"""Acting on many runs and downloading outputs in a real browser (issue 25 items 2, 5, 7):
Chromium (Playwright) against a real `serve` process, real PostgreSQL and moto.

On the runs list: filter by two statuses at once, select two failed runs (the live list holds
still while they are selected) and a succeeded one, "Retry selected", and read each run's
outcome. On a run's page: its durations, the chart with its input versions marked, and the
CSV download."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import polars as pl
import psycopg
import pytest
from playwright.sync_api import Page, expect

from metrics_orchestrator.domain.model import RunStatus
from tests.acceptance.conftest import Dashboard, DashboardOn
from tests.factories import seed_run
from tests.integration.metric_graph_helpers import chain_catalog
from tests.integration.web_browser_helpers import (
    Served,
    screenshot_dir,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.slow
TIMEOUT_MS = 20_000
METRIC_ID = "m-chain.a"
DAY0 = datetime(2025, 1, 1, tzinfo=UTC)
VALUES = [1.0, 2.5, None, 4.0]


@pytest.fixture
def served(dashboard_on: DashboardOn) -> Iterator[Dashboard]:
    with dashboard_on(chain_catalog(), output_bucket=True) as dashboard:
        yield dashboard


def _seed(env: Mapping[str, str], status: RunStatus, minutes_ago: float, took: float) -> UUID:
    """A run of chain.a created `minutes_ago`, which ran `took` seconds once started."""
    created = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    ended = status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        return seed_run(
            conn,
            METRIC_ID,
            status=status,
            now=created,
            created_at=created,
            started_at=created + timedelta(seconds=2),
            completed_at=created + timedelta(seconds=2 + took) if ended else None,
        )


def _with_output(env: Mapping[str, str], s3: S3Client, run_id: UUID) -> None:
    """The Parquet output and manifest a worker writes (SPEC §4.4), reported on the run."""
    bucket = env["OUTPUT_BUCKET"]
    frame = pl.DataFrame(
        {"obs_time": [DAY0 + timedelta(days=n) for n in range(len(VALUES))], "value": VALUES},
        schema={"obs_time": pl.Datetime("us", "UTC"), "value": pl.Float64},
    )
    data = io.BytesIO()
    frame.write_parquet(data)
    key = f"metrics/chain.a/{run_id}/"
    s3.put_object(Bucket=bucket, Key=f"{key}part-0.parquet", Body=data.getvalue())
    manifest = {"run_id": str(run_id), "files": [f"s3://{bucket}/{key}part-0.parquet"]}
    s3.put_object(Bucket=bucket, Key=f"{key}manifest.json", Body=json.dumps(manifest).encode())
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "UPDATE metric_runs SET output_manifest = %s, row_count = %s WHERE id = %s",
            (f"s3://{bucket}/{key}manifest.json", len(VALUES), run_id),
        )


def test_filter_by_two_statuses_select_runs_and_retry_them(
    page: Page,
    served: tuple[Served, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dashboard, env = served
    first = _seed(env, RunStatus.FAILED, minutes_ago=30, took=10)
    second = _seed(env, RunStatus.FAILED, minutes_ago=20, took=10)
    done = _seed(env, RunStatus.SUCCEEDED, minutes_ago=10, took=10)
    running = _seed(env, RunStatus.RUNNING, minutes_ago=5, took=0)

    page.goto(f"{dashboard.base_url}/ui/runs")
    expect(page.locator(f'tr[data-run-id="{running}"]')).to_be_visible()
    page.get_by_label("failed", exact=True).check()
    page.get_by_label("succeeded", exact=True).check()
    page.get_by_role("button", name="Filter").click()

    page.wait_for_url("**/ui/runs?status=succeeded&status=failed*")
    rows = page.locator("#run-rows tr[data-run-id]")
    expect(rows).to_have_count(3)
    expect(page.locator(f'tr[data-run-id="{running}"]')).to_have_count(0)
    expect(page.get_by_label("failed", exact=True)).to_be_checked()
    expect(page.locator(f'tr[data-run-id="{first}"] [data-span="run"]')).to_have_text("10 s")

    for run_id in (first, second, done):
        page.get_by_label(f"select run {run_id}").check()
    expect(page.locator("#bulk-form .selected-count")).to_have_text("3 selected")
    expect(page.locator("#runs-table .live")).to_have_text("live: paused while runs are selected")
    page.wait_for_timeout(2_500)  # past a live refresh: the selection stays
    expect(page.get_by_label(f"select run {first}")).to_be_checked()
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "runs-selected.png"))
    page.get_by_role("button", name="Retry selected").click()

    page.wait_for_url("**/ui/runs/bulk")
    expect(page.get_by_role("heading", name="Retry selected")).to_be_visible()
    expect(page.locator("#bulk-summary")).to_have_text("2 done, 1 refused, of 3 selected.")
    for run_id in (first, second):
        outcome = page.locator(f'#bulk-outcomes tr[data-run-id="{run_id}"]')
        expect(outcome).to_have_attribute("data-outcome", "done")
        expect(outcome).to_contain_text("retry queued as attempt 2")
    refused = page.locator(f'#bulk-outcomes tr[data-run-id="{done}"]')
    expect(refused).to_have_attribute("data-outcome", "refused")
    expect(refused).to_contain_text("cannot be retried")
    expect(refused).to_contain_text("is succeeded; only failed, timed_out or canceled runs")
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "runs-bulk.png"), full_page=True)

    page.locator(f'#bulk-outcomes tr[data-run-id="{first}"] td:nth-child(3) a').click()
    page.wait_for_url("**/ui/runs/*")
    expect(page.locator("#run-status")).to_contain_text("queued")
    expect(page.get_by_text("manual, attempt 2")).to_be_visible()


def test_a_run_page_shows_durations_marks_inputs_and_downloads_its_csv(
    page: Page,
    served: tuple[Served, dict[str, str]],
    s3_client: S3Client,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dashboard, env = served
    for minutes in (50, 40, 30):
        _seed(env, RunStatus.SUCCEEDED, minutes_ago=minutes, took=5)
    slow = _seed(env, RunStatus.SUCCEEDED, minutes_ago=20, took=600)
    _with_output(env, s3_client, slow)

    page.goto(f"{dashboard.base_url}/ui/runs/{slow}")

    expect(page.locator('#durations [data-span="run"]')).to_have_text("10 min")
    expect(page.locator("#durations .badge.slow")).to_have_text("slow")
    expect(page.locator("#durations")).to_contain_text("its usual 5 s")
    chart = page.locator('canvas[data-chart="output"]')
    expect(chart).to_have_attribute("data-markers-drawn", "1")  # chain.a reads fx_daily
    expect(page.locator("#chart-markers")).to_contain_text("fx_daily")
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "run-output.png"), full_page=True)

    with page.expect_download() as started:
        page.get_by_role("link", name="CSV", exact=True).click()
    download = started.value
    assert download.suggested_filename == f"output-{slow}.csv"
    text = Path(download.path()).read_bytes().decode("utf-8")  # as sent: CRLF (RFC 4180)
    assert text.split("\r\n") == [
        "obs_time,value",
        "2025-01-01T00:00:00+00:00,1.0",
        "2025-01-02T00:00:00+00:00,2.5",
        "2025-01-03T00:00:00+00:00,",
        "2025-01-04T00:00:00+00:00,4.0",
        "",
    ]
