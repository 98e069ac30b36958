"""Incidents, channels and freshness (SPEC §9, docs/ui.md) in a real browser: Chromium
(Playwright) against a real `serve` process. A final failure opens an incident that the
overview shows first and /ui/incidents lists, whose page links the run; a channel's "Send
test" posts to a real local receiver and the page says "delivered"; a freshness countdown
counts down live."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import psycopg
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.ports.incidents import ChannelSettings
from metrics_orchestrator.bootstrap import Container, bootstrap
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.incidents import ChannelFormat
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.infrastructure.settings import load_settings
from tests.acceptance.conftest import Dashboard, DashboardOn
from tests.factories import seed_run
from tests.integration.web_browser_helpers import (
    Served,
    screenshot_dir,
)
from tests.receiver import Receiver, running_receiver

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.slow
TIMEOUT_MS = 20_000
METRIC = "fx.gap"


@pytest.fixture
def refusals(page: Page) -> list[str]:
    """What the Content-Security-Policy refused on the page (nothing, or the test fails)."""
    refused: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", note)
    return refused


@pytest.fixture
def served(dashboard_on: DashboardOn, catalogs_dir: Path) -> Iterator[Dashboard]:
    with dashboard_on(catalogs_dir / "multi_dataset_catalog.yaml") as dashboard:
        yield dashboard


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as served:
        yield served


def _container(env: Mapping[str, str]) -> Container:
    """The use cases on the served database, in this process (the served `serve` runs no
    sweeper: this one decides the retries)."""
    return bootstrap(load_settings(env=env), database_url=env["DATABASE_URL"])


def _final_failure(env: Mapping[str, str], code: str) -> UUID:
    """A running run of `code`, allowed one attempt, fails; the sweeper gives it no retry."""
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        row = conn.execute(
            "UPDATE metrics SET max_attempts = 1 WHERE code = %s RETURNING id", (code,)
        ).fetchone()
        assert row is not None
        run_id = seed_run(conn, row[0], status=RunStatus.RUNNING, now=datetime.now(UTC))
    body = {
        "type": "metric_run_completed",
        "runId": str(run_id),
        "status": "FAILURE",
        "error": "division by zero",
    }
    with _container(env) as container:
        outcome = container.feedback.handle(
            decode_event(json.dumps(body)), source="test", received_at=container.clock.now()
        )
        assert outcome.status is EventStatus.PROCESSED
        assert container.sweeper.sweep_once().incidents.opened
    return run_id


def test_a_final_failure_is_the_overviews_first_row_and_its_page_links_the_run(
    page: Page,
    served: tuple[Served, dict[str, str]],
    refusals: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dashboard, env = served
    page.goto(f"{dashboard.base_url}/")
    expect(page.locator("#no-incidents")).to_have_text("No open incidents.")

    run_id = _final_failure(env, METRIC)
    page.reload()

    first = page.locator("main section").first
    expect(first.get_by_role("heading", name="Open incidents")).to_be_visible()
    row = first.locator('tr[data-kind="run_failed"]')
    expect(row).to_have_count(1)
    expect(row.get_by_role("link", name=METRIC)).to_have_attribute("href", f"/ui/metrics/{METRIC}")
    expect(row).to_contain_text("division by zero")
    expect(row.locator("td.count")).to_have_text("1")
    page.screenshot(
        path=str(screenshot_dir(tmp_path_factory) / "overview-incidents.png"), full_page=True
    )

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Incidents").click()
    page.wait_for_url("**/ui/incidents")
    listed = page.locator('#incidents-table tr[data-kind="run_failed"]')
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("open")
    listed.get_by_role("link", name=re.compile(r"^#\d+$")).click()

    page.wait_for_url(re.compile(r"/ui/incidents/\d+$"))
    expect(page.locator("#incident-subject")).to_have_text(METRIC)
    expect(page.locator("#incident-count")).to_have_text("1")
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "incident.png"), full_page=True)
    page.locator("#occurrences").get_by_role("link", name=f"run {run_id}").click()
    page.wait_for_url(f"**/ui/runs/{run_id}")
    expect(page.locator("#run-status")).to_contain_text("failed")
    assert refusals == []


def test_send_test_posts_to_a_real_receiver_and_the_page_says_delivered(
    page: Page,
    served: tuple[Served, dict[str, str]],
    receiver: Receiver,
    refusals: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dashboard, env = served
    settings = ChannelSettings(
        "ops", receiver.url, ChannelFormat.JSON, "browser-secret", None, ("fx.*",)
    )
    with _container(env) as container:
        container.notifications.configure([settings])

    page.goto(f"{dashboard.base_url}/ui/incidents")
    page.get_by_role("link", name="channels").first.click()
    page.wait_for_url("**/ui/channels")
    ops = page.locator('tr[data-channel="ops"]')
    # the URL's origin only: a webhook's path can be a secret too
    expect(ops).to_contain_text(receiver.url.removesuffix("/hook") + "/…")
    expect(ops).not_to_contain_text("/hook")
    expect(ops).to_contain_text("signed")
    expect(ops).to_contain_text("never tried")
    ops.get_by_role("button", name="Send test").click()

    page.wait_for_url("**/ui/channels")
    expect(page.locator(".notice")).to_contain_text("test notification to ops: delivered")
    expect(ops.locator("td.last-delivery .badge")).to_have_text("delivered")
    [posted] = receiver.received
    assert posted.document["type"] == "test"
    assert posted.document["channel"] == "ops"
    assert posted.headers["x-signature-256"].startswith("sha256=")
    assert "browser-secret" not in page.content()
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "channels.png"), full_page=True)
    assert refusals == []


def test_the_freshness_countdown_counts_down_live(
    page: Page, served: tuple[Served, dict[str, str]], refusals: list[str]
) -> None:
    dashboard, env = served
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        # never succeeded, registered 20 s ago, at most a minute of data age: due in 40 s
        conn.execute(
            "UPDATE metrics SET max_data_age = interval '1 minute',"
            " created_at = now() - interval '20 seconds'"
            " WHERE code = %s",
            (METRIC,),
        )

    page.goto(f"{dashboard.base_url}/ui/metrics/{METRIC}")

    block = page.locator("#freshness")
    expect(block.locator(".badge")).to_have_text("ok")
    countdown = block.locator(".due-countdown")
    expect(countdown).to_have_text(re.compile(r"^due in \d+ s$"))
    first = countdown.inner_text()
    # the script rewrites it every second from data-due, with no reload
    expect(countdown).not_to_have_text(first, timeout=5_000)
    expect(countdown).to_have_text(re.compile(r"^due in \d+ s$"))
    assert refusals == []
