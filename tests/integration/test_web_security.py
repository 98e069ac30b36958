"""The dashboard's buttons under API_TOKEN (sign-in cookie), CSRF, escaping, and offline assets."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from metrics_orchestrator.interfaces.web.pages_events import MAX_FORM_BYTES
from metrics_orchestrator.interfaces.web.security import NOTICE_COOKIE, SESSION_COOKIE
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.integration.web_helpers import (
    SAME_ORIGIN,
    external_urls,
    page,
    run_id_of,
    seeded_api,
)
from tests.support import MutableClock

PAGES = ("/", "/ui/runs", "/ui/metrics", "/ui/datasets", "/ui/graph", "/ui/events")


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    with seeded_api(database_url, catalogs_dir) as api:
        yield api


# --- buttons, sign-in and CSRF -------------------------------------------------------------


def test_a_cross_site_post_is_refused(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")

    foreign = api.client.post(
        f"/ui/runs/{run_id}/cancel", headers={"Origin": "http://evil.example"}
    )
    referred = api.client.post(
        f"/ui/runs/{run_id}/cancel", headers={"Referer": "http://evil.example/page"}
    )
    null = api.client.post(f"/ui/runs/{run_id}/cancel", headers={"Origin": "null"})

    assert foreign.status_code == 403
    assert "not from this site" in foreign.text
    assert referred.status_code == 403
    assert null.status_code == 403
    assert api.runs_of("fx.gap")[0]["status"] == "queued"


def test_a_post_with_no_browser_header_is_judged_as_the_api_judges_it(api: Api) -> None:
    """Issue 20 item 2: one rule for both. A request without Origin, Referer or
    Sec-Fetch-Site comes from no browser page (nothing to forge); without a token it passes,
    as `curl -X POST /runs/{id}/cancel` does."""
    run_id = run_id_of(api, "fx.gap")

    bare = api.client.post(f"/ui/runs/{run_id}/cancel", follow_redirects=False)

    assert bare.status_code == 303
    assert api.runs_of("fx.gap")[0]["status"] == "canceled"


# --- item 1: the form reader --------------------------------------------------------------------


def test_a_form_over_its_limit_is_refused_as_it_streams(api: Api) -> None:
    big = {"event_key": "k" * (MAX_FORM_BYTES + 1)}
    declared = api.client.post("/ui/events/replay", data=big, headers=SAME_ORIGIN)

    def chunks() -> Iterator[bytes]:
        yield b"event_key="
        for _ in range(64):
            yield b"k" * 1024

    streamed = api.client.post(
        "/ui/events/replay",
        content=chunks(),
        headers={**SAME_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"},
    )

    assert_problem(declared, 413, detail_contains=str(MAX_FORM_BYTES))
    assert_problem(streamed, 413, detail_contains=str(MAX_FORM_BYTES))


# --- item 8: the session cookie and notices -----------------------------------------------------


def test_the_sign_in_cookie_proves_sign_in_without_holding_the_token(
    database_url: str, catalogs_dir: Path
) -> None:
    with running_api(database_url, MutableClock(), env={"API_TOKEN": "s3cret"}) as api:
        signed = api.client.post(
            "/ui/sign-in",
            data={"token": "s3cret", "next": "/"},
            headers=SAME_ORIGIN,
            follow_redirects=False,
        )
        cookie = signed.headers["set-cookie"]
        value = cookie.split(";")[0].split("=", 1)[1]
        assert "s3cret" not in cookie
        assert 'action="/ui/sign-out"' in page(api, "/")

        for forged in (
            "s3cret",
            value.split(".")[0] + ".0000",
            "9999999999." + value.split(".")[1],
        ):
            api.client.cookies.clear()
            api.client.cookies.set(SESSION_COOKIE, forged)
            assert 'action="/ui/sign-out"' not in page(api, "/"), forged


def test_a_crafted_link_cannot_put_text_on_a_page(api: Api) -> None:
    html = page(api, "/ui/runs?notice=Your+session+expired%2C+call+555-0100")

    assert "555-0100" not in html
    assert 'class="notice"' not in html


def test_a_notice_is_shown_once_on_the_page_it_was_left_for(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")

    canceled = api.client.post(
        f"/ui/runs/{run_id}/cancel", headers=SAME_ORIGIN, follow_redirects=False
    )

    assert "notice" not in canceled.headers["location"]
    assert "run canceled" not in page(api, "/ui/runs")  # another page
    assert "run canceled" in page(api, canceled.headers["location"])
    assert "run canceled" not in page(api, canceled.headers["location"])  # once


def test_a_tampered_notice_is_not_shown(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")
    canceled = api.client.post(
        f"/ui/runs/{run_id}/cancel", headers=SAME_ORIGIN, follow_redirects=False
    )
    location = canceled.headers["location"]
    genuine = api.client.cookies.get(NOTICE_COOKIE)
    assert genuine
    forged_text = base64.urlsafe_b64encode(b"call 555-0100").decode().rstrip("=")
    api.client.cookies.clear()
    api.client.cookies.set(NOTICE_COOKIE, f"{forged_text}.{genuine.split('.')[1]}")

    assert "555-0100" not in page(api, location)


def test_with_a_token_buttons_need_sign_in_in_an_http_only_strict_cookie(
    database_url: str, catalogs_dir: Path
) -> None:
    with running_api(database_url, MutableClock(), env={"API_TOKEN": "s3cret"}) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        api.client.post(
            "/events/projection-update",
            content='{"event": "projection_update", "dataset_id": "fx_daily", '
            '"bucket": "ingestor-datasets", '
            '"version_manifest_path": "datasets/fx_daily/versions/v1/manifest.json", '
            '"projections_path": "p"}',
            headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"},
        )
        run_id = run_id_of(api, "fx.gap")
        assert "sign in with the API token to use this button" in page(api, f"/ui/runs/{run_id}")
        refused = api.client.post(
            f"/ui/runs/{run_id}/cancel", headers=SAME_ORIGIN, follow_redirects=False
        )
        assert refused.status_code == 401

        wrong = api.client.post(
            "/ui/sign-in",
            data={"token": "nope", "next": "/ui/runs"},
            headers=SAME_ORIGIN,
            follow_redirects=False,
        )
        assert wrong.status_code == 401
        assert "not the API token" in wrong.text
        signed = api.client.post(
            "/ui/sign-in",
            data={"token": "s3cret", "next": "/ui/runs"},
            headers=SAME_ORIGIN,
            follow_redirects=False,
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/ui/runs"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie

        assert (
            api.client.post(
                f"/ui/runs/{run_id}/cancel", headers=SAME_ORIGIN, follow_redirects=False
            ).status_code
            == 303
        )
        assert api.runs_of("fx.gap")[0]["status"] == "canceled"


def test_sign_in_never_redirects_off_site(api: Api) -> None:
    response = api.client.post(
        "/ui/sign-in",
        data={"token": "", "next": "//evil.example/x"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


# --- offline -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_uses_only_assets_of_this_server(api: Api, path: str) -> None:
    html = page(api, path)

    assert external_urls(html) == []
    for asset in re.findall(r'src="(/ui/static/[^"]+)"', html):
        assert api.client.get(asset).status_code == 200, asset


def test_api_docs_load_swagger_ui_from_the_package(api: Api) -> None:
    html = api.client.get("/docs").text

    assert "/ui/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "/ui/static/vendor/swagger-ui/swagger-ui.css" in html
    assert "cdn.jsdelivr.net" not in html
    assert api.client.get("/ui/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_dashboard_routes_stay_out_of_the_openapi_document(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith(("/ui", "/docs"))]


def test_sign_in_page_and_sign_out(database_url: str) -> None:
    with running_api(database_url, MutableClock(), env={"API_TOKEN": "s3cret"}) as api:
        assert 'name="token"' in page(api, "/ui/sign-in?next=/ui/events")
        assert 'href="/ui/sign-in?next=/ui/runs"' in page(api, "/ui/runs")
        api.client.post(
            "/ui/sign-in",
            data={"token": "s3cret", "next": "/"},
            headers=SAME_ORIGIN,
            follow_redirects=False,
        )
        assert 'action="/ui/sign-out"' in page(api, "/")

        out = api.client.post("/ui/sign-out", headers=SAME_ORIGIN, follow_redirects=False)

        assert out.status_code == 303
        assert "max-age=0" in out.headers["set-cookie"].lower()


def test_without_a_token_there_is_nothing_to_sign_in_to(api: Api) -> None:
    assert "no API token" in page(api, "/ui/sign-in")
    assert "Sign in</a>" not in page(api, "/")


def test_catalog_text_is_escaped_everywhere(api: Api) -> None:
    api.container.catalog.load_catalog(
        {"datasets": [{"id": "evil", "name": "<script>alert(1)</script>", "series": []}]}
    )

    listing = page(api, "/ui/datasets")

    assert "<script>alert(1)</script>" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing


def test_text_embedded_in_the_graph_script_cannot_close_it() -> None:
    """Identifiers cannot hold `<` any more (SPEC §2), but the graph's JSON is escaped anyway."""
    from metrics_orchestrator.interfaces.web.rendering import templates

    embedded = str(templates.env.filters["json_script"]({"label": "x</script><b>"}))

    assert "</script>" not in embedded
    assert "x\\u003c/script\\u003e" in embedded


def test_with_a_token_dismiss_needs_sign_in(database_url: str, catalogs_dir: Path) -> None:
    with running_api(database_url, MutableClock(), env={"API_TOKEN": "s3cret"}) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        api.client.post(
            "/events/projection-update",
            content='{"event": "projection_update", "dataset_id": "nope", '
            '"version_manifest_path": "datasets/nope/versions/v1/manifest.json", '
            '"projections_path": "p"}',
            headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"},
        )
        key = "nope:datasets/nope/versions/v1/manifest.json"
        inbox = page(api, "/ui/events")
        assert re.search(r'<input type="text" name="reason"[^>]*disabled', inbox)

        refused = api.client.post(
            "/ui/events/dismiss",
            data={"event_key": key, "reason": "r"},
            headers=SAME_ORIGIN,
            follow_redirects=False,
        )
        unauthorised = api.client.post(f"/events/{key}/dismiss", json={"reason": "r"})

        assert refused.status_code == 401
        assert unauthorised.status_code == 401
        assert [e["status"] for e in api.client.get("/events").json()["items"]] == ["rejected"]


# --- item 5: pages stay small whatever the input ------------------------------------------------


def test_the_inbox_shows_excerpts_of_big_bodies_and_links_to_the_whole(api: Api) -> None:
    big = "not json " + "x" * 200_000
    for _ in range(10):
        response = api.client.post(
            "/events/projection-update", content=big, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422

    html = page(api, "/ui/events")
    links = re.findall(r'href="(/ui/events/\d+)" class="full"', html)

    assert len(html) < 100_000
    assert len(links) == 10
    whole = page(api, links[0])
    assert big in whole
    assert "not_in_catalog" not in whole  # the newest big event, not the seeded one


def test_the_overview_shows_excerpts_of_long_errors(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")
    error = "boom " * 200_000
    api.rows(
        "UPDATE metric_runs SET status = 'failed', error = %s, completed_at = now()"
        " WHERE id = %s RETURNING id",
        error,
        run_id,
    )

    html = page(api, "/")

    assert len(html) < 100_000
    assert f'href="/ui/runs/{run_id}#error-h" class="full"' in html
    assert error in page(api, f"/ui/runs/{run_id}")


def test_an_unknown_event_page_is_an_html_404(api: Api) -> None:
    assert "unknown event 999999" in page(api, "/ui/events/999999", status=404)
    assert "unknown event" in page(api, f"/ui/events/{10**30}", status=404)
