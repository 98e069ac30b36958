"""The incidents API at its edges (SPEC §6.3, §9): the bearer token on every route that changes
something, a PUT that replaces, a secret that appears in no response and no log line whatever
the body, links that lead somewhere, a channel URL no HTTP client can use, and the §9 gauges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from metrics_orchestrator.domain.incidents import IncidentKind
from metrics_orchestrator.infrastructure.http_sender import HttpNotificationSender
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.receiver import Receiver, running_receiver
from tests.support import MutableClock

SECRET = "sig-key-4f1c9a-never-shown"
TOKEN = "tok-for-channel-tests"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}
# a URL httpx refuses before connecting (IDNA): the catalog refuses it too, since this stop
UNUSABLE_URL = "http://xn--a/hook"


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        yield api


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as served:
        yield served


def reject_junk(api: Api) -> None:
    response = api.client.post(
        "/events/projection-update", content="{junk", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text


def put_channel(api: Api, name: str, body: dict[str, Any], **headers: str) -> Any:
    return api.client.put(f"/notifications/channels/{name}", json=body, headers=headers)


# --- the bearer token ------------------------------------------------------------------------


def test_with_a_token_every_route_that_changes_a_channel_needs_it_and_reads_stay_open(
    database_url: str, receiver: Receiver
) -> None:
    body = {"url": receiver.url, "secret": SECRET}
    with running_api(database_url, MutableClock(), env={"API_TOKEN": TOKEN}) as api:
        assert_problem(put_channel(api, "ops", body), 401, detail_contains="missing bearer token")
        assert api.client.get("/notifications/channels").json() == []

        assert put_channel(api, "ops", body, **AUTHORIZED).status_code == 200
        assert_problem(api.client.post("/notifications/channels/ops/test"), 401)
        assert not receiver.received
        wrong = {"Authorization": "Bearer nope"}
        assert_problem(api.client.delete("/notifications/channels/ops", headers=wrong), 401)
        assert api.client.get("/notifications/channels").json()[0]["enabled"] is True

        tested = api.client.post("/notifications/channels/ops/test", headers=AUTHORIZED)
        assert tested.json() == {"ok": True, "detail": "HTTP 200: ok"}
        deleted = api.client.delete("/notifications/channels/ops", headers=AUTHORIZED)
        assert deleted.status_code == 204
        for read in ("/incidents", "/freshness", "/notifications/deliveries"):
            assert api.client.get(read).status_code == 200, read


# --- PUT replaces ---------------------------------------------------------------------------


def test_a_put_replaces_the_channel_and_one_without_a_secret_keeps_none(api: Api) -> None:
    first = {"url": "https://hooks.example.test/a", "secret": SECRET, "kinds": ["run_failed"]}
    assert put_channel(api, "ops", first).json()["has_secret"] is True

    replaced = put_channel(api, "ops", {"url": "https://hooks.example.test/b", "format": "slack"})

    assert replaced.status_code == 200, replaced.text
    channel = replaced.json()
    assert (channel["url"], channel["format"], channel["has_secret"]) == (
        "https://hooks.example.test/…",  # its origin only: a webhook's path can be a secret
        "slack",
        False,
    )
    assert (channel["kinds"], channel["metrics"], channel["enabled"]) == (None, None, True)
    assert api.rows("SELECT url, secret FROM notification_channels") == [
        ("https://hooks.example.test/b", None)
    ]


def test_a_disabled_channel_put_again_is_enabled_again(api: Api) -> None:
    put_channel(api, "ops", {"url": "https://hooks.example.test/a"})
    api.client.delete("/notifications/channels/ops")

    again = put_channel(api, "ops", {"url": "https://hooks.example.test/a"})

    assert again.json()["enabled"] is True


@pytest.mark.parametrize(
    ("name", "body", "path"),
    [
        ("ops", {"url": "https://x.test/h", "secret": "s" * 513}, "secret"),
        ("ops", {"url": "https://x.test/h", "metrics": ["m"] * 101}, "metrics"),
        ("ops", {"url": "https://x.test/h", "metrics": ["m" * 129]}, "metrics[0]"),
        ("ops", {"url": "https://x.test/" + "p" * 2048}, "url"),
        ("ops", {"url": "https:///no-host"}, "url"),
        ("ops", {"format": "json"}, "url"),
        ("x" * 129, {"url": "https://x.test/h"}, "name"),
        ("a:b", {"url": "https://x.test/h"}, "name"),
    ],
)
def test_a_bad_channel_is_a_422_naming_the_field(
    api: Api, name: str, body: dict[str, Any], path: str
) -> None:
    problem = assert_problem(put_channel(api, name, body), 422)

    assert [e["path"] for e in problem["errors"]] == [path]
    assert api.client.get("/notifications/channels").json() == []


# --- the secret, in no response and no log line -------------------------------------------


def test_the_secret_is_in_no_response_and_no_log_line(api: Api, receiver: Receiver) -> None:
    with capture_logs() as logs:
        responses = [
            put_channel(api, "ops", {"url": receiver.url, "secret": SECRET}),
            put_channel(api, "ops", {"url": "ftp://x.test", "secret": SECRET}),
            put_channel(api, "ops", {"url": receiver.url, "secret": SECRET, "kinds": ["x"]}),
            put_channel(api, "ops", {"url": receiver.url, "secret": SECRET * 40}),
            put_channel(api, "ops", {"url": receiver.url, "secret": [SECRET]}),
            api.client.get("/notifications/channels"),
            api.client.post("/notifications/channels/ops/test"),
        ]
        reject_junk(api)
        api.container.notifier.deliver_once()
        responses.append(api.client.get("/notifications/deliveries"))

    assert [r.status_code for r in responses] == [200, 422, 422, 422, 422, 200, 200, 200]
    assert all(SECRET not in r.text for r in responses)
    assert logs, "nothing was logged: the check below would prove nothing"
    assert SECRET not in repr(logs)
    # the receiver did get signed bodies: the secret was used, only never shown
    assert [r.headers["x-signature-256"][:7] for r in receiver.received] == ["sha256="] * 2


_texts = st.text(alphabet=st.characters(exclude_categories=()), max_size=30)  # surrogates too
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=8,
)
_KINDS = [kind.value for kind in IncidentKind]
_channel_bodies = st.fixed_dictionaries(
    {},
    optional={
        "url": st.sampled_from(["https://hooks.example.test/h", "http://127.0.0.1:9/h"]) | _json,
        "format": st.sampled_from(["json", "slack"]) | _json,
        "secret": st.sampled_from([SECRET, SECRET * 40, SECRET + "\x00", SECRET + "\ud800"])
        | st.lists(st.just(SECRET), max_size=2),
        "kinds": st.lists(st.sampled_from(_KINDS), max_size=3) | _json,
        "metrics": st.lists(_texts, max_size=3) | _json,
        "enabled": st.booleans() | _json,
        "unexpected": _json,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_channel_bodies | _json)
def test_any_body_put_as_a_channel_is_a_2xx_or_a_4xx_problem_and_never_echoes_the_secret(
    api: Api, body: Any
) -> None:
    response = api.client.put(
        "/notifications/channels/fuzz",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code in (200, 422), response.text
    assert SECRET not in response.text
    if response.status_code == 200:
        assert response.json()["has_secret"] is (isinstance(body, dict) and "secret" in body)
    else:
        assert response.json()["errors"], response.text


# --- links, and a URL no client can use ----------------------------------------------------


def test_an_occurrence_links_to_the_page_of_its_event(api: Api) -> None:
    reject_junk(api)
    [incident] = api.client.get("/incidents").json()["incidents"]

    [occurrence] = api.client.get(f"/incidents/{incident['id']}").json()["occurrences"]
    followed = api.client.get(occurrence["link"], follow_redirects=False)

    assert followed.status_code == 303, followed.text
    [(event_id,)] = api.rows("SELECT id FROM event_log WHERE event_key = %s", incident["subject"])
    assert followed.headers["location"] == f"/ui/events/{event_id}"
    assert api.client.get(incident["url"]).status_code == 200


def test_a_channel_whose_url_no_client_can_use_is_refused_at_its_path(api: Api) -> None:
    refused = put_channel(api, "odd", {"url": UNUSABLE_URL})

    assert_problem(refused, 422, detail_contains="IDNA")
    assert api.client.get("/notifications/channels").json() == []


def test_testing_a_channel_nobody_listens_to_says_why(api: Api) -> None:
    assert put_channel(api, "odd", {"url": "http://127.0.0.1:9/hook"}).status_code == 200

    tested = api.client.post("/notifications/channels/odd/test")

    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is False
    assert tested.json()["detail"].startswith("ConnectError: ")
    [delivery] = api.client.get("/notifications/deliveries").json()
    assert (delivery["change"], delivery["state"]) == ("test", "undeliverable")


def test_the_sender_answers_an_unusable_url_as_a_failed_post() -> None:
    sender = HttpNotificationSender()
    try:
        for url in (UNUSABLE_URL, "http://a:99999999/h", "http://[::1/h"):
            result = sender.post(url, "{}", {}, timeout=1.0)
            assert result.ok is False, url
            assert result.detail, url
    finally:
        sender.close()


# --- Prometheus -----------------------------------------------------------------------------


def _sample(text: str, name: str, label: str) -> str | None:
    prefix = f"metrics_orchestrator_{name}{{{label}}} "
    return next(
        (line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)), None
    )


def test_prometheus_counts_every_incident_kind_and_deliveries_waiting_or_given_up_on(
    api: Api,
) -> None:
    with running_receiver() as gone:
        url = gone.url  # nobody listens there any more: every post is refused
    put_channel(api, "down", {"url": url})
    reject_junk(api)

    scraped = api.client.get("/prometheus").text
    assert _sample(scraped, "incidents_open", 'kind="event_rejected"') == "1.0"
    assert _sample(scraped, "incidents_open", 'kind="run_failed"') == "0.0"
    assert _sample(scraped, "notification_deliveries", 'state="pending"') == "1.0"
    assert _sample(scraped, "notification_deliveries", 'state="undeliverable"') == "0.0"

    for _ in range(40):  # doubling from 30 s to an hour, for a day
        api.container.notifier.deliver_once()
        api.clock.advance(timedelta(hours=1))
    with psycopg.connect(api.database_url) as conn:
        conn.execute("UPDATE incidents SET resolved_at = now(), resolution = 'test'")

    scraped = api.client.get("/prometheus").text
    assert _sample(scraped, "notification_deliveries", 'state="pending"') == "0.0"
    assert _sample(scraped, "notification_deliveries", 'state="undeliverable"') == "1.0"
    assert _sample(scraped, "incidents_open", 'kind="event_rejected"') == "0.0"
