"""Health, readiness, Prometheus metrics, auth and the OpenAPI document (SPEC §6.3, §6.4)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from metrics_orchestrator.infrastructure.postgres.migrations import available_migrations
from tests.conftest import drop_database
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock

PREFIX = "metrics_orchestrator_"


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        yield api


def _samples(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.client.get("/prometheus")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((PREFIX + name, tuple(sorted(labels.items()))), 0.0)


# --- health ----------------------------------------------------------------------------------


def test_liveness_and_readiness(api: Api) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}
    assert api.client.get("/health/ready").json() == {
        "status": "ready",
        "database": "reachable",
        "pending_migrations": [],
    }


def test_readiness_fails_while_migrations_are_pending(empty_database_url: str) -> None:
    with running_api(empty_database_url, MutableClock()) as api:
        body = assert_problem(api.client.get("/health/ready"), 503, detail_contains="migrate")

    every = [f"{m.version}_{m.name}" for m in available_migrations()]
    assert body["pending_migrations"] == every
    assert every[0] == "001_initial_schema"


def test_without_its_database_the_api_answers_503_not_500(
    database_url: str, postgres_server_url: str
) -> None:
    with running_api(database_url, MutableClock()) as api:
        drop_database(postgres_server_url, database_url)

        assert_problem(api.client.get("/health/ready"), 503, detail_contains="unreachable")
        assert_problem(api.client.get("/metrics"), 503, detail_contains="database")
        assert api.client.get("/health").status_code == 200


# --- prometheus ------------------------------------------------------------------------------


def test_counters_move_when_events_are_processed(api: Api) -> None:
    before = _samples(api)

    api.send_update("fx_daily", "v1")  # fx.gap queued; two metrics start waiting
    api.send_update("fx_daily", "v1")  # duplicate
    api.send_update("unknown_ds", "v1")  # rejected
    api.send_update("reserves_daily", "r1")  # both waiting runs promoted... one still waits
    after = _samples(api)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    received = "events_received_total"
    assert delta(received, event_type="projection_update", outcome="processed") == 2
    assert delta(received, event_type="projection_update", outcome="duplicate") == 1
    assert delta(received, event_type="projection_update", outcome="rejected") == 1
    assert delta("event_processing_seconds_count", event_type="projection_update") == 4
    transitions = "run_transitions_total"
    assert delta(transitions, from_status="none", to_status="pending_dependencies") == 2
    assert delta(transitions, from_status="pending_dependencies", to_status="queued") == 1
    assert delta(transitions, from_status="none", to_status="queued") == 2  # fx.gap, sma_20
    assert _value(after, "runs_pending") == 1  # reserves.real_pesos waits for prices
    assert _value(after, "dispatcher_backlog") == 3


def test_the_exposition_has_no_created_series(api: Api) -> None:
    api.send_update("fx_daily", "v1")
    names = {name for name, _ in _samples(api)}
    assert "metrics_orchestrator_events_received_total" in names
    assert not [name for name in names if name.endswith("_created")]
    assert "_created" not in api.client.get("/prometheus").text


def test_the_backlog_counts_only_runs_due_for_dispatch(api: Api) -> None:
    api.send_update("reserves_daily", "r1")
    (run,) = api.runs_of("reserves.sma_20")
    later = api.clock.now() + timedelta(minutes=5)
    with_not_before = "UPDATE metric_runs SET not_before = %s WHERE id = %s RETURNING id"
    assert api.rows(with_not_before, later, run["id"])

    assert _value(_samples(api), "dispatcher_backlog") == 0
    api.clock.advance(timedelta(minutes=6))
    assert _value(_samples(api), "dispatcher_backlog") == 1


def test_manual_runs_count_as_new_queued_runs(api: Api) -> None:
    api.send_update("reserves_daily", "r1")
    before = _value(_samples(api), "run_transitions_total", from_status="none", to_status="queued")

    assert api.client.post("/metrics/reserves.sma_20/runs").status_code == 201

    after = _value(_samples(api), "run_transitions_total", from_status="none", to_status="queued")
    assert after - before == 1


def test_each_app_has_its_own_registry(database_url: str) -> None:
    with (
        running_api(database_url, MutableClock()) as first,
        running_api(database_url, MutableClock()) as second,
    ):
        first.send_update("nowhere", "v1")

        assert (
            _value(
                _samples(first),
                "events_received_total",
                event_type="projection_update",
                outcome="rejected",
            )
            == 1
        )
        assert (
            _value(
                _samples(second),
                "events_received_total",
                event_type="projection_update",
                outcome="rejected",
            )
            == 0
        )


# --- auth ------------------------------------------------------------------------------------

TOKEN = "s3cret-token"


@pytest.fixture
def secured(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    with running_api(database_url, MutableClock(), env={"API_TOKEN": TOKEN}) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        yield api


MUTATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/series", {"code": "S"}),
    ("POST", "/datasets", {"id": "d", "series": []}),
    (
        "POST",
        "/metrics",
        {"id": "m", "code": "m", "expression_type": "window_op", "expression": {}},
    ),
    ("PATCH", "/metrics/fx.gap", {"enabled": False}),
    ("POST", "/metrics/fx.gap/runs", None),
    ("POST", "/runs/00000000-0000-0000-0000-000000000000/cancel", None),
    ("POST", "/runs/00000000-0000-0000-0000-000000000000/retry", None),
    (
        "POST",
        "/runs/bulk",
        {"action": "cancel", "run_ids": ["00000000-0000-0000-0000-000000000000"]},
    ),
    ("POST", "/events/projection-update", {"dataset_id": "fx_daily"}),
    ("POST", "/events/a:b/replay", None),
]


@pytest.mark.parametrize(("method", "path", "body"), MUTATIONS)
def test_mutations_need_the_bearer_token(
    secured: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    missing = secured.client.request(method, path, json=body)
    wrong = secured.client.request(
        method, path, json=body, headers={"Authorization": "Bearer not-it"}
    )
    right = secured.client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )

    assert_problem(missing, 401, detail_contains="missing bearer token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_problem(wrong, 401, detail_contains="invalid bearer token")
    assert right.status_code != 401


def test_reads_need_no_token(secured: Api) -> None:
    for path in ("/metrics", "/datasets", "/runs", "/events", "/health", "/prometheus"):
        assert secured.client.get(path).status_code == 200, path


def test_without_a_configured_token_mutations_are_open(api: Api) -> None:
    assert api.client.post("/series", json={"code": "S"}).status_code == 200


# --- OpenAPI ---------------------------------------------------------------------------------


def test_openapi_documents_problems_and_the_bearer_scheme(api: Api) -> None:
    assert api.client.get("/docs").status_code == 200
    schema = api.client.get("/openapi.json").json()

    cancel = schema["paths"]["/runs/{run_id}/cancel"]["post"]
    assert set(cancel["responses"]) >= {"200", "401", "404", "409", "422"}
    assert list(cancel["responses"]["409"]["content"]) == ["application/problem+json"]
    assert cancel["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/runs"]["get"]
    replay = schema["paths"]["/events/{event_key}/replay"]["post"]
    assert replay["parameters"][0]["name"] == "event_key"


# --- access log --------------------------------------------------------------------------------


def test_each_request_writes_one_access_line_without_secrets(database_url: str) -> None:
    env = {"API_TOKEN": "tok-very-secret-123"}
    with running_api(database_url, MutableClock(), env=env) as api, capture_logs() as logs:
        api.client.get("/datasets", params={"limit": 5})
        api.client.post(
            "/series",
            json={"code": "S1"},
            headers={"Authorization": "Bearer tok-very-secret-123"},
        )
        api.client.get("/runs/not-a-uuid")
    access = [entry for entry in logs if entry["event"] == "ON_HTTP_REQUEST"]
    assert [(e["method"], e["path"], e["status"]) for e in access] == [
        ("GET", "/datasets", 200),
        ("POST", "/series", 200),
        ("GET", "/runs/not-a-uuid", 422),
    ]
    assert all(e["log_level"] == "info" for e in access)
    assert access[0]["query"] == "limit=5"
    assert "tok-very-secret-123" not in repr(logs)
