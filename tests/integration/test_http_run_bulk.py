"""`POST /runs/bulk`: retry or cancel several runs through the JSON API, each through its own
use case, with each run's outcome; bodies it cannot act on are a 422 and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics_orchestrator.application.run_batches import MAX_BATCH
from metrics_orchestrator.domain.model import RunStatus
from tests.factories import seed_run
from tests.integration.http_helpers import Api, assert_problem
from tests.integration.web_helpers import run_id_of, seeded_api

NOW = datetime.fromisoformat("2025-11-11T12:00:00+00:00")  # MutableClock's start


@pytest.fixture
def api(database_url: str, catalogs_dir: Path) -> Iterator[Api]:
    """The multi-dataset catalog: fx.gap has a queued run, reserves.at_parallel a pending one."""
    with seeded_api(database_url, catalogs_dir) as api:
        yield api


def ended_run(api: Api, status: RunStatus, hours_ago: int) -> UUID:
    ((metric_id,),) = api.rows("SELECT id FROM metrics WHERE code = 'fx.gap'")
    created = NOW - timedelta(hours=hours_ago)
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        return seed_run(conn, str(metric_id), status=status, now=created, created_at=created)


def statuses(api: Api) -> list[tuple[Any, ...]]:
    return api.rows("SELECT id, status, attempt FROM metric_runs ORDER BY id")


def test_a_retry_of_several_says_what_became_of_each(api: Api) -> None:
    failed = ended_run(api, RunStatus.FAILED, 3)
    succeeded = ended_run(api, RunStatus.SUCCEEDED, 2)
    older = ended_run(api, RunStatus.TIMED_OUT, 1)
    newer = api.container.runs.retry(older)
    unknown = uuid4()
    ids = [failed, succeeded, older, unknown, failed]

    response = api.client.post(
        "/runs/bulk", json={"action": "retry", "run_ids": [str(i) for i in ids]}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["action"], body["done"], body["refused"]) == ("retry", 1, 3)
    by_run = {o["run_id"]: o for o in body["outcomes"]}
    assert list(by_run) == [str(failed), str(succeeded), str(older), str(unknown)]
    retried = api.rows("SELECT id, attempt FROM metric_runs WHERE retry_of = %s", failed)
    assert by_run[str(failed)] == {
        "run_id": str(failed),
        "done": True,
        "message": "retry queued as attempt 2",
        "refusal": None,
        "new_run_id": str(retried[0][0]),
    }
    assert by_run[str(succeeded)]["refusal"] == "cannot be retried"
    assert by_run[str(older)]["refusal"] == "not the latest attempt"
    assert f"retry the latest attempt, {newer.id}, instead" in by_run[str(older)]["message"]
    assert by_run[str(unknown)]["refusal"] == "unknown run"


def test_a_cancel_of_several_keeps_its_reason_and_leaves_ended_runs(api: Api) -> None:
    queued = run_id_of(api, "fx.gap", "queued")
    pending = run_id_of(api, "reserves.at_parallel", "pending_dependencies")
    ended = ended_run(api, RunStatus.SUCCEEDED, 1)

    body = api.client.post(
        "/runs/bulk",
        json={"action": "cancel", "run_ids": [queued, pending, str(ended)], "reason": "a drill"},
    ).json()

    assert [(o["done"], o["refusal"]) for o in body["outcomes"]] == [
        (True, None),
        (True, None),
        (False, "already ended"),
    ]
    rows = dict(api.rows("SELECT id::text, status_reason FROM metric_runs"))
    assert "a drill" in str(rows[queued])
    assert "a drill" in str(rows[pending])
    assert api.rows("SELECT status FROM metric_runs WHERE id = %s", ended) == [("succeeded",)]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"action": "retry", "run_ids": []}, "run_ids"),
        ({"action": "rerun", "run_ids": [str(uuid4())]}, "action"),
        ({"action": "cancel", "run_ids": ["not-a-run"]}, "run_ids"),
        ({"action": "cancel", "run_ids": [str(uuid4())] * (MAX_BATCH + 1)}, "run_ids"),
        ({"action": "cancel", "run_ids": [str(uuid4())], "colour": "red"}, "colour"),
        ({"action": "cancel", "run_ids": [str(uuid4())], "reason": "\x00"}, "reason"),
        ({"run_ids": [str(uuid4())]}, "action"),
    ],
)
def test_a_body_it_cannot_act_on_is_a_422_and_changes_nothing(
    api: Api, body: dict[str, Any], says: str
) -> None:
    before = statuses(api)

    assert_problem(api.client.post("/runs/bulk", json=body), 422, detail_contains=says)

    assert statuses(api) == before


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.text(max_size=20), st.lists, max_leaves=8))
def test_any_json_body_is_answered_without_a_500(api: Api, body: Any) -> None:
    response = api.client.post("/runs/bulk", json={"action": "cancel", "run_ids": body})

    assert response.status_code in (200, 422), response.text
