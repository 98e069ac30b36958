"""The dashboard in a real browser: Chromium (Playwright) against a real `serve` process.

One `serve` (HTTP, real PostgreSQL, moto) runs for the module on the multi-dataset catalog;
each test drives the pages a person would, and saves a screenshot of each page (into a temporary
folder; `make screenshots` points them at docs/ui/).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from bench.catalog import CatalogShape, generate_catalog
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from metrics_orchestrator.domain.model import Dataset, Metric, MetricDependency
from metrics_orchestrator.domain.s3_locations import parse_s3_uri
from metrics_orchestrator.infrastructure.aws.provisioning import provision
from tests.conftest import drop_database, new_database
from tests.integration.intake_helpers import update_body
from tests.integration.messaging_helpers import load_catalog, service_env
from tests.integration.web_browser_helpers import (
    CHROMIUM_ARGS,
    Served,
    chromium_executable,
    screenshot_dir,
    served_dashboard,
)
from tests.integration.web_helpers import UNKNOWN_DATASET_BODY, expected_graph_nodes

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.slow
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = chromium_executable(playwright)
    chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    yield tab
    context.close()


@pytest.fixture(scope="module")
def module_env(
    postgres_server_url: str,
    template_database: str,
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
) -> Iterator[dict[str, str]]:
    database_url = new_database(postgres_server_url, template_database)
    topology = provision(
        sns_client, sqs_client, prefix=f"web{uuid.uuid4().hex[:10]}", fifo=False, raw_delivery=True
    )
    yield service_env(database_url, aws_endpoint_url, topology)
    drop_database(postgres_server_url, database_url)


@pytest.fixture(scope="module")
def served(
    module_env: dict[str, str], catalogs_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    load_catalog(module_env, catalogs_dir / "multi_dataset_catalog.yaml")
    with served_dashboard(module_env, tmp_path_factory.mktemp("web")) as dashboard:
        # fx_daily v1: fx.gap queues, reserves.at_parallel waits for reserves_daily
        status, body = dashboard.post("/events/projection-update", update_body("fx_daily", "v1"))
        assert status == 200, body
        yield dashboard


SCREENSHOTS: dict[str, Path] = {}  # "folder": where `shoot` writes, set once for the module


@pytest.fixture(scope="module", autouse=True)
def _screenshots(tmp_path_factory: pytest.TempPathFactory) -> None:
    SCREENSHOTS["folder"] = screenshot_dir(tmp_path_factory)


def shoot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS["folder"] / f"{name}.png"), full_page=True)


def newest_run(served: Served, metric: str, status: str | None = None) -> dict[str, Any]:
    query = f"/runs?metric={metric}" + (f"&status={status}" if status else "")
    items: list[dict[str, Any]] = served.get(query)["items"]
    assert items, f"no run of {metric}"
    return items[0]


def test_serve_prints_the_dashboard_url(served: Served) -> None:
    assert f"dashboard: {served.base_url}/" in served.log.read_text(encoding="utf-8")


def test_open_the_overview_and_follow_a_run_to_its_page(page: Page, served: Served) -> None:
    page.goto(served.base_url + "/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("#pending-count")).to_have_text(re.compile(r"\d+"))
    page.wait_for_function(
        "(() => { const c = document.querySelector('canvas[data-chart=hourly]');"
        " return window.Chart.getChart(c) && c.getBoundingClientRect().width > 400; })()"
    )
    shoot(page, "overview")

    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/runs$"))
    shoot(page, "runs")
    run = newest_run(served, "fx.gap")
    page.locator(f'tr[data-run-id="{run["id"]}"] a').first.click()

    expect(page).to_have_url(re.compile(f"/ui/runs/{run['id']}$"))
    expect(page.locator("#timeline")).to_contain_text("queued")
    expect(page.locator("#lineage")).to_contain_text("datasets/fx_daily/versions/v1/manifest.json")
    expect(page.locator("[data-output=none]")).to_have_text("no output")
    shoot(page, "run")


def test_cancel_a_run_and_see_the_status_change_live_in_the_list(
    browser: Browser, page: Page, served: Served
) -> None:
    status, body = served.post("/metrics/fx.gap/runs", {})
    assert status == 201, body
    run_id = body["id"]
    page.goto(served.base_url + "/ui/runs")
    row_status = page.locator(f'tr[data-run-id="{run_id}"] [data-status]')
    expect(row_status).to_have_text("queued")

    other = browser.new_page()
    other.goto(f"{served.base_url}/ui/runs/{run_id}")
    other.get_by_role("button", name="Cancel").click()
    expect(other.locator(".notice")).to_have_text("run canceled")
    expect(other.get_by_role("button", name="Cancel")).to_be_disabled()
    other.close()

    # no reload: the list polls its rows
    expect(row_status).to_have_text("canceled", timeout=TIMEOUT_MS)


def test_an_open_run_page_follows_the_run_until_it_ends(page: Page, served: Served) -> None:
    status, body = served.post("/metrics/fx.gap/runs", {})
    assert status == 201, body
    page.goto(f"{served.base_url}/ui/runs/{body['id']}")
    expect(page.locator("#run-status [data-status]")).to_have_text("queued")

    status, _ = served.post(f"/runs/{body['id']}/cancel", {"reason": "from the test"})
    assert status == 200

    expect(page.locator("#run-status [data-status]")).to_have_text("canceled")
    expect(page.locator("#timeline")).to_contain_text("completed (canceled)")
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()


def test_a_run_page_shows_the_log_its_worker_wrote(
    page: Page, served: Served, s3_client: S3Client
) -> None:
    status, body = served.post("/metrics/fx.gap/runs", {})
    assert status == 201, body
    run = served.get(f"/runs/{body['id']}")
    page.goto(f"{served.base_url}/ui/runs/{run['id']}")
    # queued, and no worker has written anything yet
    expect(page.locator("#run-log-none")).to_contain_text("no log yet")

    base = parse_s3_uri(run["request_payload"]["output"]["basePath"])
    with contextlib.suppress(s3_client.exceptions.BucketAlreadyOwnedByYou):
        s3_client.create_bucket(Bucket=base.bucket)
    source = "s3://ingestor-datasets/datasets/fx_daily"
    lines = "".join(
        f"2026-12-05T03:00:0{n}.000Z {line}\n"
        for n, line in enumerate(
            [
                "INFO    run started metric_code=fx.gap",
                'INFO    expression (series_math) canonical={"op":"ratio",'
                '"left":{"series_code":"FX_PARALLEL_D"},"right":{"series_code":"FX_OFFICIAL_D"}}',
                "INFO    input fx_daily: 1 file to read"
                f" manifest={source}/versions/v1/manifest.json",
                f"INFO    read {source}/projections/FX_PARALLEL_D/year=2024/month=01/data.parquet"
                " series=FX_PARALLEL_D rows=23",
                "WARNING run failed status=FAILURE error=EXPRESSION_EVAL_ERROR: the value column"
                " is <str>, not a number retryable=True",
            ]
        )
    )
    key = base.child(f"runs/{run['id']}-{run['attempt']}.log").key
    s3_client.put_object(Bucket=base.bucket, Key=key, Body=lines.encode())
    page.reload()

    log = page.locator("#run-log")
    expect(log).to_contain_text("INFO    run started metric_code=fx.gap")
    expect(log).to_contain_text("the value column is <str>, not a number")  # text, not markup
    expect(page.locator("#run-log str")).to_have_count(0)
    page.locator("#log-h").scroll_into_view_if_needed()
    shoot(page, "run-log")
    page.get_by_role("link", name="the log as JSON", exact=True).click()
    expect(page.locator("body")).to_contain_text('"found":true')


def test_follow_why_not_yet_for_a_waiting_metric(page: Page, served: Served) -> None:
    page.goto(served.base_url + "/ui/metrics")
    row = page.locator('tr[data-metric="reserves.at_parallel"]')
    expect(row.locator("[data-state]")).to_have_text("waiting")
    expect(row.locator("[data-state]")).to_have_class(re.compile(r"\bneutral\b"))  # not amber
    expect(row.locator(".state-reason")).to_have_text(
        "first run waiting for reserves_daily (no version yet)"
    )
    shoot(page, "metrics")

    page.get_by_role("link", name="reserves.at_parallel", exact=True).click()

    expect(page.get_by_role("heading", name="Why not yet")).to_be_visible()
    expect(page.locator("#explanation")).to_contain_text("reserves_daily has no update yet")
    expect(page.locator(".countdown").first).to_contain_text("stale in")
    shoot(page, "metric")


def test_a_dataset_page_shows_versions_and_the_impact_dry_run(page: Page, served: Served) -> None:
    page.goto(served.base_url + "/ui/datasets")
    page.get_by_role("link", name="reserves_daily", exact=True).click()

    expect(page.locator("#impact-summary")).to_contain_text("Would run")
    expect(page.locator("#series")).to_have_text("RESERVES_USD_D")
    page.goto(served.base_url + "/ui/datasets/fx_daily")
    expect(page.locator("#versions")).to_contain_text("versions/v1/manifest.json")
    shoot(page, "dataset")


def test_replay_a_rejected_event_from_the_inbox(page: Page, served: Served) -> None:
    status, _problem = served.post("/events/projection-update", UNKNOWN_DATASET_BODY)
    assert status == 422
    page.goto(served.base_url + "/ui/events")
    row = page.locator("tr[data-event-key^='not_in_catalog:']")
    expect(row.locator(".reason")).to_contain_text("unknown dataset")
    shoot(page, "events")
    # at 800 px the inbox fits: Reason and Replay are on screen, no sideways scroll
    page.set_viewport_size({"width": 800, "height": 900})
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    expect(row.get_by_role("button", name="Replay")).to_be_in_viewport()
    status, body = served.post(
        "/datasets", {"id": "not_in_catalog", "bucket": "ingestor-datasets", "series": []}
    )
    assert status == 200, body

    row.get_by_role("button", name="Replay").click()

    expect(page.locator(".notice")).to_contain_text("processed")
    expect(row).to_contain_text("replayed")


def test_dismiss_a_rejected_event_from_the_inbox_with_a_reason(page: Page, served: Served) -> None:
    # a dataset of its own: the replay test registers not_in_catalog in this module's server
    body = UNKNOWN_DATASET_BODY.replace("not_in_catalog", "never_in_catalog")
    status, _problem = served.post("/events/projection-update", body)
    assert status == 422
    page.goto(served.base_url + "/ui/events")
    row = page.locator("tr[data-event-key^='never_in_catalog:']")

    row.get_by_label("Reason for dismissing").fill("never a valid dataset")
    row.get_by_role("button", name="Dismiss").click()

    expect(page.locator(".notice")).to_contain_text("dismissed")
    expect(page.locator("tr[data-event-key^='never_in_catalog:']")).to_have_count(0)


def test_the_graph_has_one_node_per_catalog_entry(page: Page, served: Served) -> None:
    page.goto(served.base_url + "/ui/graph")
    page.wait_for_selector("#graph[data-rendered]")

    rendered = page.evaluate("window.moGraph.nodes().length")

    assert rendered == expected_graph_nodes(*_catalog(served))
    # every label sits under its node and no label overlaps another node or label
    assert page.evaluate(OVERLAPPING_LABELS) == []
    # and no edge crosses a label
    assert page.evaluate(LABELS_CROSSED_BY_EDGES) == []
    shoot(page, "graph")


# Pairs of nodes whose boxes, labels included, intersect in the drawn graph.
OVERLAPPING_LABELS = """(() => {
  const nodes = window.moGraph.nodes().toArray();
  const box = (n) => n.boundingBox({ includeLabels: true, includeOverlays: false });
  const hit = (a, b) => a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2;
  const pairs = [];
  nodes.forEach((a, i) => nodes.slice(i + 1).forEach((b) => {
    if (hit(box(a), box(b))) pairs.push([a.id(), b.id()]);
  }));
  return pairs;
})()"""

# (node, edge) pairs where the edge, as drawn (its bends included), passes through the label.
LABELS_CROSSED_BY_EDGES = """(() => {
  const crossed = [];
  const path = (e) => [e.sourceEndpoint(), ...(e.segmentPoints() || []), e.targetEndpoint()];
  window.moGraph.nodes().forEach((n) => {
    const b = n.boundingBox({ includeNodes: false, includeEdges: false, includeLabels: true });
    window.moGraph.edges().forEach((e) => {
      const points = path(e);
      for (let k = 1; k < points.length; k++) {
        const s = points[k - 1], t = points[k];
        for (let i = 0; i <= 50; i++) {
          const x = s.x + (t.x - s.x) * i / 50, y = s.y + (t.y - s.y) * i / 50;
          if (x > b.x1 && x < b.x2 && y > b.y1 && y < b.y2) {
            crossed.push([n.id(), e.id()]);
            return;
          }
        }
      }
    });
  });
  return crossed;
})()"""

NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


def test_first_page_load_has_no_404_and_the_status_tiles_share_a_row(
    browser: Browser, served: Served
) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    missing: list[str] = []
    tab.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    tab.goto(served.base_url + "/")
    tab.wait_for_load_state("networkidle")
    # what a browser asks for whatever the page says
    icon = tab.request.get(served.base_url + "/favicon.ico")
    tops = tab.evaluate(
        "[...document.querySelectorAll('section[aria-labelledby=now-h] .tiles li')]"
        ".map((li) => Math.round(li.getBoundingClientRect().top))"
    )
    context.close()

    assert missing == []
    assert icon.status == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert len(tops) == 8
    assert len(set(tops)) == 1, f"status tiles wrap onto {len(set(tops))} rows: {tops}"


def test_api_docs_render_offline(page: Page, served: Served) -> None:
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(served.base_url) else None,
    )
    page.goto(served.base_url + "/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("metrics-orchestrator")
    assert outside == []


@pytest.mark.parametrize(
    "path", ["/", "/ui/runs", "/ui/metrics/reserves.at_parallel", "/ui/graph", "/docs"]
)
def test_no_page_breaks_the_content_security_policy(page: Page, served: Served, path: str) -> None:
    """Issue 20 item 4: the policy allows this server's files only; nothing the pages or the
    vendored libraries do inline may be refused (a refusal is logged on the console)."""
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    response = page.goto(served.base_url + path)
    assert response is not None
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.wait_for_load_state("networkidle")
    if path == "/docs":
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("metrics-orchestrator")
    if path == "/ui/graph":
        expect(page.locator("#graph canvas").first).to_be_attached()

    assert refused == []


def test_the_graph_of_the_500_metric_benchmark_catalog(
    page: Page,
    postgres_server_url: str,
    template_database: str,
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
    tmp_path: Path,
) -> None:
    database_url = new_database(postgres_server_url, template_database)
    topology = provision(
        sns_client, sqs_client, prefix=f"web{uuid.uuid4().hex[:10]}", fifo=False, raw_delivery=True
    )
    env = service_env(database_url, aws_endpoint_url, topology)
    catalog = tmp_path / "bench_catalog.yaml"
    catalog.write_text(json.dumps(generate_catalog(CatalogShape(datasets=100, fan_out=9))))
    load_catalog(env, catalog)
    try:
        with served_dashboard(env, tmp_path) as big:
            datasets, metrics = _catalog(big)
            assert len(metrics) == 500
            page.goto(big.base_url + "/ui/graph")
            page.wait_for_selector("#graph[data-rendered]", timeout=90_000)

            assert page.evaluate("window.moGraph.nodes().length") == expected_graph_nodes(
                datasets, metrics
            )
            layout_ms = int(page.get_attribute("#graph", "data-layout-ms") or "0")
            print(f"500-metric graph drawn in {layout_ms} ms")
            shoot(page, "graph-500")
            page.goto(big.base_url + "/ui/graph?dataset=bench_ds_0007")
            page.wait_for_selector("#graph[data-rendered]")
            shoot(page, "graph-filtered")
    finally:
        drop_database(postgres_server_url, database_url)


def _catalog(served: Served) -> tuple[list[Dataset], list[Metric]]:
    """The catalog as the API lists it, as domain objects for `expected_graph_nodes`."""
    datasets = [
        Dataset(id=d["id"], series=tuple(d["series"]))
        for d in served.get("/datasets?limit=500")["items"]
    ]
    metrics = [
        Metric(
            id=m["id"],
            code=m["code"],
            expression_type=m["expression_type"],
            expression_json={},
            required_days=m["required_days"],
            dependencies=tuple(
                MetricDependency(dep["series_code"], dep["dataset_id"]) for dep in m["dependencies"]
            ),
        )
        for m in served.get("/metrics?limit=500")["items"]
    ]
    return datasets, metrics
