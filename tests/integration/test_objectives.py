"""Freshness objectives through every catalog door (SPEC §9): the catalog file (with its
`notifications:` channels), POST and PATCH of datasets and metrics, and what GET shows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.errors import ValidationError
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock

SECRET = "never-shown-secret"


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        yield api


def catalog(**dataset: Any) -> dict[str, Any]:
    return {
        "series": [{"code": "A"}],
        "datasets": [{"id": "d1", "series": ["A"], **dataset}],
        "metrics": [
            {
                "id": "m1",
                "code": "m.one",
                "expression_type": "window_op",
                "expression": {"op": "sma", "series": {"seriesCode": "A"}, "window": 3},
                "max_data_age": "P2D",
            }
        ],
        "notifications": [
            {
                "name": "team",
                "url": "https://hooks.example.test/x",
                "format": "slack",
                "kinds": ["run_failed", "dataset_late"],
                "metrics": ["m.*"],
            },
            {"name": "signed", "url": "http://127.0.0.1:9/h", "secret": SECRET},
        ],
    }


def test_a_catalog_file_sets_objectives_and_channels(api: Api) -> None:
    result = api.container.catalog.load_catalog(catalog(expected_every="PT6H", grace="PT30M"))

    assert result.channels == ("team", "signed")
    dataset = api.client.get("/datasets/d1").json()
    assert (dataset["expected_every"], dataset["grace"]) == ("PT6H", "PT30M")
    assert dataset["freshness"]["state"] == "ok"
    assert "expected every PT6H + grace PT30M" in dataset["freshness"]["why"]
    metric = api.client.get("/metrics/m.one").json()
    assert metric["max_data_age"] == "P2D"
    assert metric["freshness"]["state"] == "ok"
    channels = {c.name: c for c in api.container.notifications.channels()}
    assert channels["team"].metrics == ("m.*",)
    assert channels["signed"].has_secret
    assert SECRET not in repr(channels) + repr(api.rows("SELECT name FROM notification_channels"))


def test_reloading_without_an_objective_removes_it(api: Api) -> None:
    api.container.catalog.load_catalog(catalog(expected_every="PT6H"))
    api.container.catalog.load_catalog(catalog())

    dataset = api.client.get("/datasets/d1").json()
    assert (dataset["expected_every"], dataset["freshness"]) == (None, None)


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        ({"expected_every": "P1M"}, "datasets[0].expected_every", "months and years"),
        ({"expected_every": "P367D"}, "datasets[0].expected_every", "out of range"),
        ({"expected_every": 3600}, "datasets[0].expected_every", "ISO-8601 duration"),
        ({"grace": "PT1H"}, "datasets[0].grace", "grace needs expected_every"),
    ],
)
def test_a_bad_objective_is_refused_naming_its_path(
    api: Api, fields: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        api.container.catalog.load_catalog(catalog(**fields))

    assert any(e.path == path and words in e.message for e in refused.value.errors), refused.value
    assert api.rows("SELECT count(*) FROM datasets WHERE id = 'd1'") == [(0,)]


def test_a_bad_channel_is_refused_and_its_secret_not_echoed(api: Api) -> None:
    document = catalog()
    document["notifications"] = [
        {"name": "x", "url": "ftp://nope", "format": "teams", "secret": "", "kinds": ["nope"]}
    ]
    with pytest.raises(ValidationError) as refused:
        api.container.catalog.load_catalog(document)

    paths = {e.path for e in refused.value.errors}
    assert {
        "notifications[0].url",
        "notifications[0].format",
        "notifications[0].secret",
    } <= paths
    assert any(p.startswith("notifications[0].kinds") for p in paths)


def test_post_and_patch_of_datasets_and_metrics(api: Api) -> None:
    api.container.catalog.load_catalog(catalog())
    response = api.client.patch("/datasets/d1", json={"expected_every": "P1D", "grace": "PT2H"})
    assert response.status_code == 200, response.text
    assert (response.json()["expected_every"], response.json()["grace"]) == ("P1D", "PT2H")
    response = api.client.patch("/datasets/d1", json={"expected_every": None})
    assert (response.json()["expected_every"], response.json()["grace"]) == (None, "PT0S")
    assert_problem(
        api.client.patch("/datasets/d1", json={"grace": "PT1H"}),
        422,
        detail_contains="grace needs expected_every",
    )
    assert_problem(api.client.patch("/datasets/nope", json={"enabled": True}), 404)

    response = api.client.patch("/metrics/m.one", json={"max_data_age": "PT12H"})
    assert response.json()["max_data_age"] == "PT12H"
    response = api.client.patch("/metrics/m.one", json={"enabled": False})
    assert response.json()["max_data_age"] == "PT12H"  # left out: kept
    response = api.client.patch("/metrics/m.one", json={"max_data_age": None})
    assert response.json()["max_data_age"] is None
    assert_problem(api.client.patch("/metrics/m.one", json={"max_data_age": "P1Y"}), 422)

    body = {"id": "d9", "series": ["A"], "expected_every": "PT1S"}
    posted = api.client.post("/datasets", json=body)
    assert posted.json()["expected_every"] == "PT1S"


def test_an_overdue_metric_shows_why_and_since(api: Api) -> None:
    api.container.catalog.load_catalog(catalog())
    api.clock.advance(timedelta(days=3))

    metric = api.client.get("/metrics/m.one").json()
    assert metric["freshness"]["state"] == "overdue"
    assert metric["freshness"]["since"] == metric["freshness"]["due_at"]
    assert "no successful run since registration" in metric["freshness"]["why"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.one_of(
        st.text(max_size=30),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
    )
)
def test_any_objective_text_is_stored_or_refused_never_a_server_error(
    api: Api, value: object
) -> None:
    response = api.client.post(
        "/datasets", json={"id": "dh", "series": [], "expected_every": value}
    )
    assert response.status_code in (200, 422), response.text
