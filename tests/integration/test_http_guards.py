"""Hostile requests on the HTTP API and the dashboard (issue 20 items 1-4, 7): refused before
any route runs, by the same rules for both, and every response carries the security headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from metrics_orchestrator.interfaces.http.guards import MAX_REQUEST_BODY
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.integration.web_helpers import SAME_ORIGIN, UNKNOWN_DATASET_BODY, run_id_of, seeded_api
from tests.support import MutableClock

EVIL = {"Origin": "http://evil.example"}
JSON_TYPE = {"Content-Type": "application/json"}


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    with seeded_api(database_url, catalogs_dir) as api:
        yield api


def _run_count(api: Api) -> int:
    return int(api.rows("SELECT count(*) FROM metric_runs")[0][0])


# --- item 2: the JSON API against cross-site requests -----------------------------------------


def test_a_page_on_another_site_cannot_change_anything_through_the_api(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")
    runs_before, events_before = _run_count(api), api.rows("SELECT count(*) FROM event_log")

    # what a foreign page can send without a preflight: a form, text/plain, or no body
    manual = api.client.post("/metrics/fx.gap/runs", headers=EVIL)
    intake = api.client.post(
        "/events/projection-update",
        content=UNKNOWN_DATASET_BODY,
        headers={"Content-Type": "text/plain", **EVIL},
    )
    cancel = api.client.post(
        f"/runs/{run_id}/cancel",
        content="reason=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    fetched = api.client.post(f"/runs/{run_id}/cancel", headers={"Sec-Fetch-Site": "cross-site"})

    assert_problem(manual, 403, detail_contains="not from this site")
    assert_problem(intake, 403)
    assert_problem(cancel, 415, detail_contains="application/json")
    assert_problem(fetched, 403, detail_contains="cross-site")
    assert _run_count(api) == runs_before
    assert api.rows("SELECT count(*) FROM event_log") == events_before
    assert api.runs_of("fx.gap")[0]["status"] == "queued"


def test_a_body_that_is_not_json_is_refused_with_415_even_from_a_script(api: Api) -> None:
    response = api.client.post(
        "/events/projection-update",
        content=UNKNOWN_DATASET_BODY,
        headers={"Content-Type": "text/plain"},
    )
    assert_problem(response, 415, detail_contains="application/json")
    unlabelled = api.client.post("/series", content='{"code": "S"}')
    assert_problem(unlabelled, 415)


def test_scripts_and_this_sites_pages_still_work(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")

    # curl -X POST: no body, no Content-Type, no browser header
    assert api.client.post("/metrics/fx.gap/runs").status_code == 201
    canceled = api.client.post(f"/runs/{run_id}/cancel", json={"reason": "r"}, headers=SAME_ORIGIN)
    assert canceled.status_code == 200, canceled.text
    assert api.client.post(f"/runs/{run_id}/retry", headers=SAME_ORIGIN).status_code == 201


def test_the_dashboard_and_the_api_judge_the_same_request_alike(api: Api) -> None:
    """One rule: what the API refuses from a browser, the dashboard refuses, and vice versa."""
    run_id = run_id_of(api, "fx.gap")
    for headers in (EVIL, {"Referer": "http://evil.example/x"}, {"Sec-Fetch-Site": "same-site"}):
        api_answer = api.client.post(f"/runs/{run_id}/cancel", headers=headers)
        ui_answer = api.client.post(
            f"/ui/runs/{run_id}/cancel", headers=headers, follow_redirects=False
        )
        assert (api_answer.status_code, ui_answer.status_code) == (403, 403)
    assert api.runs_of("fx.gap")[0]["status"] == "queued"


# --- item 3: DNS rebinding --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/runs", "/", "/ui/events", "/docs", "/openapi.json"])
def test_a_host_this_service_is_not_reached_by_is_refused(api: Api, path: str) -> None:
    response = api.client.get(path, headers={"Host": "rebound.evil.example:8000"})

    assert_problem(response, 421, detail_contains="PUBLIC_URL")


def test_probes_by_ip_address_still_answer(api: Api) -> None:
    for path in ("/health", "/health/ready", "/prometheus"):
        assert api.client.get(path, headers={"Host": "10.1.2.3:8000"}).status_code == 200


def test_loopback_names_are_trusted_without_public_url(database_url: str) -> None:
    with running_api(database_url, MutableClock(), env={"PUBLIC_URL": ""}) as api:
        assert api.client.get("/runs", headers={"Host": "localhost:8000"}).status_code == 200
        assert api.client.get("/runs", headers={"Host": "[::1]:8000"}).status_code == 200
        assert_problem(api.client.get("/runs"), 421)  # `testserver` is no name of ours


def test_behind_a_proxy_that_rewrites_host_the_buttons_work(
    database_url: str, catalogs_dir: Path
) -> None:
    env = {"PUBLIC_URL": "https://metrics.example.com"}
    with running_api(database_url, MutableClock(), env=env) as api:
        api.client.base_url = httpx.URL("http://127.0.0.1:8000")  # what the proxy sends
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        assert api.send_update("fx_daily", "v1").status_code == 200
        run_id = run_id_of(api, "fx.gap")
        from_the_page = {"Origin": "https://metrics.example.com"}

        canceled = api.client.post(
            f"/ui/runs/{run_id}/cancel", headers=from_the_page, follow_redirects=False
        )
        elsewhere = api.client.post(
            "/metrics/fx.gap/runs", headers={"Origin": "https://elsewhere.example.com"}
        )

        assert canceled.status_code == 303, canceled.text
        assert api.runs_of("fx.gap")[0]["status"] == "canceled"
        assert_problem(elsewhere, 403)


# --- item 4: security headers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/", {}),
        ("/ui/events", {}),
        ("/docs", {}),
        ("/runs", {}),
        ("/ui/static/app.css", {}),
        ("/no/such/route", {}),
        ("/runs", {"Host": "evil.example"}),
    ],
)
def test_every_response_forbids_framing_sniffing_and_foreign_content(
    api: Api, path: str, headers: dict[str, str]
) -> None:
    response = api.client.get(path, headers=headers)

    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/", "/ui/runs", "/ui/events", "/ui/graph", "/docs"])
def test_pages_have_no_inline_script_or_style_the_policy_would_block(api: Api, path: str) -> None:
    html = api.client.get(path).text

    inline_scripts = re.findall(r"<script(?![^>]*\b(?:src|type=\"application/json\"))[^>]*>", html)
    assert inline_scripts == []
    assert "<style" not in html
    assert " style=" not in html


# --- item 1: bodies are read against their limit as they stream --------------------------------


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size + 1):
        yield b" " * size


def test_a_body_over_the_limit_is_refused_before_it_is_read(api: Api) -> None:
    declared = api.client.post(
        "/metrics",
        content=b"{}",
        headers={**JSON_TYPE, "Content-Length": str(MAX_REQUEST_BODY + 1)},
    )
    streamed = api.client.post("/metrics", content=_chunks(2 * MAX_REQUEST_BODY), headers=JSON_TYPE)

    assert_problem(declared, 413)
    assert_problem(streamed, 413, detail_contains=str(MAX_REQUEST_BODY))


# --- item 7: a read-only database ---------------------------------------------------------------


def test_a_read_only_database_answers_503_and_is_not_ready(
    database_url: str, postgres_server_url: str
) -> None:
    name = conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    with running_api(database_url, MutableClock()) as api:
        intake = api.client.post(
            "/events/projection-update", content=UNKNOWN_DATASET_BODY, headers=JSON_TYPE
        )
        ready = api.client.get("/health/ready")

    assert_problem(intake, 503, detail_contains="try again")
    assert intake.headers["retry-after"]
    assert_problem(ready, 503, detail_contains="accepts no writes")


def test_the_openapi_document_lists_what_the_guards_answer(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]

    cancel = paths["/runs/{run_id}/cancel"]["post"]["responses"]
    assert {"403", "413", "415", "421"} <= set(cancel)
    assert "application/problem+json" in cancel["415"]["content"]
    assert "421" in paths["/runs"]["get"]["responses"]
    assert "415" not in paths["/runs"]["get"]["responses"]
    assert "421" not in paths["/health"]["get"]["responses"]
