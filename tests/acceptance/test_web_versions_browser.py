"""Versions at the centre and finding things (issue 25 items 3 and 6) in a real browser:
Chromium (Playwright) against a real `serve` process (real PostgreSQL, moto).

fx_daily v1 arrives, chain.a runs and succeeds: its output is a version of `metric:chain.a`,
which chain.b's run consumes. The header's search box goes to a metric and to a run; a run's
lineage links to the version it consumed, whose page lists the consuming run and what the runs
before it produced; the overview refreshes itself, chart included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING
from uuid import UUID

import psycopg
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.bootstrap import bootstrap
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.infrastructure.settings import load_settings
from tests.acceptance.conftest import Dashboard, DashboardOn
from tests.integration.intake_helpers import update_body
from tests.integration.metric_graph_helpers import chain_catalog
from tests.integration.web_browser_helpers import (
    Served,
    screenshot_dir,
)

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.slow
TIMEOUT_MS = 20_000
# the overview polls every 5 s: a change shows within two polls
OVERVIEW_TIMEOUT_MS = 12_000
UPSTREAM, DOWNSTREAM = "chain.a", "chain.b"


@pytest.fixture
def served(dashboard_on: DashboardOn) -> Iterator[Dashboard]:
    with dashboard_on(chain_catalog()) as dashboard:
        yield dashboard


def _queued_run(database_url: str, code: str) -> UUID:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT r.id FROM metric_runs AS r JOIN metrics AS m ON m.id = r.metric_id"
            " WHERE m.code = %s AND r.status = 'queued'",
            (code,),
        ).fetchone()
    assert row is not None, f"no queued run of {code}"
    run_id: UUID = row[0]
    return run_id


def _succeed(env: Mapping[str, str], run_id: UUID, code: str) -> None:
    """What a worker reports once the dispatcher sent the request (this `serve` runs no
    dispatcher, so the run is marked dispatched as the dispatcher would)."""
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "UPDATE metric_runs SET status = 'dispatched', dispatched_at = now()"
            " WHERE id = %s AND status = 'queued'",
            (run_id,),
        )
    version = f"v-{run_id.hex[:8]}"
    body = {
        "type": "metric_run_completed",
        "runId": str(run_id),
        "status": "SUCCESS",
        "outputManifest": f"s3://metrics-output/metrics/{code}/{version}/manifest.json",
        "versionTs": version,
    }
    settings = load_settings(env=env)
    with bootstrap(settings, database_url=env["DATABASE_URL"]) as container:
        outcome = container.feedback.handle(
            decode_event(json.dumps(body)), source="test", received_at=container.clock.now()
        )
    assert outcome.status is EventStatus.PROCESSED


def _upstream_ran(dashboard: Served, env: Mapping[str, str]) -> tuple[UUID, UUID]:
    """fx_daily v1 arrives and chain.a succeeds: chain.a's run and chain.b's queued run."""
    status, _ = dashboard.post("/events/projection-update", update_body("fx_daily", "v1"))
    assert status == 200
    upstream = _queued_run(env["DATABASE_URL"], UPSTREAM)
    _succeed(env, upstream, UPSTREAM)
    return upstream, _queued_run(env["DATABASE_URL"], DOWNSTREAM)


def _search(page: Page, text: str) -> None:
    box = page.get_by_role("searchbox", name="Metric code, dataset id, run id or event key")
    box.fill(text)
    box.press("Enter")


def test_search_goes_to_a_metric_and_to_a_run(
    page: Page, served: tuple[Served, dict[str, str]]
) -> None:
    dashboard, env = served
    _upstream, downstream = _upstream_ran(dashboard, env)
    page.goto(f"{dashboard.base_url}/ui/datasets")

    _search(page, UPSTREAM)
    page.wait_for_url(f"**/ui/metrics/{UPSTREAM}")
    expect(page.locator("h1")).to_contain_text(UPSTREAM)

    _search(page, str(downstream)[:8])
    page.wait_for_url(f"**/ui/runs/{downstream}")
    expect(page.locator("h1")).to_contain_text(str(downstream))

    _search(page, "no.such.thing")
    page.wait_for_url("**/ui/search?q=no.such.thing")
    expect(page.locator("#search-summary")).to_contain_text("Nothing is named")


def test_a_run_input_leads_to_its_version_which_lists_the_consuming_runs(
    page: Page,
    served: tuple[Served, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dashboard, env = served
    upstream, downstream = _upstream_ran(dashboard, env)
    page.goto(f"{dashboard.base_url}/ui/runs/{downstream}")

    page.locator(f'#lineage tr:has(a:text-is("metric:{UPSTREAM}")) a.version-link').click()

    page.wait_for_url(f"**/ui/datasets/metric*{UPSTREAM}/versions/*")
    expect(page.locator("#version-producer")).to_contain_text(UPSTREAM)
    consumer = page.locator(f'#consumers tr[data-run-id="{downstream}"]')
    expect(consumer).to_contain_text(DOWNSTREAM)
    expect(consumer).to_contain_text("queued")
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "version.png"), full_page=True)

    # back up the chain: the producing run consumed fx_daily v1, whose version page says
    # what that run produced: this very version
    output_url = page.url
    page.locator("#version-producer a", has_text="run").click()
    page.wait_for_url(f"**/ui/runs/{upstream}")
    page.locator('#lineage tr:has(a:text-is("fx_daily")) a.version-link').click()
    page.wait_for_url("**/ui/datasets/fx_daily/versions/*")
    page.locator(f'#consumers tr[data-run-id="{upstream}"] td.produced a').click()
    page.wait_for_url(output_url)


def test_the_overview_refreshes_itself(page: Page, served: tuple[Served, dict[str, str]]) -> None:
    dashboard, _env = served
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if _is_error(m) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{dashboard.base_url}/")
    queued = page.locator('a[data-count="queued"] strong')
    expect(queued).to_have_text("0")

    status, _ = dashboard.post("/events/projection-update", update_body("fx_daily", "v1"))
    assert status == 200

    expect(queued).to_have_text("1", timeout=OVERVIEW_TIMEOUT_MS)
    # the 24 h chart came with the swapped part, and was drawn (a Chart.js instance on it)
    _expect_chart_drawn(page)
    # a second swap replaces a drawn chart: the old one is destroyed, the new one drawn
    status, _ = dashboard.post("/events/projection-update", update_body("fx_daily", "v2"))
    assert status == 200
    expect(queued).to_have_text("2", timeout=OVERVIEW_TIMEOUT_MS)
    _expect_chart_drawn(page)
    assert errors == []


def _expect_chart_drawn(page: Page) -> None:
    expect(page.locator("canvas.chart[data-chart=hourly]")).to_have_count(1)
    page.wait_for_function("() => !!window.Chart.getChart(document.querySelector('canvas.chart'))")


def _is_error(message: ConsoleMessage) -> bool:
    return message.type == "error"
