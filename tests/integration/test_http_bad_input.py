"""Issue 10 over HTTP and at registration: 4xx problems (recorded), identifiers per SPEC §2,
and reads (`GET /runs`, readiness) that no stored value can break."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from psycopg import Connection
from psycopg.rows import TupleRow
from typer.testing import CliRunner

from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.cli import app
from tests.factories import seed_run, seed_update
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock


@pytest.fixture
def api(database_url: str, conn: Connection[TupleRow]) -> Iterator[Api]:
    # `conn` seeds metric ratio.a_to_b over datasets d1, d2 (tests/factories.py)
    with running_api(database_url, MutableClock()) as api:
        yield api


def _post(api: Api, body: bytes | str) -> Any:
    return api.client.post(
        "/events/projection-update", content=body, headers={"Content-Type": "application/json"}
    )


def _events(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.client.get("/events").json()["items"]
    return items


def test_json_nested_900_levels_deep_is_a_recorded_422(api: Api) -> None:
    body = '{"event": "projection_update", "x": ' + "[" * 900 + "]" * 900 + "}"
    assert_problem(_post(api, body), 422, detail_contains="nested deeper than 64 levels")
    (logged,) = _events(api)
    assert logged["status"] == "rejected"
    assert logged["raw_body"] == body


def test_a_far_future_occurred_at_is_a_recorded_422_naming_the_field(api: Api) -> None:
    body = (
        '{"dataset_id": "d1", "version_manifest_path": "m", "projections_path": "p",'
        ' "occurred_at": "9999-12-30T00:00:00Z"}'
    )
    problem = assert_problem(_post(api, body), 422, detail_contains="occurred_at: is in the future")
    assert problem["event_key"] == "d1:m"


def test_readiness_of_an_update_stored_at_the_end_of_time_does_not_overflow(
    api: Api, conn: Connection[TupleRow]
) -> None:
    seed_update(conn, "d1", occurred_at=datetime(9999, 12, 30, tzinfo=UTC))

    response = api.client.get("/metrics/ratio.a_to_b/readiness")

    assert response.status_code == 200, response.text
    (d1,) = [i for i in response.json()["inputs"] if i["dataset_id"] == "d1"]
    assert d1["fresh_until"].startswith("9999-12-31T23:59:59")


def test_runs_with_extreme_stored_values_are_listed_and_shown(
    api: Api, conn: Connection[TupleRow]
) -> None:
    edge = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    run_id = seed_run(
        conn,
        status=RunStatus.RUNNING,
        started_at=datetime(1970, 1, 1, tzinfo=UTC),
        last_heartbeat_at=edge,
    )
    conn.execute(
        "UPDATE metric_runs SET row_count = %s, progress = 1, version_ts = %s WHERE id = %s",
        (2**63 - 1, "x" * 128, run_id),
    )

    listed = api.client.get("/runs")
    shown = api.client.get(f"/runs/{run_id}")

    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["items"]] == [str(run_id)]
    assert shown.status_code == 200, shown.text


# --- identifiers at registration (SPEC §2) ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/series", {"code": "A B"}, "'A B'"),
        ("/datasets", {"id": "ds:v1", "series": []}, "'ds:v1'"),
        ("/datasets", {"id": "x" * 129, "series": []}, "129 characters"),
    ],
)
def test_registration_refuses_identifiers_outside_the_rule_naming_the_value(
    api: Api, path: str, body: dict[str, Any], named: str
) -> None:
    problem = assert_problem(api.client.post(path, json=body), 422)
    assert named in problem["detail"]
    assert "A-Z a-z 0-9 _ . -" in problem["detail"]


def test_a_metric_code_that_is_no_fifo_message_group_id_is_refused(api: Api) -> None:
    metric = {
        "id": "m-2",
        "code": "ratio with space",
        "expression_type": "series_math",
        "expression": {"op": "ratio", "left": {"seriesCode": "A"}, "right": {"seriesCode": "B"}},
    }
    problem = assert_problem(api.client.post("/metrics", json=metric), 422)
    assert "'ratio with space'" in problem["detail"]


def test_a_catalog_file_with_a_bad_identifier_exits_2_naming_it(
    database_url: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text('{"series": [{"code": "A/B"}]}')
    result = CliRunner().invoke(
        app, ["catalog", "load", str(catalog)], env={"DATABASE_URL": database_url}
    )
    assert result.exit_code == 2, result.output
    assert "series[0].code: 'A/B' must be 1-128 characters" in result.output


def test_max_clock_skew_is_read_from_the_settings(database_url: str) -> None:
    clock = MutableClock()
    ahead = clock.now().replace(hour=13).isoformat()  # an hour after the receipt
    body = (
        '{"dataset_id": "d1", "version_manifest_path": "m", "projections_path": "p",'
        f' "occurred_at": "{ahead}"}}'
    )
    with running_api(database_url, clock) as default:
        assert_problem(_post(default, body), 422, detail_contains="occurred_at: is in the future")
    with running_api(database_url, clock, env={"MAX_CLOCK_SKEW": "PT2H"}) as lenient:
        # allowed two hours of skew, the same body gets past occurred_at and stops at the
        # catalog (this test seeds no dataset)
        assert_problem(_post(lenient, body), 422, detail_contains="unknown dataset 'd1'")
