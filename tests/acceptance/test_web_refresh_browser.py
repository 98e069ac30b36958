"""Refreshing a stale metric (SPEC §8) in a real browser: Chromium (Playwright) against a real
`serve` process. chain.a succeeds, its definition changes, its page says it is stale and why,
and clicking "Refresh" queues a manual run on its freshest inputs."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING
from uuid import UUID

import psycopg
import pytest
from playwright.sync_api import Page, expect

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
METRIC = "chain.a"


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


def _succeed(env: Mapping[str, str], run_id: UUID) -> None:
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
        "outputManifest": f"s3://metrics-output/metrics/{METRIC}/{version}/manifest.json",
        "versionTs": version,
    }
    settings = load_settings(env=env)
    with bootstrap(settings, database_url=env["DATABASE_URL"]) as container:
        outcome = container.feedback.handle(
            decode_event(json.dumps(body)), source="test", received_at=container.clock.now()
        )
    assert outcome.status is EventStatus.PROCESSED


def test_refresh_on_a_stale_metric_queues_its_run(
    page: Page,
    served: tuple[Served, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dashboard, env = served
    status, _ = dashboard.post("/events/projection-update", update_body("fx_daily", "v1"))
    assert status == 200
    first = _queued_run(env["DATABASE_URL"], METRIC)
    _succeed(env, first)
    changed = next(m for m in chain_catalog()["metrics"] if m["code"] == METRIC)
    changed["expression"] = {**changed["expression"], "window": 3}
    status, body = dashboard.post("/metrics", changed)
    assert status == 200, body

    page.goto(f"{dashboard.base_url}/ui/metrics/{METRIC}")
    expect(page.locator("#staleness .badge.stale")).to_have_text("stale")
    expect(page.locator("#staleness")).to_contain_text("definition changed")
    expect(page.locator("#data-time")).to_contain_text("data")
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "metric-stale.png"), full_page=True)
    page.get_by_role("button", name="Refresh", exact=True).click()

    page.wait_for_url("**/ui/runs/*")
    expect(page.locator(".notice")).to_contain_text("manual run queued")
    expect(page.locator("#run-status")).to_contain_text("queued")
    expect(page.get_by_text("manual, attempt 1")).to_be_visible()
    queued = _queued_run(env["DATABASE_URL"], METRIC)
    assert page.url.endswith(f"/ui/runs/{queued}")
    assert queued != first
