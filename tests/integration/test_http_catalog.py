"""Catalog endpoints: metrics, datasets and series (SPEC §2, §6.3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        yield api


@pytest.fixture
def bcra(api: Api, catalogs_dir: Path) -> Api:
    api.load_catalog(catalogs_dir / "bcra_catalog.yaml")
    return api


def _two_providers(api: Api) -> None:
    for code in ("A", "B"):
        assert api.client.post("/series", json={"code": code}).status_code == 200
    for dataset_id, series in (("d1", ["A", "B"]), ("d2", ["B"])):
        response = api.client.post("/datasets", json={"id": dataset_id, "series": series})
        assert response.status_code == 200, response.text


def _metric(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "m-ratio",
        "code": "ratio.a_b",
        "expression_type": "series_math",
        "expression": {
            "op": "ratio",
            "left": {"seriesCode": "A"},
            "right": {"series_code": "B", "dataset_id": "d2"},
        },
    }
    return {**body, **overrides}


# --- metrics ------------------------------------------------------------------------------


def test_a_registered_metric_is_stored_canonically_with_its_dependencies(api: Api) -> None:
    _two_providers(api)

    created = api.client.post("/metrics", json=_metric(required_days=3))

    assert created.status_code == 200, created.text
    body = created.json()
    assert body["expression"] == {
        "op": "ratio",
        "left": {"series_code": "A"},
        "right": {"series_code": "B", "dataset_id": "d2"},
    }
    assert body["dependencies"] == [
        {"series_code": "A", "dataset_id": "d1"},
        {"series_code": "B", "dataset_id": "d2"},
    ]
    assert (body["required_days"], body["trigger_policy"], body["max_attempts"]) == (
        3,
        "all_new",
        3,
    )
    assert api.client.get("/metrics/ratio.a_b").json() == body


def test_an_invalid_expression_reports_every_error_with_its_json_path(api: Api) -> None:
    expression = {
        "op": "ratio",
        "left": {"op": "sma", "series": {"series_code": "A"}, "window": 0},
        "right": {"op": "pow", "left": {"series_code": "A"}, "right": {"series_code": "B"}},
    }

    response = api.client.post("/metrics", json=_metric(expression=expression))

    body = assert_problem(response, 422)
    assert {(e["path"], e["message"]) for e in body["errors"]} >= {
        ("expression.left.window", "must be an integer between 1 and 36500"),
    }
    paths = [e["path"] for e in body["errors"]]
    assert "expression.right.op" in paths
    assert body["type"].endswith("validation-error")
    assert api.client.get("/metrics/ratio.a_b").status_code == 404


def test_an_ambiguous_series_names_its_path_and_candidate_datasets(api: Api) -> None:
    _two_providers(api)
    expression = {"op": "ratio", "left": {"series_code": "A"}, "right": {"series_code": "B"}}

    response = api.client.post("/metrics", json=_metric(expression=expression))

    body = assert_problem(response, 422)
    assert body["errors"] == [
        {
            "path": "expression.right.series_code",
            "message": "series 'B' is provided by several datasets (d1, d2); "
            "pin one with dataset_id",
        }
    ]


def test_malformed_fields_are_refused_before_the_catalog_sees_them(api: Api) -> None:
    response = api.client.post(
        "/metrics",
        json=_metric(required_days="7", max_attempts=0, colour="blue", expression_type="sql"),
    )

    body = assert_problem(response, 422)
    paths = {e["path"] for e in body["errors"]}
    assert paths == {"required_days", "max_attempts", "colour", "expression_type"}


def test_a_code_owned_by_another_metric_is_a_conflict(api: Api) -> None:
    _two_providers(api)
    assert api.client.post("/metrics", json=_metric()).status_code == 200

    response = api.client.post("/metrics", json=_metric(id="m-other"))

    assert_problem(response, 409, detail_contains="already used by metric 'm-ratio'")


def test_patch_changes_settings_and_keeps_the_rest(bcra: Api) -> None:
    response = bcra.client.patch(
        "/metrics/ratio.reserves_to_base",
        json={"enabled": False, "required_days": 30, "trigger_policy": "any_new"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["enabled"], body["required_days"], body["trigger_policy"]) == (
        False,
        30,
        "any_new",
    )
    assert body["max_attempts"] == 3


def test_patch_errors(bcra: Api) -> None:
    assert_problem(bcra.client.patch("/metrics/nope", json={"enabled": False}), 404)
    body = assert_problem(
        bcra.client.patch("/metrics/ratio.reserves_to_base", json={"required_days": 0}), 422
    )
    assert body["errors"][0]["path"] == "required_days"


def test_unknown_metric_is_404(api: Api) -> None:
    assert_problem(api.client.get("/metrics/no.such"), 404, detail_contains="no.such")


def test_metrics_are_listed_by_code_in_keyset_pages(bcra: Api) -> None:
    codes: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = bcra.client.get("/metrics", params=params).json()
        codes += [m["code"] for m in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    everything = bcra.client.get("/metrics").json()
    assert codes == sorted(codes) == [m["code"] for m in everything["items"]]
    assert len(codes) == 6
    assert pages == 2
    assert everything["next_cursor"] is None


def test_a_forged_cursor_or_a_page_too_large_is_422(api: Api) -> None:
    body = assert_problem(api.client.get("/metrics", params={"cursor": "not-ours"}), 422)
    assert body["errors"][0]["path"] == "cursor"
    body = assert_problem(api.client.get("/datasets", params={"limit": 501}), 422)
    assert body["errors"][0]["path"] == "limit"


# --- datasets and series ---------------------------------------------------------------------


def test_a_dataset_shows_its_series_and_recent_updates_freshest_first(bcra: Api) -> None:
    for version in ("v1", "v3", "v2"):
        assert bcra.send_update("bcra_infomondia_series", version).status_code == 200
        bcra.clock.advance(timedelta(minutes=1))

    response = bcra.client.get("/datasets/bcra_infomondia_series")

    assert response.status_code == 200
    body = response.json()
    assert body["bucket"] == "ingestor-datasets"
    assert "BCRA_RESERVAS_USD_M_D" in body["series"]
    manifests = [u["version_manifest_path"].split("/")[-2] for u in body["recent_updates"]]
    assert manifests == ["v2", "v3", "v1"]  # by effective time: the last received is freshest


def test_a_dataset_with_an_unknown_series_is_refused_with_the_item_path(api: Api) -> None:
    assert api.client.post("/series", json={"code": "A"}).status_code == 200

    response = api.client.post("/datasets", json={"id": "d1", "series": ["A", "NOPE"]})

    body = assert_problem(response, 422)
    assert body["errors"] == [{"path": "series[1]", "message": "unknown series 'NOPE'"}]
    assert_problem(api.client.get("/datasets/d1"), 404)


def test_datasets_are_listed_in_keyset_pages(api: Api) -> None:
    for dataset_id in ("c", "a", "b"):
        api.client.post("/datasets", json={"id": dataset_id, "series": []})

    first = api.client.get("/datasets", params={"limit": 2}).json()
    second = api.client.get("/datasets", params={"limit": 2, "cursor": first["next_cursor"]}).json()

    assert [d["id"] for d in first["items"]] == ["a", "b"]
    assert [d["id"] for d in second["items"]] == ["c"]
    assert second["next_cursor"] is None


def test_series_are_listed_like_datasets_and_metrics(api: Api) -> None:
    for code in ("C", "A", "B"):
        api.client.post("/series", json={"code": code, "unit": f"u{code}"})

    first = api.client.get("/series", params={"limit": 2})
    assert first.status_code == 200, first.text
    second = api.client.get("/series", params={"limit": 2, "cursor": first.json()["next_cursor"]})

    assert [s["code"] for s in first.json()["items"]] == ["A", "B"]
    assert [s["code"] for s in second.json()["items"]] == ["C"]
    assert second.json()["next_cursor"] is None
    assert api.client.get("/series/B").json()["unit"] == "uB"
    assert_problem(api.client.get("/series/NOPE"), 404)


def test_text_postgres_cannot_store_is_refused_with_422(api: Api) -> None:
    body = assert_problem(api.client.post("/series", json={"code": "A\u0000B"}), 422)
    assert body["errors"][0]["path"] == "code"
    expression = {"op": "sma", "series": {"series_code": "X\u0000"}, "window": 3}
    body = assert_problem(
        api.client.post(
            "/metrics", json=_metric(expression_type="window_op", expression=expression)
        ),
        422,
    )
    assert body["errors"][0]["path"] == "expression"
