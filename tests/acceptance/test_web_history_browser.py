"""History at a glance (docs/ui.md, "History") in a real browser: Chromium (Playwright) against a
real `serve` process. The grid is reached from the navigation, its cells are coloured by
outcome and named for a screen reader, the filters narrow it, a cell opens its run, and the
metrics list shows each metric's last run, last success and typical duration."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import psycopg
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from metrics_orchestrator.domain.model import RunStatus
from tests.acceptance.conftest import DashboardOn
from tests.factories import seed_run
from tests.integration.web_browser_helpers import (
    Served,
    screenshot_dir,
)

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.slow
TIMEOUT_MS = 20_000


@pytest.fixture
def served(dashboard_on: DashboardOn, catalogs_dir: Path) -> Iterator[tuple[Served, str]]:
    with dashboard_on(catalogs_dir / "multi_dataset_catalog.yaml") as (dashboard, env):
        yield dashboard, env["DATABASE_URL"]


def _seed_runs(database_url: str, code: str, outcomes: list[tuple[RunStatus, float]]) -> list[UUID]:
    """Runs of `code`, oldest first: (status, hours ago), each finished one 42 s long. The
    served process reads its own clock, so the times are relative to now."""
    now = datetime.now(UTC).replace(microsecond=0)
    ids = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT id FROM metrics WHERE code = %s", (code,)).fetchone()
        assert row is not None
        for status, hours_ago in outcomes:
            created = now - timedelta(hours=hours_ago)
            finished = status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)
            ids.append(
                seed_run(
                    conn,
                    row[0],
                    status=status,
                    now=created,
                    created_at=created,
                    started_at=created,
                    completed_at=created + timedelta(seconds=42) if finished else None,
                )
            )
    return ids


def _background(page: Page, selector: str) -> str:
    colour: str = page.locator(selector).first.evaluate("e => getComputedStyle(e).backgroundColor")
    return colour


def test_the_history_grid_at_a_glance(
    page: Page,
    served: tuple[Served, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dashboard, database_url = served
    failed, timed_out, succeeded = _seed_runs(
        database_url,
        "fx.gap",
        [(RunStatus.FAILED, 3), (RunStatus.TIMED_OUT, 2), (RunStatus.SUCCEEDED, 1)],
    )
    _seed_runs(
        database_url, "prices.real_wages", [(RunStatus.SUCCEEDED, 30), (RunStatus.RUNNING, 0.2)]
    )
    refused: list[str] = []

    def note_refusal(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", note_refusal)

    page.goto(f"{dashboard.base_url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="History").click()
    page.wait_for_url("**/ui/history")
    expect(page.get_by_role("heading", name="History")).to_be_visible()

    fx = page.locator('tr[data-metric="fx.gap"] a.cell')
    expect(fx).to_have_count(3)
    # oldest to newest, each named by what it says: status, start, duration
    expect(fx.nth(0)).to_have_class(re.compile(r"\bst-failed\b"))
    expect(fx.nth(2)).to_have_class(re.compile(r"\bst-succeeded\b"))
    expect(fx.nth(2)).to_have_attribute("href", f"/ui/runs/{succeeded}")
    named = page.get_by_role(
        "link", name=re.compile(r"^fx\.gap: timed out, started .*, took 42 s$")
    )
    expect(named).to_have_attribute("href", f"/ui/runs/{timed_out}")
    expect(fx.nth(1)).to_have_attribute("title", re.compile(r"^fx\.gap: timed out, started "))
    # outcomes are told apart by colour (the CSS loaded under the CSP, no inline style)
    ok, bad = _background(page, "a.cell.st-succeeded"), _background(page, "a.cell.st-failed")
    assert ok != bad
    assert "rgba(0, 0, 0, 0)" not in (ok, bad)
    running = page.locator('tr[data-metric="prices.real_wages"] a.cell.st-running')
    expect(running).to_have_attribute("aria-label", re.compile(r"running for 12 min( \d+ s)?$"))
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "history.png"), full_page=True)

    # only the metrics with a failure in the last day, whose code has "gap"
    page.get_by_label("Metric", exact=True).fill("gap")
    page.get_by_label("Only failing").check()
    page.get_by_label("Created in the last").select_option("1")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"/ui/history\?.*failing=yes"))
    expect(page.locator("#history-grid tbody tr")).to_have_count(1)
    expect(page.locator('tr[data-metric="fx.gap"] a.cell')).to_have_count(3)
    expect(page.get_by_label("Metric", exact=True)).to_have_value("gap")

    page.locator(f'a.cell[href="/ui/runs/{failed}"]').click()
    page.wait_for_url(f"**/ui/runs/{failed}")
    expect(page.locator("#run-status")).to_contain_text("failed")

    page.goto(f"{dashboard.base_url}/ui/metrics")
    wages = page.locator('tr[data-metric="prices.real_wages"]')
    expect(wages.locator("td.last-run .badge")).to_have_text("running")
    expect(wages.locator("td.last-success")).to_contain_text("ago")
    expect(wages.locator("td.duration")).to_have_text("42 s")
    expect(page.locator('tr[data-metric="fx.gap"] td.last-run .badge')).to_have_text("succeeded")
    assert refused == []
