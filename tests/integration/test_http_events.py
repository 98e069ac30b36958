"""Event intake over HTTP, the event log and replay (SPEC §4.1, §5.1, §5.8, §6.3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from metrics_orchestrator.domain.events import MAX_BODY_BYTES
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.integration.intake_helpers import update_body
from tests.support import MutableClock


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        api.load_catalog(catalogs_dir / "bcra_catalog.yaml")
        yield api


def _events(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.client.get("/events", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _post_raw(api: Api, body: str) -> Any:
    return api.client.post(
        "/events/projection-update", content=body, headers={"Content-Type": "application/json"}
    )


def test_an_update_is_processed_like_the_queue_does_and_logged(api: Api) -> None:
    response = api.send_update("bcra_infomondia_series", "v1")

    assert response.status_code == 200, response.text
    result = response.json()
    key = "bcra_infomondia_series:datasets/bcra_infomondia_series/versions/v1/manifest.json"
    assert (result["status"], result["event_key"], result["event_type"]) == (
        "processed",
        key,
        "projection_update",
    )
    assert len(result["queued_runs"]) == 6
    (logged,) = _events(api)
    assert (logged["status"], logged["source"], logged["event_key"]) == ("processed", "http", key)
    assert api.rows("SELECT count(*) FROM dataset_updates") == [(1,)]


def test_the_same_update_twice_is_a_duplicate_with_no_effect(api: Api) -> None:
    api.send_update("bcra_infomondia_series", "v1")

    second = api.send_update("bcra_infomondia_series", "v1").json()

    assert (second["status"], second["queued_runs"], second["update_id"]) == (
        "duplicate",
        [],
        None,
    )
    assert api.rows("SELECT count(*) FROM metric_runs") == [(6,)]


def test_an_sns_envelope_is_accepted(api: Api) -> None:
    envelope = {"Type": "Notification", "Message": update_body("bcra_infomondia_series", "v9")}

    response = _post_raw(api, json.dumps(envelope))

    assert response.json()["status"] == "processed"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"event": "projection_update", "dataset_id": 3}), "version_manifest_path"),
    ],
)
def test_bad_bodies_are_rejected_logged_and_named(api: Api, body: str, detail: str) -> None:
    problem = assert_problem(_post_raw(api, body), 422, detail_contains=detail)

    assert problem["type"].endswith("event-rejected")
    (logged,) = _events(api, status="rejected")
    assert logged["event_key"] == problem["event_key"]
    assert logged["raw_body"] == body
    assert detail in logged["error"]


def test_worker_events_are_rejected_and_recorded_here_without_being_processed(api: Api) -> None:
    body = json.dumps(
        {"type": "metric_run_started", "runId": "00000000-0000-0000-0000-000000000000"}
    )

    assert_problem(_post_raw(api, body), 422, detail_contains="not metric_run_started")
    (logged,) = _events(api)
    assert logged["status"] == "rejected"
    assert logged["event_type"] == "metric_run_started"
    assert "worker events go to the run-feedback queue" in logged["error"]


def test_text_the_event_log_cannot_store_is_rejected_and_recorded_escaped(api: Api) -> None:
    body = update_body("bcra_infomondia_series", "v\u0000")
    assert_problem(_post_raw(api, body), 422, detail_contains="\\u0000")
    raw = api.client.post(
        "/events/projection-update",
        content=b"\xff\xfe{}",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(raw, 422, detail_contains="not valid UTF-8")
    invalid_utf8, nul = _events(api)
    assert invalid_utf8["raw_body"] == "\\xff\\xfe{}"
    assert nul["payload"] is None
    assert "\\u0000" in nul["raw_body"]


def test_an_oversized_body_is_rejected_unparsed_or_refused_outright(api: Api) -> None:
    padding = "x" * MAX_BODY_BYTES
    over_event_limit = update_body("bcra_infomondia_series", "v1", note=padding)
    assert_problem(_post_raw(api, over_event_limit), 422, detail_contains="not parsed")

    far_over = "x" * (5 * MAX_BODY_BYTES)
    assert_problem(_post_raw(api, far_over), 413)
    assert len(_events(api)) == 1


# --- event log and replay --------------------------------------------------------------------


def test_the_event_log_is_paged_newest_first_and_filtered(api: Api) -> None:
    for version in range(3):
        api.send_update("bcra_infomondia_series", f"v{version}")
    _post_raw(api, "nope")

    first = api.client.get("/events", params={"limit": 3}).json()
    second = api.client.get("/events", params={"limit": 3, "cursor": first["next_cursor"]}).json()

    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 4
    assert second["next_cursor"] is None
    assert [e["status"] for e in _events(api, status="rejected")] == ["rejected"]
    assert_problem(api.client.get("/events", params={"cursor": "Zm9v"}), 422)
    assert_problem(api.client.get("/events", params={"status": "lost"}), 422)


def test_an_update_for_an_unknown_dataset_replays_once_the_catalog_has_it(api: Api) -> None:
    rejected = assert_problem(
        api.send_update("new_ds", "v1"), 422, detail_contains="unknown dataset"
    )
    key = rejected["event_key"]
    assert key == "new_ds:datasets/new_ds/versions/v1/manifest.json"
    assert_problem(api.client.post(f"/events/{key}/replay"), 422, detail_contains="unknown dataset")

    api.client.post("/series", json={"code": "NEW_S"})
    assert (
        api.client.post("/datasets", json={"id": "new_ds", "series": ["NEW_S"]}).status_code == 200
    )
    metric = {
        "id": "m-new",
        "code": "new.sma",
        "expression_type": "window_op",
        "expression": {"op": "sma", "series": {"series_code": "NEW_S"}, "window": 3},
    }
    assert api.client.post("/metrics", json=metric).status_code == 200
    replayed = api.client.post(f"/events/{quote(key, safe='')}/replay")

    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["status"], replayed.json()["event_key"]) == ("processed", key)
    assert len(replayed.json()["queued_runs"]) == 1
    (entry,) = _events(api, status="rejected")  # the failed replay updated it, added none
    assert (entry["replayed_at"] is not None, entry["replay_attempts"]) == (True, 1)
    assert [r["status"] for r in api.runs_of("new.sma")] == ["queued"]
    again = api.client.post(f"/events/{key}/replay")
    assert_problem(again, 409, detail_contains="only rejected events replay")


def test_replay_of_an_unknown_key_is_404(api: Api) -> None:
    assert_problem(
        api.client.post("/events/no:such/key/replay"), 404, detail_contains="no:such/key"
    )


def _reject_unknown(api: Api, dataset_id: str = "new_ds") -> str:
    rejected = assert_problem(api.send_update(dataset_id, "v1"), 422)
    key: str = rejected["event_key"]
    return key


def test_a_replay_rejected_again_updates_its_inbox_entry_instead_of_adding_one(
    api: Api,
) -> None:
    key = _reject_unknown(api)
    api.clock.advance(timedelta(minutes=5))

    for _ in range(2):
        assert_problem(api.client.post(f"/events/{key}/replay"), 422)

    (entry,) = _events(api, status="rejected")
    assert (entry["event_key"], entry["replay_attempts"], entry["replayed_at"]) == (key, 2, None)
    assert entry["processed_at"] > entry["received_at"]
    assert api.rows("SELECT count(*) FROM event_log") == [(1,)]
    assert api.container.queries.run_overview().waits.rejected_events == 1


def test_an_undecodable_body_replayed_keeps_one_inbox_entry(api: Api) -> None:
    rejected = assert_problem(_post_raw(api, '{"event": "projection_update"}'), 422)

    assert_problem(api.client.post(f"/events/{rejected['event_key']}/replay"), 422)

    (entry,) = _events(api, status="rejected")
    assert entry["replay_attempts"] == 1
    assert api.rows("SELECT count(*) FROM event_log") == [(1,)]


def test_dismiss_takes_an_event_out_of_the_inbox_and_keeps_the_reason(api: Api) -> None:
    key = _reject_unknown(api)

    response = api.client.post(
        f"/events/{quote(key, safe='')}/dismiss", json={"reason": "  dataset was retired  "}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["dismiss_reason"], body["event_key"]) == (
        "dismissed",
        "dataset was retired",
        key,
    )
    assert body["dismissed_at"] is not None
    assert body["error"] == "unknown dataset 'new_ds'"
    assert _events(api, status="rejected") == []
    assert [e["event_key"] for e in _events(api, status="dismissed")] == [key]
    assert api.container.queries.run_overview().waits.rejected_events == 0
    assert_problem(api.client.post(f"/events/{key}/replay"), 409, detail_contains="dismissed")
    again = api.client.post(f"/events/{key}/dismiss", json={"reason": "again"})
    assert_problem(again, 409, detail_contains="only rejected events dismiss")


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": 5}, [], "text"],
)
def test_dismiss_needs_a_reason_of_1_to_500_characters(api: Api, body: object) -> None:
    key = _reject_unknown(api)

    assert_problem(api.client.post(f"/events/{key}/dismiss", json=body), 422)

    assert [e["event_key"] for e in _events(api, status="rejected")] == [key]


def test_dismiss_of_an_unknown_or_processed_event_is_refused(api: Api) -> None:
    assert_problem(
        api.client.post("/events/no:such/key/dismiss", json={"reason": "r"}),
        404,
        detail_contains="no:such/key",
    )
    processed = api.send_update("bcra_infomondia_series", "v1").json()["event_key"]
    refused = api.client.post(f"/events/{processed}/dismiss", json={"reason": "r"})
    assert_problem(refused, 409, detail_contains="only rejected events dismiss")


def test_a_page_of_the_log_holds_the_start_of_a_long_body_and_one_event_the_whole(
    api: Api,
) -> None:
    # an unknown dataset with a long field: rejected, its raw body kept for replay
    body = update_body("nobody_knows", "v1", note="x" * 10_000)
    rejected = _post_raw(api, body).json()
    assert rejected["status"] == 422

    (listed,) = _events(api, status="rejected")
    assert listed["raw_body"] == body[:4096]
    assert (listed["raw_body_length"], listed["raw_body_truncated"]) == (len(body), True)

    key = listed["event_key"]
    for sent in (key, quote(key, safe="")):
        whole = api.client.get(f"/events/{sent}")
        assert whole.status_code == 200, whole.text
        assert whole.json()["raw_body"] == body
        assert whole.json()["raw_body_truncated"] is False
    assert_problem(api.client.get("/events/no:such:event"), 404)


def test_a_short_body_is_listed_whole(api: Api) -> None:
    body = update_body("nobody_knows", "v2")
    _post_raw(api, body)

    (listed,) = _events(api, status="rejected")

    assert (listed["raw_body"], listed["raw_body_truncated"]) == (body, False)
    assert listed["raw_body_length"] == len(body)
