"""Incidents, channels and freshness on the dashboard (SPEC §9, docs/ui.md "Incidents, channels
and freshness"), through the test client over a real database and the real use cases: a final
failure, rejected events and freshness objectives open what the pages show, and "Send test"
posts to a real local receiver."""

from __future__ import annotations

import html as html_text
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from uuid import UUID

import psycopg
import pytest
from bench.catalog import CatalogShape, generate_catalog

from metrics_orchestrator.application.ports.incidents import ChannelSettings
from metrics_orchestrator.domain.incidents import ChannelFormat, IncidentKind
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.web.pages_incidents import INCIDENTS_PAGE_SIZE
from tests.factories import seed_run
from tests.integration.http_helpers import Api, running_api
from tests.integration.web_helpers import SAME_ORIGIN, page, seeded_api
from tests.receiver import Receiver, running_receiver
from tests.support import MutableClock

NOW = datetime.fromisoformat("2025-11-11T12:00:00+00:00")  # MutableClock's start
SECRET = "never-on-a-page"


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    """The multi-dataset catalog after seed_activity: fx_daily v1 arrived at 12:00, an event
    for an unknown dataset was rejected (so one event incident is open)."""
    with seeded_api(database_url, catalogs_dir) as api:
        yield api


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as served:
        yield served


def _metric_id(api: Api, code: str) -> str:
    ((metric_id,),) = api.rows("SELECT id FROM metrics WHERE code = %s", code)
    return str(metric_id)


def fail_finally(api: Api, code: str, error: str = "division by zero") -> UUID:
    """A run of `code` with one attempt allowed fails; the sweeper finds no retry for it."""
    api.rows("UPDATE metrics SET max_attempts = 1 WHERE code = %s RETURNING code", code)
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        run_id = seed_run(
            conn, _metric_id(api, code), status=RunStatus.RUNNING, now=api.clock.now()
        )
    body = {"type": "metric_run_completed", "runId": str(run_id), "status": "FAILURE"}
    api.container.router.handle(json.dumps({**body, "error": error}), source="test")
    api.container.sweeper.sweep_once()
    return run_id


def incident_ids(api: Api, kind: IncidentKind) -> list[int]:
    rows = api.rows("SELECT id FROM incidents WHERE kind = %s ORDER BY id", str(kind))
    return [row[0] for row in rows]


def section(html: str, element_id: str) -> str:
    """The element with this id, up to its closing tag (sections and tables here do not nest
    their own kind)."""
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>.*?</\1>', html, re.S)
    assert match is not None, f"no #{element_id}"
    return match.group(0)


def channel(receiver: Receiver, name: str = "ops", **overrides: object) -> ChannelSettings:
    fields: dict[str, object] = {
        "name": name,
        "url": receiver.url,
        "format": ChannelFormat.JSON,
        "secret": SECRET,
        "kinds": None,
        "metrics": None,
    }
    return ChannelSettings(**(fields | overrides))  # type: ignore[arg-type]


def _late_dataset(api: Api, dataset_id: str = "fx_daily") -> None:
    """Expected every hour with 30 min of grace: at 12:00 its v1 is due at 13:30."""
    api.rows(
        "UPDATE datasets SET expected_every = interval '1 hour', grace = interval '30 minutes'"
        " WHERE id = %s RETURNING id",
        dataset_id,
    )


def _metric_objective(api: Api, code: str, registered: datetime) -> None:
    api.rows(
        "UPDATE metrics SET max_data_age = interval '2 hours', created_at = %s"
        " WHERE code = %s RETURNING code",
        registered,
        code,
    )


# --- the overview's first row -----------------------------------------------------------------


def test_with_nothing_open_the_overview_says_so_calmly(
    database_url: str, catalogs_dir: Path
) -> None:
    with running_api(database_url, MutableClock()) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        html = page(api, "/")

    first = section(html, "open-incidents")
    assert '<p class="calm" id="no-incidents">No open incidents.</p>' in first
    assert "failing-freshness" not in html
    assert "freshness-ok" not in html  # no objective at all: nothing to say about them
    # it is the first row: before the runs by status
    assert html.index('id="open-incidents"') < html.index('id="now-h"')


def test_a_final_failure_opens_an_incident_shown_first_on_the_overview(api: Api) -> None:
    run_id = fail_finally(api, "fx.gap")
    [incident_id] = incident_ids(api, IncidentKind.RUN_FAILED)
    [event_incident] = incident_ids(api, IncidentKind.EVENT_REJECTED)

    first = section(page(api, "/"), "open-incidents-table")

    rows = re.findall(r'<tr data-incident="(\d+)" data-kind="([a-z_]+)">', first)
    assert rows == [(str(incident_id), "run_failed"), (str(event_incident), "event_rejected")]
    assert f'<a href="/ui/incidents/{incident_id}">#{incident_id}</a>' in first
    assert '<td class="subject"><a href="/ui/metrics/fx.gap">fx.gap</a></td>' in first
    assert "<td>run failed</td>" in first
    assert "fx.gap failed on attempt 1, no attempt left: division by zero" in first
    assert "2025-11-11 12:00:00 UTC" in first
    # the event's subject links to the event's page through its key
    [(key,)] = api.rows("SELECT subject FROM incidents WHERE id = %s", event_incident)
    assert f'href="/ui/events/by-key?key={quote(key, safe="")}"' in html_text.unescape(first)
    # the incident's page links the run
    assert f'href="/ui/runs/{run_id}"' in page(api, f"/ui/incidents/{incident_id}")


def test_the_overview_lists_late_datasets_and_overdue_metrics_with_since_and_why(
    api: Api,
) -> None:
    _late_dataset(api)
    _metric_objective(api, "fx.gap", registered=NOW)
    api.clock.advance(timedelta(hours=3))

    html = page(api, "/")

    table = section(html, "failing-freshness")
    late = re.search(r'<tr data-dataset="fx_daily">.*?</tr>', table, re.S)
    overdue = re.search(r'<tr data-metric="fx.gap">.*?</tr>', table, re.S)
    assert late is not None
    assert overdue is not None
    assert '<a href="/ui/datasets/fx_daily">fx_daily</a>' in late.group(0)
    assert 'data-freshness="late"' in late.group(0)
    assert "late since 2025-11-11 13:30:00 UTC" in late.group(0)
    assert "due 1 h 30 min ago" in late.group(0)
    assert "expected every PT1H + grace PT30M" in late.group(0)
    assert "overdue since 2025-11-11 14:00:00 UTC" in overdue.group(0)
    assert "no successful run since registration; max data age PT2H" in overdue.group(0)
    # the longest late first
    assert table.index("fx_daily") < table.index("fx.gap")


def test_objectives_all_met_are_one_quiet_line(api: Api) -> None:
    _metric_objective(api, "fx.gap", registered=NOW)

    html = page(api, "/")

    assert "failing-freshness" not in html
    assert "Every one of the 1 datasets and metrics with a freshness objective is on time." in (
        html
    )


def test_more_open_incidents_than_the_overview_shows_link_to_the_list(api: Api) -> None:
    for n in range(21):
        api.container.router.handle(f"{{broken {n}", source="test")

    html = page(api, "/")

    assert section(html, "open-incidents-table").count("<tr data-incident=") == 20
    assert '<a href="/ui/incidents">All open incidents</a>' in html


# --- /ui/incidents ----------------------------------------------------------------------------


def test_the_incidents_list_filters_by_open_and_kind_newest_first(api: Api) -> None:
    fail_finally(api, "fx.gap")
    [failed] = incident_ids(api, IncidentKind.RUN_FAILED)
    [rejected] = incident_ids(api, IncidentKind.EVENT_REJECTED)
    [(key,)] = api.rows("SELECT subject FROM incidents WHERE id = %s", rejected)
    api.container.router.dismiss(key, "a test event")

    open_only = page(api, "/ui/incidents")
    everything = page(api, "/ui/incidents?show=all")
    by_kind = page(api, "/ui/incidents?show=all&kind=event_rejected")

    def listed(html: str) -> list[int]:
        return [int(i) for i in re.findall(r'<tr data-incident="(\d+)"', html)]

    assert '<a href="/ui/incidents" aria-current="page">Incidents</a>' in open_only
    assert listed(open_only) == [failed]
    assert listed(everything) == [failed, rejected]
    assert listed(by_kind) == [rejected]
    resolved_row = section(everything, "incidents-table").split(f'data-incident="{rejected}"')[1]
    assert "dismissed: a test event" in resolved_row
    assert 'data-incident-state="open"' in everything.split(f'data-incident="{rejected}"')[0]
    for column in ("Incident", "Kind", "Subject", "Count", "Opened", "Resolved", "Summary"):
        assert f'<th scope="col">{column}</th>' in everything
    assert '<option value="event_rejected" selected>' in by_kind
    nothing = page(api, "/ui/incidents?kind=dataset_late")
    assert "No incident matches." in nothing


def test_the_incidents_list_filters_by_subject(api: Api) -> None:
    fail_finally(api, "fx.gap")

    html = page(api, "/ui/incidents?show=all&subject=fx.gap")

    assert re.findall(r'data-kind="([a-z_]+)"', html) == ["run_failed"]
    assert 'value="fx.gap"' in html


def test_the_incidents_list_pages_by_keyset(api: Api) -> None:
    for n in range(INCIDENTS_PAGE_SIZE + 1):
        api.container.router.handle(f"{{broken {n}", source="test")
    ids = sorted(incident_ids(api, IncidentKind.EVENT_REJECTED), reverse=True)

    first = page(api, "/ui/incidents")
    next_link = re.search(r'<a href="([^"]+)" rel="next">Older incidents', first)
    assert next_link is not None
    second = page(api, html_text.unescape(next_link.group(1)))

    shown = [int(i) for i in re.findall(r'<tr data-incident="(\d+)"', first + second)]
    assert shown == ids
    assert len(re.findall(r"<tr data-incident=", first)) == INCIDENTS_PAGE_SIZE
    assert 'rel="next"' not in second
    assert "← Newest" in second


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("show=some", "show must be open or all"),
        ("kind=burning", "unknown incident kind 'burning'"),
        ("before=abc", "before must be an incident id"),
        ("before=0", "before must be an incident id"),
        ("before=99999999999999999999", "before must be an incident id"),
        ("subject=a%00b", "subject is too long or holds a NUL character"),
        (f"subject={'x' * 4001}", "subject is too long"),
    ],
)
def test_a_list_it_cannot_serve_is_a_422_page_saying_why(api: Api, query: str, says: str) -> None:
    html = page(api, f"/ui/incidents?{query}", status=422)

    assert says in html_text.unescape(html)


# --- /ui/incidents/{id} -----------------------------------------------------------------------


def test_an_incident_page_shows_its_facts_occurrences_and_notifications(
    api: Api, receiver: Receiver
) -> None:
    api.container.notifications.configure([channel(receiver)])
    first = fail_finally(api, "fx.gap", error="boom one")
    second = fail_finally(api, "fx.gap", error="boom two")
    assert api.container.notifier.deliver_once().delivered == 1
    [incident_id] = incident_ids(api, IncidentKind.RUN_FAILED)

    html = page(api, f"/ui/incidents/{incident_id}")

    assert f"<h1>Incident #{incident_id} " in html
    assert 'data-incident-state="open"' in html
    assert '<dd id="incident-subject"><a href="/ui/metrics/fx.gap">fx.gap</a></dd>' in html
    assert '<dd id="incident-count">2</dd>' in html
    assert "boom two" in section(html, "incident-summary")
    occurrences = section(html, "occurrences")
    assert occurrences.index(f'href="/ui/runs/{second}"') < occurrences.index(
        f'href="/ui/runs/{first}"'
    )
    deliveries = section(html, "deliveries")
    assert '<tr data-channel="ops">' in deliveries
    assert "incident.opened" in deliveries
    assert 'data-delivery-state="delivered"' in deliveries
    assert "HTTP 200: ok" in deliveries
    assert SECRET not in html


def test_a_resolved_incident_says_when_and_why(api: Api) -> None:
    fail_finally(api, "fx.gap")
    [incident_id] = incident_ids(api, IncidentKind.RUN_FAILED)
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        success = seed_run(
            conn, _metric_id(api, "fx.gap"), status=RunStatus.RUNNING, now=api.clock.now()
        )
    body = {"type": "metric_run_completed", "runId": str(success), "status": "SUCCESS"}
    api.container.router.handle(json.dumps(body), source="test")

    html = page(api, f"/ui/incidents/{incident_id}")

    assert 'data-incident-state="resolved"' in html
    assert f"run {success} succeeded" in section(html, "incident-resolved")
    assert "No notification: no channel was listening" in html
    assert "No open incidents." not in page(api, "/")  # the event incident is still open


@pytest.mark.parametrize("incident_id", ["999", "0", "99999999999999999999"])
def test_an_unknown_incident_is_a_404_page(api: Api, incident_id: str) -> None:
    assert f"unknown incident {incident_id}" in page(api, f"/ui/incidents/{incident_id}", 404)


def test_an_event_key_leads_to_the_event_page(api: Api) -> None:
    [rejected] = incident_ids(api, IncidentKind.EVENT_REJECTED)
    [(key,)] = api.rows("SELECT subject FROM incidents WHERE id = %s", rejected)
    [(event_id,)] = api.rows("SELECT max(id) FROM event_log WHERE event_key = %s", key)

    found = api.client.get("/ui/events/by-key", params={"key": key}, follow_redirects=False)

    assert found.status_code == 303
    assert found.headers["location"] == f"/ui/events/{event_id}"
    incident_page = page(api, f"/ui/incidents/{rejected}")
    assert f'href="/ui/events/by-key?key={quote(key, safe="")}"' in html_text.unescape(
        incident_page
    )


@pytest.mark.parametrize("key", ["", "nope", "a\x00b", "k" * 4001])
def test_an_unknown_event_key_is_a_404_page(api: Api, key: str) -> None:
    response = api.client.get("/ui/events/by-key", params={"key": key})

    assert response.status_code == 404
    assert "unknown event" in response.text


# --- /ui/channels -------------------------------------------------------------------------------


def test_the_channels_page_shows_each_channel_and_never_its_secret(
    api: Api, receiver: Receiver
) -> None:
    api.container.notifications.configure(
        [
            channel(receiver),
            channel(
                receiver,
                name="slack-data",
                format=ChannelFormat.SLACK,
                secret=None,
                kinds=(IncidentKind.RUN_FAILED, IncidentKind.DATASET_LATE),
                metrics=("fx.*",),
            ),
        ]
    )

    html = page(api, "/ui/channels")

    ops = section(html, "channels-table").split('<tr data-channel="ops">')[1].split("</tr>")[0]
    slack = html.split('<tr data-channel="slack-data">')[1].split("</tr>")[0]
    # only the origin: a webhook's path can be a secret too
    assert f"<code>{receiver.url.removesuffix('/hook')}/…</code>" in ops
    assert "/hook" not in ops
    assert ">signed</span>" in ops
    assert "every kind" in ops
    assert "every metric" in ops
    assert "signed" not in slack
    assert "run failed, dataset late" in slack
    assert "<code>fx.*</code>" in slack
    assert "never tried" in ops
    assert SECRET not in html
    assert 'action="/ui/channels/ops/test"' in ops


def test_send_test_posts_to_the_receiver_and_the_page_says_delivered(
    api: Api, receiver: Receiver
) -> None:
    api.container.notifications.configure([channel(receiver)])

    sent = api.client.post("/ui/channels/ops/test", headers=SAME_ORIGIN, follow_redirects=False)

    assert sent.status_code == 303
    assert sent.headers["location"] == "/ui/channels"
    [posted] = receiver.received
    assert posted.document["type"] == "test"
    html = page(api, "/ui/channels")
    assert "test notification to ops: delivered (HTTP 200: ok)" in html
    assert 'data-delivery-state="delivered"' in section(html, "channels-table")


def test_send_test_to_a_receiver_answering_500_says_not_delivered(
    api: Api, receiver: Receiver
) -> None:
    api.container.notifications.configure([channel(receiver)])
    receiver.status = 500

    api.client.post("/ui/channels/ops/test", headers=SAME_ORIGIN, follow_redirects=False)

    html = page(api, "/ui/channels")
    assert "test notification to ops: not delivered (HTTP 500: ok)" in html
    assert 'data-delivery-state="undeliverable"' in html


@pytest.mark.parametrize("name", ["nobody", "bad%00name", "x" * 129])
def test_send_test_to_an_unknown_channel_is_a_404_page(api: Api, name: str) -> None:
    response = api.client.post(f"/ui/channels/{name}/test", headers=SAME_ORIGIN)

    assert response.status_code == 404
    assert "unknown channel" in response.text


def test_send_test_from_another_site_is_refused(api: Api, receiver: Receiver) -> None:
    api.container.notifications.configure([channel(receiver)])

    foreign = api.client.post("/ui/channels/ops/test", headers={"Origin": "http://evil.example"})

    assert foreign.status_code == 403
    assert receiver.received == []


def test_under_a_token_send_test_needs_sign_in(database_url: str, receiver: Receiver) -> None:
    with running_api(database_url, MutableClock(), env={"API_TOKEN": "s3cret"}) as api:
        api.container.notifications.configure([channel(receiver)])

        disabled = page(api, "/ui/channels")
        refused = api.client.post("/ui/channels/ops/test", headers=SAME_ORIGIN)
        api.client.post(
            "/ui/sign-in", data={"token": "s3cret", "next": "/ui/channels"}, headers=SAME_ORIGIN
        )
        enabled = page(api, "/ui/channels")

    assert "sign in with the API token to use this button" in disabled
    assert re.search(r"<button type=\"submit\" disabled[^>]*>Send test</button>", disabled)
    assert refused.status_code == 401
    assert re.search(r'<button type="submit">Send test</button>', enabled)
    assert receiver.received == []


def test_no_channel_says_how_to_declare_one(api: Api) -> None:
    assert "No channel yet" in page(api, "/ui/channels")


# --- freshness on the metric and dataset pages, and in the lists --------------------------------


def test_a_metric_page_counts_down_to_its_due_time(api: Api) -> None:
    _metric_objective(api, "fx.gap", registered=NOW)
    api.clock.advance(timedelta(minutes=48))

    block = section(page(api, "/ui/metrics/fx.gap"), "freshness")

    assert 'data-freshness="ok"' in block
    assert '<span class="due-countdown" data-due="2025-11-11T14:00:00+00:00">' in block
    assert "due in 1 h 12 min" in block
    assert "no successful run since registration; max data age PT2H" in block
    assert 'href="/ui/incidents?show=all&amp;subject=fx.gap"' in block


def test_an_overdue_metric_page_says_since_when(api: Api) -> None:
    _metric_objective(api, "fx.gap", registered=NOW - timedelta(hours=5))

    block = section(page(api, "/ui/metrics/fx.gap"), "freshness")

    assert 'data-freshness="overdue"' in block
    assert "overdue since 2025-11-11 09:00:00 UTC" in block
    assert "due 3 h ago" in block


def test_a_late_dataset_page_says_since_when_and_why(api: Api) -> None:
    _late_dataset(api)
    api.clock.advance(timedelta(hours=2))

    block = section(page(api, "/ui/datasets/fx_daily"), "freshness")

    assert 'data-freshness="late"' in block
    assert "late since 2025-11-11 13:30:00 UTC" in block
    assert "due 30 min ago" in block
    assert "freshest update effective 2025-11-11T12:00:00+00:00" in block


def test_without_an_objective_the_pages_say_which_setting_is_missing(api: Api) -> None:
    metric = section(page(api, "/ui/metrics/fx.gap"), "freshness")
    dataset = section(page(api, "/ui/datasets/fx_daily"), "freshness")

    assert "no objective (<code>max_data_age</code> is not set)" in metric
    assert "no objective (<code>expected_every</code> is not set)" in dataset
    assert "data-freshness" not in metric + dataset


def test_the_lists_show_a_freshness_badge_per_row(api: Api) -> None:
    _late_dataset(api)
    _metric_objective(api, "fx.gap", registered=NOW)
    api.clock.advance(timedelta(hours=1))

    metrics = page(api, "/ui/metrics")
    datasets = page(api, "/ui/datasets")

    def cell(html: str, attribute: str, key: str) -> str:
        row = re.search(rf'<tr {attribute}="{re.escape(key)}">.*?</tr>', html, re.S)
        assert row is not None, key
        found = re.search(r'<td class="freshness">(.*?)</td>', row.group(0), re.S)
        assert found is not None
        return found.group(1)

    assert 'data-freshness="ok"' in cell(metrics, "data-metric", "fx.gap")
    assert "data-freshness" not in cell(metrics, "data-metric", "prices.real_wages")
    assert 'data-freshness="ok"' in cell(datasets, "data-dataset", "fx_daily")
    api.clock.advance(timedelta(hours=1))
    assert 'data-freshness="late"' in cell(page(api, "/ui/datasets"), "data-dataset", "fx_daily")
    assert "data-freshness" not in cell(datasets, "data-dataset", "prices_monthly")


# --- scale --------------------------------------------------------------------------------------

# 10k runs over the 500 metrics, set-based: 20 a metric, an hour apart, ending now; every
# seventh failed, the rest succeeded (so data times exist and most metrics are not overdue).
_RUNS_SQL = """
WITH ms AS (SELECT array_agg(id ORDER BY id) AS ids FROM metrics)
INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, inputs_fingerprint,
                         request_payload, created_at, queued_at, dispatched_at, started_at,
                         completed_at, updated_at, data_time)
SELECT gen_random_uuid(), ms.ids[1 + g %% cardinality(ms.ids)],
       CASE WHEN g %% 7 = 0 THEN 'failed' ELSE 'succeeded' END, 'automatic', 1,
       'scale-' || g, '{}'::jsonb, t, t, t, t, t + interval '40 seconds', t,
       CASE WHEN g %% 7 = 0 THEN NULL ELSE t - interval '1 day' END
FROM ms, generate_series(0, %(runs)s - 1) AS g,
     LATERAL (SELECT %(now)s::timestamptz
                     - (g / cardinality(ms.ids)) * interval '1 hour') AS at(t)
"""


def test_the_incident_pages_at_500_metrics_and_10k_runs_show_the_newest_first(
    database_url: str,
) -> None:
    """Every metric and dataset has an objective, the sweeper opened an incident for each
    failing one (through the use case), and 300 rejected events are open incidents too. What
    the pages show at scale; their speed is bench/dashboard.py's (docs/performance.md)."""
    with running_api(database_url, MutableClock()) as api:
        api.container.catalog.load_catalog(generate_catalog(CatalogShape(datasets=100, fan_out=9)))
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(_RUNS_SQL, {"runs": 10_000, "now": NOW})
            # overdue: the metrics whose newest run failed (their data is an hour older)
            conn.execute("UPDATE metrics SET max_data_age = interval '24 hours 30 minutes'")
            conn.execute("UPDATE datasets SET expected_every = interval '1 day'")
            conn.execute("UPDATE datasets SET created_at = %s", (NOW - timedelta(days=2),))
            conn.execute("ANALYZE")
        for n in range(300):
            api.container.router.handle(f"{{broken {n}", source="test")
        api.container.sweeper.sweep_once()
        board = api.container.incidents.freshness()
        assert len(board.metrics) == 500
        assert len([f for f in board.metrics.values() if f.failing]) > 50
        opened = api.rows("SELECT count(*) FROM incidents WHERE resolved_at IS NULL")[0][0]
        assert opened == 300 + board.failing

        overview = page(api, "/")
        assert section(overview, "open-incidents-table").count("<tr data-incident=") == 20
        assert section(overview, "failing-freshness").count("<tr data-") == 20
        assert f"{board.failing} late or overdue in all" in overview

        listed = page(api, "/ui/incidents")
        assert listed.count("<tr data-incident=") == INCIDENTS_PAGE_SIZE
        for path in ("/ui/metrics", "/ui/datasets"):
            page(api, path)
