"""The incidents API (SPEC §6.3, §9): incidents, channels (never their secrets), test
notifications to a real local receiver, deliveries and freshness."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.receiver import Receiver, running_receiver
from tests.support import MutableClock

SECRET = "a-secret-never-echoed"


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        yield api


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as served:
        yield served


def reject_junk(api: Api, n: int = 1) -> None:
    for i in range(n):
        response = api.client.post(
            "/events/projection-update",
            content=f"{{junk {i}",
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422


def test_incidents_are_listed_newest_first_with_their_occurrences(api: Api) -> None:
    reject_junk(api, 3)

    page = api.client.get("/incidents", params={"open": "true", "limit": 2}).json()
    assert [i["kind"] for i in page["incidents"]] == ["event_rejected"] * 2
    assert page["incidents"][0]["id"] > page["incidents"][1]["id"]
    rest = api.client.get("/incidents", params={"before": page["next_before"]}).json()
    assert len(rest["incidents"]) == 1
    assert rest["next_before"] is None

    first = rest["incidents"][0]
    detail = api.client.get(f"/incidents/{first['id']}").json()
    assert detail["subject"] == first["subject"]
    [occurrence] = detail["occurrences"]
    assert occurrence["event_key"] == first["subject"]
    assert occurrence["link"] == f"/ui/events/by-key?{urlencode({'key': first['subject']})}"
    assert_problem(api.client.get("/incidents/999999"), 404)
    assert_problem(api.client.get("/incidents", params={"kind": "nope"}), 422)


def test_a_channel_is_put_listed_tested_and_disabled_and_its_secret_never_shown(
    api: Api, receiver: Receiver
) -> None:
    body = {"url": receiver.url, "format": "json", "secret": SECRET, "kinds": ["event_rejected"]}
    put = api.client.put("/notifications/channels/ops", json=body)
    assert put.status_code == 200, put.text
    assert put.json()["has_secret"] is True
    listed = api.client.get("/notifications/channels")
    assert SECRET not in put.text + listed.text
    assert [c["name"] for c in listed.json()] == ["ops"]
    # a webhook's path can be a secret too (Slack's is): only the origin is shown
    assert listed.json()[0]["url"] == receiver.url.removesuffix("/hook") + "/…"

    tested = api.client.post("/notifications/channels/ops/test").json()
    assert tested == {"ok": True, "detail": "HTTP 200: ok"}
    [posted] = receiver.received
    assert posted.document["type"] == "test"
    assert posted.headers["x-signature-256"].startswith("sha256=")

    reject_junk(api)
    deliveries = api.client.get("/notifications/deliveries", params={"state": "pending"}).json()
    assert [d["change"] for d in deliveries] == ["incident.opened"]
    assert api.client.delete("/notifications/channels/ops").status_code == 204
    assert api.client.get("/notifications/channels").json()[0]["enabled"] is False
    assert_problem(api.client.delete("/notifications/channels/nope"), 404)
    assert_problem(api.client.post("/notifications/channels/nope/test"), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://x.test/h"},
        {"url": "https://x.test/h", "format": "teams"},
        {"url": "https://x.test/h", "kinds": ["nope"]},
        {"url": "https://x.test/h", "secret": ""},
        {"url": "https://x.test/h", "metrics": [""]},
        {"url": "https://x.test/h", "extra": 1},
    ],
)
def test_a_bad_channel_is_a_422(api: Api, body: dict[str, Any]) -> None:
    response = api.client.put("/notifications/channels/ops", json=body)
    assert_problem(response, 422)
    assert api.client.get("/notifications/channels").json() == []


def test_a_bad_channel_name_is_a_422(api: Api) -> None:
    assert_problem(
        api.client.put("/notifications/channels/has space", json={"url": "https://x.test"}), 422
    )


def test_freshness_lists_every_objective(api: Api) -> None:
    api.container.catalog.load_catalog(
        {
            "series": [{"code": "A"}],
            "datasets": [{"id": "d1", "series": ["A"], "expected_every": "PT1H"}],
        }
    )
    board = api.client.get("/freshness").json()
    assert board["datasets"]["d1"]["state"] == "ok"
    assert board["metrics"] == {}


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=10,
    )
)
def test_any_channel_body_is_a_2xx_or_4xx_and_never_echoes_a_secret(api: Api, body: Any) -> None:
    if isinstance(body, dict):
        body = {**body, "secret": SECRET}
    response = api.client.put(
        "/notifications/channels/fuzz",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code < 500, response.text
    assert SECRET not in response.text


def test_prometheus_shows_lateness_overdue_and_open_incidents(api: Api) -> None:
    api.container.catalog.load_catalog(
        {
            "series": [{"code": "A"}],
            "datasets": [
                {"id": "d1", "series": ["A"], "expected_every": "PT1H"},
                {"id": "d2", "series": ["A"]},
            ],
            "metrics": [
                {
                    "id": "m1",
                    "code": "m.one",
                    "expression_type": "window_op",
                    "expression": {
                        "op": "sma",
                        "series": {"seriesCode": "A", "datasetId": "d1"},
                        "window": 3,
                    },
                    "max_data_age": "P1D",
                }
            ],
        }
    )
    reject_junk(api)
    api.clock.advance(timedelta(hours=2))

    text = api.client.get("/prometheus").text

    assert 'metrics_orchestrator_dataset_late{dataset="d1"} 1.0' in text
    assert 'dataset="d2"' not in text  # no objective, no series
    assert 'metrics_orchestrator_metric_overdue{metric="m.one"} 0.0' in text
    assert 'metrics_orchestrator_incidents_open{kind="event_rejected"} 1.0' in text
