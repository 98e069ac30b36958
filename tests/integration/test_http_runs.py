"""Run endpoints: listing, detail, cancel, retry and manual runs (SPEC §5.5, §5.6, §6.3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from metrics_orchestrator.domain.model import RunStatus
from tests.factories import seed_metric, seed_run
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock

S = RunStatus


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        yield api


def _only_run(api: Api, metric_code: str) -> dict[str, Any]:
    (run,) = api.runs_of(metric_code)
    return run


def _detail(api: Api, run_id: str) -> dict[str, Any]:
    response = api.client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- detail --------------------------------------------------------------------------------


def test_a_pending_run_shows_what_it_waits_for_and_since_when(api: Api) -> None:
    waiting_since = api.clock.now()
    api.send_update("fx_daily", "v1")
    api.clock.advance(timedelta(minutes=5))

    detail = _detail(api, _only_run(api, "reserves.at_parallel")["id"])

    assert detail["status"] == "pending_dependencies"
    assert detail["waiting_for"] == ["reserves_daily"]
    assert detail["waiting_since"] == waiting_since.isoformat().replace("+00:00", "Z")
    held = {p["dataset_id"]: p for p in detail["pending"]}
    assert held["fx_daily"]["received"] is True
    assert held["fx_daily"]["version_manifest_path"].endswith("/v1/manifest.json")
    assert held["reserves_daily"] == {
        "dataset_id": "reserves_daily",
        "received": False,
        "update_id": None,
        "received_at": None,
        "version_manifest_path": None,
    }
    assert detail["lineage"] == []
    assert detail["request_payload"] is None


def test_a_queued_run_shows_its_lineage_request_and_attempts(api: Api) -> None:
    api.send_update("fx_daily", "v1")
    api.send_update("reserves_daily", "r1")

    run = _only_run(api, "reserves.at_parallel")
    detail = _detail(api, run["id"])

    assert detail["status"] == "queued"
    assert detail["waiting_for"] == []
    assert detail["waiting_since"] is None
    assert {
        e["dataset_id"]: e["version_manifest_path"].split("/")[-2] for e in detail["lineage"]
    } == {
        "fx_daily": "v1",
        "reserves_daily": "r1",
    }
    payload = detail["request_payload"]
    assert payload["runId"] == run["id"]
    assert payload["metricCode"] == "reserves.at_parallel"
    assert set(payload["catalog"]["datasets"]) == {"fx_daily", "reserves_daily"}
    assert detail["attempts"] == [
        {
            "id": run["id"],
            "attempt": 1,
            "trigger": "automatic",
            "status": "queued",
            "retry_of": None,
            "created_at": detail["created_at"],
            "completed_at": None,
        }
    ]
    assert detail["queued_at"] is not None


def test_unknown_or_malformed_run_ids(api: Api) -> None:
    assert_problem(api.client.get(f"/runs/{uuid4()}"), 404, detail_contains="unknown run")
    body = assert_problem(api.client.get("/runs/not-a-uuid"), 422)
    assert body["errors"][0]["path"] == "run_id"


# --- listing -------------------------------------------------------------------------------


def test_runs_are_filtered_and_paged_newest_first(api: Api) -> None:
    for version in range(5):
        api.send_update("reserves_daily", f"r{version}")
        api.clock.advance(timedelta(minutes=1))

    sma = api.runs_of("reserves.sma_20")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"metric": "reserves.sma_20", "status": "queued", "limit": 2}
        page = api.client.get("/runs", params=params | ({"cursor": cursor} if cursor else {}))
        seen += [r["id"] for r in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert len(sma) == 5
    assert seen == [r["id"] for r in sma]
    created = [r["created_at"] for r in sma]
    assert created == sorted(created, reverse=True)
    pending = api.client.get("/runs", params={"status": "pending_dependencies"}).json()["items"]
    assert {r["metric_code"] for r in pending} == {"reserves.at_parallel", "reserves.real_pesos"}
    since = (api.clock.now() - timedelta(minutes=2)).isoformat()
    recent = api.client.get("/runs", params={"metric": "reserves.sma_20", "since": since})
    assert len(recent.json()["items"]) == 2


def test_run_listing_rejects_bad_filters(api: Api) -> None:
    assert_problem(api.client.get("/runs", params={"status": "sleeping"}), 422)
    body = assert_problem(api.client.get("/runs", params={"since": "2025-01-01T00:00:00"}), 422)
    assert body["errors"][0]["path"] == "since"
    assert_problem(api.client.get("/runs", params={"cursor": "garbage!"}), 422)


# --- cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.PENDING_DEPENDENCIES, S.QUEUED, S.DISPATCHED, S.RUNNING])
def test_an_open_run_is_canceled_with_the_reason(api: Api, status: RunStatus) -> None:
    run_id = _seed(api, status)

    response = api.client.post(f"/runs/{run_id}/cancel", json={"reason": "wrong inputs"})

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["status_reason"]) == (
        "canceled",
        "wrong inputs",
    )


def test_cancel_without_a_body_uses_the_default_reason(api: Api) -> None:
    run_id = _seed(api, S.QUEUED)

    response = api.client.post(f"/runs/{run_id}/cancel")

    assert response.json()["status_reason"] == "canceled by operator"


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELED])
def test_cancel_of_an_ended_run_is_a_409_and_changes_nothing(api: Api, status: RunStatus) -> None:
    run_id = _seed(api, status)

    body = assert_problem(api.client.post(f"/runs/{run_id}/cancel"), 409)

    assert f"from {status.value} to canceled" in body["detail"]
    assert body["type"].endswith("illegal-transition")
    assert _detail(api, str(run_id))["status"] == status.value


def test_cancel_of_an_unknown_run_is_404(api: Api) -> None:
    assert_problem(api.client.post(f"/runs/{uuid4()}/cancel"), 404)


# --- retry -----------------------------------------------------------------------------------


def test_retry_creates_a_new_attempt_with_the_same_inputs(api: Api) -> None:
    api.send_update("reserves_daily", "r1")
    original = _only_run(api, "reserves.sma_20")
    api.client.post(f"/runs/{original['id']}/cancel")

    response = api.client.post(f"/runs/{original['id']}/retry")

    assert response.status_code == 201, response.text
    retry = response.json()
    assert response.headers["location"] == f"/runs/{retry['id']}"
    assert (retry["status"], retry["trigger"], retry["attempt"], retry["retry_of"]) == (
        "queued",
        "manual",
        2,
        original["id"],
    )
    assert [e["update_id"] for e in retry["lineage"]] == [
        e["update_id"] for e in _detail(api, original["id"])["lineage"]
    ]
    assert [a["id"] for a in retry["attempts"]] == [original["id"], retry["id"]]


def test_retry_of_a_run_still_open_is_a_409(api: Api) -> None:
    api.send_update("reserves_daily", "r1")
    run = _only_run(api, "reserves.sma_20")

    assert_problem(api.client.post(f"/runs/{run['id']}/retry"), 409, detail_contains="queued")
    assert_problem(api.client.post(f"/runs/{uuid4()}/retry"), 404)


def test_retry_of_an_attempt_that_is_not_the_latest_is_a_409_naming_the_latest(api: Api) -> None:
    """Issue 19: attempt 1 retried by hand twice made two "attempt 2"s (SPEC §5.6)."""
    api.send_update("reserves_daily", "r1")
    first = _only_run(api, "reserves.sma_20")
    api.client.post(f"/runs/{first['id']}/cancel")
    second = api.client.post(f"/runs/{first['id']}/retry").json()
    api.client.post(f"/runs/{second['id']}/cancel")

    refused = api.client.post(f"/runs/{first['id']}/retry")
    third = api.client.post(f"/runs/{second['id']}/retry")

    assert_problem(refused, 409, detail_contains=f"retry the latest attempt, {second['id']}")
    assert third.status_code == 201, third.text
    assert [a["attempt"] for a in third.json()["attempts"]] == [1, 2, 3]


# --- manual runs ----------------------------------------------------------------------------


def test_a_manual_run_uses_the_freshest_update_even_when_stale(api: Api) -> None:
    api.send_update("reserves_daily", "r1")
    api.send_update("reserves_daily", "r2")
    api.clock.advance(timedelta(days=60))

    response = api.client.post("/metrics/reserves.sma_20/runs")

    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["trigger"], run["status"], run["attempt"]) == ("manual", "queued", 1)
    assert [e["version_manifest_path"].split("/")[-2] for e in run["lineage"]] == ["r2"]
    assert response.headers["location"] == f"/runs/{run['id']}"


def test_a_manual_run_needs_every_input_to_have_an_update(api: Api) -> None:
    api.send_update("fx_daily", "v1")

    body = assert_problem(api.client.post("/metrics/reserves.at_parallel/runs"), 409)

    assert "reserves_daily" in body["detail"]
    assert_problem(api.client.post("/metrics/no.such/runs"), 404)


def _seed(api: Api, status: RunStatus) -> str:
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM metrics WHERE id = 'm.ratio'").fetchone():
            seed_metric(conn)
        return str(seed_run(conn, status=status, now=api.clock.now()))
