"""A metric's state (docs/ui.md) from real runs: the same word and reason in the API and the pages.

Runs move through the real use cases (intake, feedback events through the router, the sweeper);
only the dispatcher's publish is stood in for by marking a run dispatched, as it needs SNS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from metrics_orchestrator.application.catalog_spec import MetricSettings
from tests.integration.http_helpers import Api, running_api
from tests.integration.web_helpers import page, run_id_of
from tests.support import MutableClock


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        yield api


def _dispatch(api: Api, run_id: str) -> None:
    """What the dispatcher does after publishing (it needs SNS, which these tests do not run)."""
    (changed,) = api.rows(
        "UPDATE metric_runs SET status = 'dispatched', dispatched_at = %s "
        "WHERE id = %s AND status = 'queued' RETURNING id",
        api.clock.now(),
        run_id,
    )
    assert changed


def _complete(api: Api, run_id: str, *, ok: bool = True, error: str = "") -> None:
    body: dict[str, Any] = {"type": "metric_run_completed", "runId": run_id}
    body |= {"status": "SUCCESS", "rowCount": 3} if ok else {"status": "FAILURE", "error": error}
    _dispatch(api, run_id)
    routed = api.container.router.handle(json.dumps(body), source="test")
    assert routed.status.value == "processed", routed


def _state(api: Api, code: str) -> tuple[str, str]:
    """The state and reason of GET /metrics/{code}, checked against the list and both pages."""
    one = api.client.get(f"/metrics/{code}").json()
    listed = {m["code"]: m for m in api.client.get("/metrics").json()["items"]}[code]
    assert (listed["state"], listed["state_reason"]) == (one["state"], one["state_reason"])
    state, reason = one["state"], one["state_reason"]
    row = re.search(rf'data-metric="{re.escape(code)}">.*?</tr>', page(api, "/ui/metrics"), re.S)
    assert row is not None
    assert f'data-state="{state}"' in row.group(0)
    assert reason in row.group(0)
    metric_page = page(api, f"/ui/metrics/{code}")
    assert f'data-state="{state}"' in metric_page
    assert f'<p id="state-reason" class="state-reason">{reason}</p>' in metric_page
    return state, reason


def test_a_metric_that_never_ran_is_waiting_for_its_missing_input(api: Api) -> None:
    api.send_update("fx_daily", "v1")

    assert _state(api, "reserves.at_parallel") == (
        "waiting",
        "first run waiting for reserves_daily (no version yet)",
    )
    assert _state(api, "prices.real_wages")[0] == "waiting"


def test_a_queued_run_is_running_and_its_success_makes_the_metric_healthy(api: Api) -> None:
    api.send_update("fx_daily", "v1")
    assert _state(api, "fx.gap") == ("running", "a run is queued")

    _complete(api, run_id_of(api, "fx.gap"))

    state, reason = _state(api, "fx.gap")
    assert state == "healthy"
    assert reason.startswith("last run succeeded at 2025-11-11 12:00:00 UTC")


def test_an_all_new_metric_collecting_its_next_inputs_stays_healthy(api: Api) -> None:
    # reserves.at_parallel runs, then one input gets a new version: normal coalescing, no warning
    api.send_update("fx_daily", "v1")
    api.send_update("reserves_daily", "r1")
    _complete(api, run_id_of(api, "reserves.at_parallel", "queued"))
    api.send_update("fx_daily", "v2")

    state, reason = _state(api, "reserves.at_parallel")
    assert state == "healthy"
    assert reason.endswith("next run has new versions of fx_daily, collecting reserves_daily")

    # three days on reserves_daily r1 is stale (2-day window): now the metric waits for it
    api.clock.advance(timedelta(days=3))
    api.send_update("fx_daily", "v3")
    state, reason = _state(api, "reserves.at_parallel")
    assert state == "waiting"
    assert reason.startswith("next run waiting for reserves_daily (stale since 2025-11-13")


def test_failures_are_failing_until_a_retry_runs_and_with_no_attempt_left(api: Api) -> None:
    # reserves.real_pesos (max_attempts 2): its run and its retry both fail
    for dataset, version in (
        ("fx_daily", "v1"),
        ("prices_monthly", "p1"),
        ("reserves_daily", "r1"),
    ):
        api.send_update(dataset, version)
    first = run_id_of(api, "reserves.real_pesos", "queued")
    _complete(api, first, ok=False, error="division by zero")
    assert _state(api, "reserves.real_pesos") == (
        "failing",
        "attempt 1 of 2 failed at 2025-11-11 12:00:00 UTC: division by zero; "
        "a retry is being decided",
    )

    api.container.sweeper.sweep_once()
    state, reason = _state(api, "reserves.real_pesos")
    assert state == "failing"
    assert reason.endswith("; attempt 2 scheduled for 2025-11-11 12:00:30 UTC")

    api.clock.advance(timedelta(seconds=31))
    assert _state(api, "reserves.real_pesos") == (
        "running",
        "attempt 2 of 2 queued (a retry of attempt 1)",
    )
    _complete(api, run_id_of(api, "reserves.real_pesos", "queued"), ok=False, error="again")
    assert _state(api, "reserves.real_pesos") == (
        "failing",
        "attempt 2 of 2 failed at 2025-11-11 12:00:31 UTC: again; no attempt left",
    )


def test_a_disabled_metric_is_disabled(api: Api) -> None:
    api.container.catalog.update_metric("prices.real_wages", MetricSettings(enabled=False))

    assert _state(api, "prices.real_wages") == (
        "disabled",
        "disabled: it gets no runs until enabled",
    )


def test_the_overview_counts_metrics_by_state_and_the_list_filters_by_it(api: Api) -> None:
    api.send_update("fx_daily", "v1")
    api.container.catalog.update_metric("prices.real_wages", MetricSettings(enabled=False))

    overview = page(api, "/")
    counts = dict(re.findall(r'data-state-count="(\w+)">\s*<strong>(\d+)</strong>', overview))
    assert counts == {
        "healthy": "0",
        "waiting": "3",
        "running": "1",
        "failing": "0",
        "disabled": "1",
    }

    waiting = page(api, "/ui/metrics?state=waiting")
    assert re.findall(r'<tr data-metric="([^"]+)"', waiting) == [
        "reserves.at_parallel",
        "reserves.real_pesos",
        "reserves.sma_20",
    ]
    assert "unknown metric state" in page(api, "/ui/metrics?state=bogus", status=422)


def test_graph_nodes_are_coloured_by_state(api: Api) -> None:
    api.send_update("fx_daily", "v1")

    html = page(api, "/ui/graph")

    assert '"id": "metric:fx.gap", "label": "fx.gap", "kind": "metric"' in html
    assert re.search(r'"id": "metric:fx.gap"[^}]*"state": "running"', html)
    assert re.search(r'"id": "metric:reserves.sma_20"[^}]*"state": "waiting"', html)


def test_the_metric_state_of_an_unknown_metric_is_a_404(api: Api) -> None:
    assert api.client.get("/metrics/no.such.metric").status_code == 404
