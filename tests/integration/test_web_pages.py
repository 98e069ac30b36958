"""The web dashboard at the HTML level: every page renders from the real services (SPEC §6.3).

The app runs over a real database on a controllable clock; each test checks a page's status
and the content a person comes for, so a broken template fails here without a browser.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from bench.catalog import CatalogShape, generate_catalog

from metrics_orchestrator.application.ports.events import EventStatus
from tests.integration.http_helpers import Api, running_api
from tests.integration.web_helpers import (
    SAME_ORIGIN,
    expected_graph_nodes,
    graph_node_count,
    page,
    run_id_of,
    seeded_api,
)
from tests.support import MutableClock


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    with seeded_api(database_url, catalogs_dir) as api:
        yield api


# --- overview ------------------------------------------------------------------------------


def test_every_page_has_an_icon_and_favicon_ico_is_served(api: Api) -> None:
    assert '<link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml">' in page(api, "/")
    icon = api.client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")


def test_the_overview_counts_runs_by_status_and_links_each_number(api: Api) -> None:
    html = page(api, "/")

    assert "<h1>Overview</h1>" in html
    pending = re.search(r'id="pending-count">(\d+)<', html)
    assert pending is not None
    assert pending.group(1) == "2"
    assert re.search(
        r'href="/ui/runs\?status=queued" data-count="queued">\s*<strong>1</strong>', html
    )
    assert re.search(r'href="/ui/events" id="rejected-count">1<', html)
    assert 'data-chart="hourly"' in html
    assert "oldest waiting since 2025-11-11 12:00:00 UTC" in html


def test_the_overview_charts_the_last_24_hours_by_hour_and_status(api: Api) -> None:
    api.clock.advance(timedelta(hours=2))
    # at_parallel's 12:00 pending run queues; reserves.sma_20 queues a run created at 14:00
    api.send_update("reserves_daily", "r1")

    snapshot = api.container.queries.run_overview()
    html = page(api, "/")

    hourly = {(row.hour.hour, str(row.status)): row.count for row in snapshot.last_24h}
    assert hourly == {(12, "queued"): 2, (12, "pending_dependencies"): 1, (14, "queued"): 1}
    assert '<th scope="row">12:00</th><td>1</td><td>2</td>' in html
    assert '<th scope="row">14:00</th><td>0</td><td>1</td>' in html
    api.clock.advance(timedelta(hours=25))
    assert "No runs in the last 24 hours." in page(api, "/")


def test_the_rejected_count_drops_once_the_event_is_replayed(api: Api) -> None:
    api.container.catalog.load_catalog(
        {"datasets": [{"id": "not_in_catalog", "bucket": "ingestor-datasets", "series": []}]}
    )
    (rejected,) = api.container.queries.list_events(status=EventStatus.REJECTED).events
    api.container.router.replay(rejected.event_key)

    assert re.search(r'href="/ui/events" id="rejected-count">0<', page(api, "/"))


def test_the_overview_lists_recent_failures(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap", "queued")
    api.rows(
        "UPDATE metric_runs SET status = 'failed', error = 'division by zero', "
        "completed_at = now() WHERE id = %s RETURNING id",
        run_id,
    )

    html = page(api, "/")

    assert f'href="/ui/runs/{run_id}"' in html
    assert "division by zero" in html


# --- runs ----------------------------------------------------------------------------------


def test_the_runs_list_shows_runs_and_polls_for_live_updates(api: Api) -> None:
    html = page(api, "/ui/runs")

    assert "fx.gap" in html
    assert "reserves.at_parallel" in html
    assert 'hx-get="/ui/runs/rows?"' in html
    assert 'hx-trigger="every 2s"' in html


def test_the_runs_list_filters_by_status_and_metric(api: Api) -> None:
    by_status = page(api, "/ui/runs?status=pending_dependencies")
    by_metric = page(api, "/ui/runs?metric=fx.gap")

    assert "reserves.at_parallel" in by_status
    assert ">fx.gap<" not in by_status
    assert ">fx.gap<" in by_metric
    assert "reserves.at_parallel" not in by_metric
    assert 'hx-get="/ui/runs/rows?metric=fx.gap"' in by_metric


def test_a_bad_filter_is_explained_not_a_500(api: Api) -> None:
    html = page(api, "/ui/runs?since=yesterday&status=nope")

    assert "unknown status" in html
    assert "is not a date and time" in html


def test_the_runs_list_is_keyset_paged(api: Api) -> None:
    api.send_update("reserves_daily", "r1")
    for _ in range(55):
        api.container.intake.request_manual_run("fx.gap")

    first = page(api, "/ui/runs")
    next_url = re.search(r'href="(/ui/runs\?cursor=[^"]+)" rel="next"', first)
    assert next_url is not None
    second = page(api, next_url.group(1).replace("&amp;", "&"))

    first_ids = set(re.findall(r'data-run-id="([^"]+)"', first))
    second_ids = set(re.findall(r'data-run-id="([^"]+)"', second))
    assert len(first_ids) == 50
    assert second_ids
    assert not first_ids & second_ids
    every_run = api.client.get("/runs", params={"limit": 500}).json()["items"]
    assert first_ids | second_ids == {r["id"] for r in every_run}
    assert "hx-get" not in second  # only the newest page is live
    assert "Newest runs" in second


def test_the_rows_partial_is_the_first_page_only(api: Api) -> None:
    html = page(api, "/ui/runs/rows?status=queued")

    assert html.startswith('\n<tbody id="run-rows"') or html.lstrip().startswith("<tbody")
    assert "fx.gap" in html
    assert "reserves.at_parallel" not in html
    assert "<html" not in html


def test_a_run_id_prefix_goes_to_its_run_and_an_ambiguous_one_lists_the_matches(
    api: Api,
) -> None:
    run_id = run_id_of(api, "fx.gap")
    # a second run sharing the first 8 hex digits only
    twin_group = "0000" if run_id[9:13] == "ffff" else "ffff"
    api.rows(
        "INSERT INTO metric_runs (id, metric_id, status, trigger, created_at, updated_at)"
        " SELECT %s, metric_id, 'canceled', 'manual', now(), now() FROM metric_runs"
        " WHERE id = %s RETURNING id",
        f"{run_id[:9]}{twin_group}-ffff-ffff-ffffffffffff",
        run_id,
    )

    unique = api.client.get(f"/ui/runs/{run_id[:13]}", follow_redirects=False)
    ambiguous = page(api, f"/ui/runs/{run_id[:8]}", status=404)
    unknown = page(api, "/ui/runs/0000000000", status=404)

    assert (unique.status_code, unique.headers["location"]) == (303, f"/ui/runs/{run_id}")
    assert "is ambiguous" in ambiguous
    assert run_id in ambiguous
    assert "unknown run 0000000000" in unknown


def test_a_queued_run_shows_timeline_lineage_payload_and_buttons(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")

    html = page(api, f"/ui/runs/{run_id}")

    assert 'id="timeline"' in html
    assert "<strong>queued</strong>" in html
    assert "datasets/fx_daily/versions/v1/manifest.json" in html
    assert "Request payload" in html
    assert "runId" in html
    assert 'data-output="none"' in html
    assert "no output" in html
    assert re.search(
        r'action="/ui/runs/[^"]+/cancel" class="inline">\s*<button type="submit" >', html
    )
    assert "is queued; only failed, timed_out or canceled runs can be retried" in html


def test_a_pending_run_shows_what_it_waits_for_and_since_when(api: Api) -> None:
    api.clock.advance(timedelta(minutes=5))
    run_id = run_id_of(api, "reserves.at_parallel")

    html = page(api, f"/ui/runs/{run_id}")

    assert re.search(r'id="waiting-for">reserves_daily<', html)
    assert "Waiting since 2025-11-11 12:00:00 UTC (5 min ago)" in html
    assert "not received yet" in html


def test_cancel_then_retry_from_the_run_page(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")

    canceled = api.client.post(
        f"/ui/runs/{run_id}/cancel", headers=SAME_ORIGIN, follow_redirects=False
    )
    assert canceled.status_code == 303
    html = page(api, canceled.headers["location"])
    assert "run canceled" in html
    assert 'data-status="canceled"' in html
    assert "a canceled run has ended; it cannot be canceled" in html

    retried = api.client.post(
        f"/ui/runs/{run_id}/retry", headers=SAME_ORIGIN, follow_redirects=False
    )
    assert retried.status_code == 303
    html = page(api, retried.headers["location"])
    assert "retry queued (attempt 2)" in html
    assert f'href="/ui/runs/{run_id}">attempt 1</a>' in html


def test_an_older_attempt_offers_no_retry_but_a_link_to_the_latest(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")
    api.container.runs.cancel(UUID(run_id))
    latest = api.container.runs.retry(UUID(run_id))

    html = page(api, f"/ui/runs/{run_id}")

    assert re.search(r'<button type="submit" disabled[^>]*>Retry</button>', html)
    assert "attempt 2 is the latest of this chain" in html
    assert f'<a id="retry-instead" href="/ui/runs/{latest.id}">retry attempt 2 instead</a>' in html
    assert 'id="retry-instead"' not in page(api, f"/ui/runs/{latest.id}")


def test_cancelling_an_ended_run_explains_why_not(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")
    api.container.runs.cancel(UUID(run_id))

    response = api.client.post(
        f"/ui/runs/{run_id}/cancel", headers=SAME_ORIGIN, follow_redirects=False
    )

    assert response.status_code == 303
    assert "not canceled" in page(api, response.headers["location"])


def test_an_unknown_run_is_an_html_404(api: Api) -> None:
    html = page(api, "/ui/runs/2b1f0b1e-0000-4000-8000-000000000000", status=404)
    assert "unknown run" in html
    assert "unknown run not-a-uuid" in page(api, "/ui/runs/not-a-uuid", status=404)


# --- metrics -------------------------------------------------------------------------------


def test_the_metrics_list_has_a_state_badge_and_reason_per_metric(api: Api) -> None:
    html = page(api, "/ui/metrics")

    row = re.search(r'data-metric="reserves.at_parallel">.*?data-state="([^"]+)"', html, re.S)
    assert row is not None
    assert row.group(1) == "waiting"
    assert "first run waiting for reserves_daily (no version yet)" in html
    gap = re.search(r'data-metric="fx.gap">.*?data-state="([^"]+)"', html, re.S)
    # fx_daily v1 queued a run of fx.gap
    assert gap is not None
    assert gap.group(1) == "running"


def test_a_metric_page_explains_why_not_yet_with_countdowns(api: Api) -> None:
    html = page(api, "/ui/metrics/reserves.at_parallel")

    assert 'id="formula">(RESERVES_USD_D / FX_PARALLEL_D)<' in html or 'id="formula">' in html
    explanation = re.search(r'id="explanation">([^<]+)<', html)
    assert explanation is not None
    assert "reserves_daily has no update yet" in explanation.group(1)
    assert 'class="countdown" data-until="' in html
    assert "Run history" in html
    assert "pending_dependencies" in html
    assert 'action="/ui/metrics/reserves.at_parallel/run"' in html


def test_the_formula_is_readable(api: Api) -> None:
    html = page(api, "/ui/metrics/reserves.real_pesos")

    assert (
        "((RESERVES_USD_D \N{MULTIPLICATION SIGN} FX_OFFICIAL_D@fx_daily) / CPI_INDEX_M)"
        " [as of left, \N{LESS-THAN OR EQUAL TO} 62 d]"
    ) in html
    assert (
        '<ul class="tree"><li>ratio [as of left, \N{LESS-THAN OR EQUAL TO} 62 d]<ul><li>multiply'
        in html
    )


def test_run_now_queues_a_manual_run(api: Api) -> None:
    response = api.client.post(
        "/ui/metrics/fx.gap/run", headers=SAME_ORIGIN, follow_redirects=False
    )

    assert response.status_code == 303
    html = page(api, response.headers["location"])
    assert "manual run queued" in html
    assert "manual, attempt 1" in html


def test_run_now_without_inputs_says_why(api: Api) -> None:
    response = api.client.post(
        "/ui/metrics/prices.real_wages/run", headers=SAME_ORIGIN, follow_redirects=False
    )

    assert response.status_code == 303
    assert "not run:" in page(api, response.headers["location"])


def test_an_unknown_metric_is_an_html_404(api: Api) -> None:
    assert "unknown metric" in page(api, "/ui/metrics/no.such", status=404)


# --- datasets ------------------------------------------------------------------------------


def test_the_datasets_list_and_a_dataset_page_with_versions_and_impact(api: Api) -> None:
    listing = page(api, "/ui/datasets")
    assert 'data-dataset="fx_mirror"' in listing
    assert 'href="/ui/datasets/fx_daily"' in listing

    html = page(api, "/ui/datasets/reserves_daily")

    assert 'id="series">RESERVES_USD_D<' in html
    summary = re.search(r'id="impact-summary">([^<]+)<', html)
    assert summary is not None
    assert "Would run" in summary.group(1)
    assert "reserves.at_parallel" in summary.group(1)
    fx = page(api, "/ui/datasets/fx_daily")
    assert "datasets/fx_daily/versions/v1/manifest.json" in fx


def test_an_unknown_dataset_is_an_html_404(api: Api) -> None:
    assert "unknown dataset" in page(api, "/ui/datasets/nope", status=404)


# --- graph ---------------------------------------------------------------------------------


def test_the_graph_has_a_node_per_dataset_series_pair_and_metric(api: Api) -> None:
    datasets = api.container.catalog.list_datasets()
    metrics = api.container.catalog.list_metrics()

    html = page(api, "/ui/graph")

    assert graph_node_count(html) == expected_graph_nodes(datasets, metrics)
    assert "A large graph" not in html
    assert '"id": "dataset:fx_mirror"' in html
    assert '"id": "metric:fx.gap"' in html
    assert '"source": "series:fx_daily/FX_OFFICIAL_D", "target": "metric:fx.gap"' in html


def test_the_graph_filters_by_metric_and_by_dataset(api: Api) -> None:
    by_metric = page(api, "/ui/graph?metric=fx.gap")
    by_dataset = page(api, "/ui/graph?dataset=reserves_daily")

    # fx.gap reads two series of fx_daily: 1 dataset + 2 series + 1 metric
    assert graph_node_count(by_metric) == 4
    assert "metric:reserves.sma_20" in by_dataset
    assert "metric:fx.gap" not in by_dataset


def test_the_graph_and_metrics_pages_handle_the_500_metric_catalog(
    database_url: str,
) -> None:
    with running_api(database_url, MutableClock()) as api:
        api.container.catalog.load_catalog(generate_catalog(CatalogShape(datasets=100, fan_out=9)))
        metrics = api.container.catalog.list_metrics()
        assert len(metrics) == 500

        html = page(api, "/ui/graph")
        listing = page(api, "/ui/metrics")

        datasets = api.container.catalog.list_datasets()
        assert graph_node_count(html) == expected_graph_nodes(datasets, metrics)
        assert "A large graph: drag to pan" in html
        assert listing.count("data-state=") == 50
        assert "Next metrics" in listing
        # the states of all 500 metrics are one read: the overview and the filtered list
        never_ran = page(api, "/ui/metrics?state=waiting")
        assert never_ran.count('data-state="waiting"') == 50
        assert "Next metrics" in never_ran
        assert 'data-state-count="waiting">\n      <strong>500</strong>' in page(api, "/")


# --- events --------------------------------------------------------------------------------


def test_the_inbox_shows_rejected_events_with_reason_and_body(api: Api) -> None:
    html = page(api, "/ui/events")

    assert "datasets/not_in_catalog/versions/v1/manifest.json" in html
    assert "not_in_catalog" in html
    assert 'class="reason">' in html
    assert 'action="/ui/events/replay"' in html


def test_replay_from_the_inbox_once_the_dataset_is_known(api: Api) -> None:
    key = re.search(r'data-event-key="([^"]+)"', page(api, "/ui/events"))
    assert key is not None
    api.container.catalog.load_catalog(
        {"datasets": [{"id": "not_in_catalog", "bucket": "ingestor-datasets", "series": []}]}
    )

    response = api.client.post(
        "/ui/events/replay",
        data={"event_key": key.group(1).replace("&amp;", "&")},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )

    assert response.status_code == 303
    html = page(api, response.headers["location"])
    assert ": processed" in html
    assert "replayed 2025-11-11" in html


def test_dismiss_from_the_inbox_needs_a_reason_and_drops_the_count(api: Api) -> None:
    key = re.search(r'data-event-key="([^"]+)"', page(api, "/ui/events"))
    assert key is not None
    event_key = key.group(1).replace("&amp;", "&")
    assert 'action="/ui/events/dismiss"' in page(api, "/ui/events")

    refused = api.client.post(
        "/ui/events/dismiss",
        data={"event_key": event_key, "reason": " "},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert refused.status_code == 303
    assert "not dismissed: reason: a reason is required" in page(api, refused.headers["location"])
    response = api.client.post(
        "/ui/events/dismiss",
        data={"event_key": event_key, "reason": "the dataset was retired"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )

    assert response.status_code == 303
    html = page(api, response.headers["location"])
    assert f"dismissed {event_key}" in html
    assert "No rejected events." in html
    assert re.search(r'href="/ui/events" id="rejected-count">0<', page(api, "/"))
    (dismissed,) = api.container.queries.list_events(status=EventStatus.DISMISSED).events
    assert dismissed.dismiss_reason == "the dataset was retired"


def test_dismiss_from_another_site_is_refused(api: Api) -> None:
    response = api.client.post(
        "/ui/events/dismiss",
        data={"event_key": "k", "reason": "r"},
        headers={"Origin": "http://evil.example"},
        follow_redirects=False,
    )

    assert response.status_code == 403
    assert len(api.container.queries.list_events(status=EventStatus.REJECTED).events) == 1
