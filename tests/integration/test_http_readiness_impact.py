"""Readiness ("why not yet") and impact (dry run) agree with what intake really does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        yield api


def _readiness(api: Api, code: str) -> dict[str, Any]:
    response = api.client.get(f"/metrics/{code}/readiness")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _inputs(readiness: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["dataset_id"]: i for i in readiness["inputs"]}


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _table_counts(api: Api) -> tuple[Any, ...]:
    (counts,) = api.rows(
        "SELECT (SELECT count(*) FROM metric_runs), (SELECT count(*) FROM dataset_updates),"
        " (SELECT count(*) FROM event_log), (SELECT count(*) FROM metric_run_pending_datasets),"
        " (SELECT max(updated_at) FROM metric_runs)"
    )
    return counts


# --- impact ----------------------------------------------------------------------------------

# (days to advance first, dataset, version, days before now it was produced or None)
SCRIPT = [
    (0, "fx_daily", "v1", None),
    (0, "prices_monthly", "p1", 20),  # fresh for real_wages (45 days), stale for real_pesos (7)
    (0, "reserves_daily", "r1", None),
    (1, "fx_daily", "v2", None),
    (0, "fx_daily", "v3", None),
    (1, "reserves_daily", "r2", None),
    (0, "prices_monthly", "p2", 1),
    (0, "reserves_daily", "r3", None),
    (3, "fx_mirror", "m1", None),
    (0, "fx_daily", "v4", None),
    (9, "reserves_daily", "r4", None),
]


def test_impact_predicts_exactly_what_the_next_update_does(api: Api) -> None:
    compared_runs = compared_waits = 0
    for days, dataset_id, version, produced_days_ago in SCRIPT:
        api.clock.advance(timedelta(days=days))
        occurred_at = (
            api.clock.now() - timedelta(days=produced_days_ago) if produced_days_ago else None
        )
        predicted = api.client.get(f"/datasets/{dataset_id}/impact").json()

        result = api.send_update(dataset_id, version, occurred_at=occurred_at).json()

        queued = {_detail(api, r)["metric_code"] for r in result["queued_runs"]}
        waiting = {
            (detail["metric_code"], tuple(detail["waiting_for"]))
            for detail in (_detail(api, r) for r in result["pending_runs"])
        }
        step = f"{dataset_id} {version}"
        if produced_days_ago:
            # a version produced in the past is not what impact assumes ("arrived now"):
            # only compare the metrics that it left undecided
            continue
        assert queued == set(predicted["would_run"]), step
        assert waiting == {
            (m["metric_code"], tuple(sorted(m["waiting_for"])))
            for m in predicted["metrics"]
            if m["action"] == "would_wait"
        }, step
        compared_runs += len(queued)
        compared_waits += len(waiting)
    assert compared_runs >= 10  # the script exercises both outcomes
    assert compared_waits >= 10


def _detail(api: Api, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.client.get(f"/runs/{run_id}").json()
    body["waiting_for"] = sorted(body["waiting_for"])
    return body


def test_impact_lists_each_dependent_metric_with_its_blockers(api: Api) -> None:
    body = api.client.get("/datasets/fx_daily/impact").json()

    assert body["would_run"] == ["fx.gap"]
    assert body["would_wait"] == ["reserves.at_parallel", "reserves.real_pesos"]
    blockers = {m["metric_code"]: m["waiting_for"] for m in body["metrics"]}
    assert blockers == {
        "fx.gap": [],
        "reserves.at_parallel": ["reserves_daily"],
        "reserves.real_pesos": ["reserves_daily", "prices_monthly"],
    }


def test_impact_of_an_unknown_dataset_is_404(api: Api) -> None:
    assert_problem(api.client.get("/datasets/nope/impact"), 404, detail_contains="nope")


def test_readiness_and_impact_write_nothing(api: Api) -> None:
    api.send_update("fx_daily", "v1")
    before = _table_counts(api)

    for code in ("fx.gap", "reserves.at_parallel", "reserves.real_pesos", "prices.real_wages"):
        _readiness(api, code)
    for dataset_id in ("fx_daily", "reserves_daily", "prices_monthly"):
        api.client.get(f"/datasets/{dataset_id}/impact")

    assert _table_counts(api) == before


# --- readiness -------------------------------------------------------------------------------


def test_readiness_of_a_metric_without_updates_names_every_missing_input(api: Api) -> None:
    body = _readiness(api, "reserves.real_pesos")

    assert (body["ready"], body["outcome"]) == (False, "unchanged")
    assert sorted(body["waiting_for"]) == ["fx_daily", "prices_monthly", "reserves_daily"]
    assert {i["status"] for i in body["inputs"]} == {"missing"}
    assert "reserves_daily has no update yet" in body["explanation"]
    assert _inputs(body)["reserves_daily"]["series_codes"] == ["RESERVES_USD_D"]


def test_readiness_matches_the_pending_run_and_reports_freshness(api: Api) -> None:
    produced = api.clock.now() - timedelta(days=2)
    api.send_update("prices_monthly", "p1", occurred_at=produced)
    api.send_update("fx_daily", "v1")

    body = _readiness(api, "reserves.real_pesos")  # any_new, required_days 7

    (pending,) = list(api.runs_of("reserves.real_pesos"))
    detail = _detail(api, pending["id"])
    assert (body["outcome"], body["pending_run_id"]) == ("waiting", pending["id"])
    assert body["waiting_for"] == detail["waiting_for"] == ["reserves_daily"]
    prices = _inputs(body)["prices_monthly"]
    assert (prices["status"], prices["is_new"]) == ("fresh", True)
    assert prices["freshest_update"]["effective_at"] == _z(produced)
    assert prices["fresh_until"] == _z(produced + timedelta(days=7))
    assert prices["freshest_update"]["version_manifest_path"].endswith("/p1/manifest.json")


def test_readiness_turns_stale_when_the_window_passes(api: Api) -> None:
    api.send_update("fx_daily", "v1")  # fx.gap runs at once (single dataset, 2 days)
    fresh = _readiness(api, "fx.gap")
    api.clock.advance(timedelta(days=2, seconds=1))

    stale = _readiness(api, "fx.gap")

    (run,) = api.runs_of("fx.gap")
    fx = _inputs(fresh)["fx_daily"]
    assert (fresh["outcome"], fx["status"], fx["is_new"]) == ("unchanged", "fresh", False)
    assert fx["last_run_update_id"] == _detail(api, run["id"])["lineage"][0]["update_id"]
    assert fresh["explanation"].startswith("not ready (all_new)")
    assert _inputs(stale)["fx_daily"]["status"] == "stale"
    assert stale["waiting_for"] == ["fx_daily"]
    assert "is stale" in stale["explanation"]


def test_a_metric_registered_after_its_inputs_arrived_is_ready_and_runs_next(api: Api) -> None:
    api.send_update("reserves_daily", "r1")
    metric = {
        "id": "m-reserves-max",
        "code": "reserves.max_5",
        "expression_type": "window_op",
        "expression": {"op": "max", "series": {"series_code": "RESERVES_USD_D"}, "window": 5},
    }
    assert api.client.post("/metrics", json=metric).status_code == 200

    body = _readiness(api, "reserves.max_5")
    impact = api.client.get("/datasets/reserves_daily/impact").json()
    api.send_update("reserves_daily", "r2")

    assert (body["ready"], body["outcome"], body["waiting_for"]) == (True, "ready", [])
    assert "reserves.max_5" in impact["would_run"]
    assert [r["status"] for r in api.runs_of("reserves.max_5")] == ["queued"]


def test_readiness_of_an_unknown_metric_is_404(api: Api) -> None:
    assert_problem(api.client.get("/metrics/nope/readiness"), 404)
