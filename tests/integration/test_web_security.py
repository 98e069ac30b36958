"""The dashboard's buttons under API_TOKEN (sign-in cookie), CSRF, escaping, and offline assets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.http_helpers import Api, running_api
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


def test_a_cross_site_or_originless_post_is_refused(api: Api) -> None:
    run_id = run_id_of(api, "fx.gap")

    foreign = api.client.post(
        f"/ui/runs/{run_id}/cancel", headers={"Origin": "http://evil.example"}
    )
    bare = api.client.post(f"/ui/runs/{run_id}/cancel")

    assert foreign.status_code == 403
    assert "not from this site" in foreign.text
    assert bare.status_code == 403
    assert api.runs_of("fx.gap")[0]["status"] == "queued"


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
