"""The dependency graph of metrics over metrics (SPEC §8) in a real browser: Chromium
(Playwright) against a real `serve` process, with a chain fx_daily -> A -> B -> C."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from metrics_orchestrator.infrastructure.aws.provisioning import provision
from tests.acceptance.test_web_browser import LABELS_CROSSED_BY_EDGES, OVERLAPPING_LABELS
from tests.conftest import drop_database, new_database
from tests.integration.messaging_helpers import load_catalog, service_env
from tests.integration.metric_graph_helpers import chain_catalog
from tests.integration.web_browser_helpers import (
    CHROMIUM_ARGS,
    Served,
    chromium_executable,
    screenshot_dir,
    served_dashboard,
)

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.slow
TIMEOUT_MS = 20_000

# Each drawn node: its id, its column (from the page) and where the browser put it.
DRAWN_NODES = """window.moGraph.nodes().map((n) => ({
  id: n.id(), column: n.data("column"), x: n.position("x"), y: n.position("y"),
}))"""
DRAWN_EDGES = "window.moGraph.edges().map((e) => [e.source().id(), e.target().id()])"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        chromium = _launch(driver)
        yield chromium
        chromium.close()


def _launch(driver: Playwright) -> Browser:
    return driver.chromium.launch(executable_path=chromium_executable(driver), args=CHROMIUM_ARGS)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    yield tab
    context.close()


@pytest.fixture(scope="module")
def served(
    postgres_server_url: str,
    template_database: str,
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    database_url = new_database(postgres_server_url, template_database)
    topology = provision(
        sns_client, sqs_client, prefix=f"web{uuid.uuid4().hex[:10]}", fifo=False, raw_delivery=True
    )
    env = service_env(database_url, aws_endpoint_url, topology)
    folder = tmp_path_factory.mktemp("chain")
    catalog = folder / "chain_catalog.yaml"
    catalog.write_text(json.dumps(chain_catalog()))
    load_catalog(env, catalog)
    try:
        with served_dashboard(env, folder) as dashboard:
            yield dashboard
    finally:
        drop_database(postgres_server_url, database_url)


def test_the_graph_draws_a_chain_in_three_metric_columns(
    page: Page, served: Served, tmp_path_factory: pytest.TempPathFactory
) -> None:
    page.goto(served.base_url + "/ui/graph")
    page.wait_for_selector("#graph[data-rendered]")

    nodes: dict[str, dict[str, Any]] = {n["id"]: n for n in page.evaluate(DRAWN_NODES)}
    edges = {tuple(e) for e in page.evaluate(DRAWN_EDGES)}

    assert set(nodes) == {
        "dataset:fx_daily",
        "series:fx_daily/FX_D",
        "metric:chain.a",
        "metric:chain.b",
        "metric:chain.c",
    }
    assert {
        ("metric:chain.a", "metric:chain.b"),
        ("metric:chain.b", "metric:chain.c"),
        ("metric:chain.a", "metric:chain.c"),
    } <= edges
    # three metrics in three columns, left to right by depth, right of the dataset and series
    a, b, c = (nodes[f"metric:chain.{m}"]["x"] for m in "abc")
    assert nodes["dataset:fx_daily"]["x"] < nodes["series:fx_daily/FX_D"]["x"] < a < b < c
    assert [nodes[f"metric:chain.{m}"]["column"] for m in "abc"] == [2, 3, 4]
    # the edge A -> C skips B's column without crossing a node's label
    assert page.evaluate(OVERLAPPING_LABELS) == []
    assert page.evaluate(LABELS_CROSSED_BY_EDGES) == []
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "graph-chain.png"), full_page=True)


def test_clicking_an_upstream_metric_on_a_metric_page_opens_it(page: Page, served: Served) -> None:
    page.goto(served.base_url + "/ui/metrics/chain.c")

    page.locator("#upstream a", has_text="chain.b").click()

    page.wait_for_url("**/ui/metrics/chain.b")
    assert page.locator("#downstream a").all_inner_texts() == ["chain.c"]
    assert page.locator("#upstream a").all_inner_texts() == ["chain.a"]
