"""Acceptance suites: the product end to end (processes, browser, outages).

They share the integration suites' fixtures; the database ones are in tests/conftest.py. The
browser suites share one Chromium per module (`browser`) and a fresh tab per test (`page`); a
suite with other needs defines its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from metrics_orchestrator.infrastructure.aws.provisioning import provision
from tests.conftest import drop_database, new_database
from tests.integration.conftest import catalog_path, clock, conn
from tests.integration.messaging_helpers import load_catalog, service_env
from tests.integration.web_browser_helpers import (
    CHROMIUM_ARGS,
    Served,
    chromium_executable,
    served_dashboard,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

__all__ = ["browser", "catalog_path", "clock", "conn", "dashboard_on", "page"]

# A dashboard to test: `serve` (HTTP, no dispatcher or sweeper) and its environment.
Dashboard = tuple[Served, dict[str, str]]
DashboardOn = Callable[..., AbstractContextManager[Dashboard]]

# long enough for a page polled every few seconds on a loaded machine
BROWSER_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=chromium_executable(driver), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(BROWSER_TIMEOUT_MS)
    yield tab
    context.close()


@pytest.fixture
def dashboard_on(
    postgres_server_url: str,
    template_database: str,
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
    s3_client: S3Client,
    tmp_path_factory: pytest.TempPathFactory,
) -> DashboardOn:
    """`with dashboard_on(catalog) as (served, env)`: a fresh database with `catalog` loaded (a
    file, or a document written to one), its own SNS/SQS topology, and `serve` on it; with
    `output_bucket=True`, outputs go to a bucket of its own (OUTPUT_BUCKET). Dropped after."""

    @contextmanager
    def start(
        catalog: Path | Mapping[str, Any], *, output_bucket: bool = False
    ) -> Iterator[Dashboard]:
        database_url = new_database(postgres_server_url, template_database)
        prefix = f"web{uuid.uuid4().hex[:10]}"
        topology = provision(sns_client, sqs_client, prefix=prefix, fifo=False, raw_delivery=True)
        extra = {}
        if output_bucket:
            s3_client.create_bucket(Bucket=f"{prefix}-out")
            extra["OUTPUT_BUCKET"] = f"{prefix}-out"
        env = service_env(database_url, aws_endpoint_url, topology, **extra)
        folder = tmp_path_factory.mktemp("dashboard")
        if not isinstance(catalog, Path):
            written = folder / "catalog.yaml"
            written.write_text(json.dumps(catalog))
            catalog = written
        load_catalog(env, catalog)
        try:
            with served_dashboard(env, folder) as served:
                yield served, env
        finally:
            drop_database(postgres_server_url, database_url)

    return start
