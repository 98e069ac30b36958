"""Property-based API test: generated requests never cause a 5xx, responses match the schema.

Schemathesis generates requests from the app's own OpenAPI document, valid ones and invalid
ones, for every operation. The hostile bodies of issue 10 (tests/hostile_inputs.py: arbitrary
bytes and JSON, non-finite numbers, huge integers, deep nesting, long strings, extreme
timestamps, nested envelopes, near-valid events) are sent to the event intake too.
(Schemathesis' pytest plugin's fixture loader does not work with pytest 9, so the operations'
strategies are driven with Hypothesis directly.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import Connection
from psycopg.rows import TupleRow
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.hostile_inputs import hostile_bodies
from tests.integration.http_helpers import PROBLEM_JSON, Api, running_api
from tests.support import MutableClock

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 30


@pytest.fixture
def api_schema(database_url: str, catalogs_dir: Path) -> Iterator[Any]:
    with running_api(database_url, MutableClock()) as api:
        # A populated catalog and a few runs, so generated requests also reach existing rows.
        api.load_catalog(catalogs_dir / "multi_dataset_catalog.yaml")
        api.send_update("fx_daily", "v1")
        api.send_update("reserves_daily", "r1")
        yield schemathesis.openapi.from_asgi("/openapi.json", api.client.app)


def test_the_api_honours_its_openapi_schema(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:
        _exercise(operation)


def _exercise(operation: Any) -> None:
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def check(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    try:
        check()
    except Exception as exc:
        exc.add_note(f"operation: {operation.label}")
        raise


def _event_log_rows(conn: Connection[TupleRow]) -> int:
    row = conn.execute("SELECT count(*) FROM event_log").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def api(database_url: str, catalogs_dir: Path, conn: Connection[TupleRow]) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        api.load_catalog(catalogs_dir / "bcra_catalog.yaml")
        yield api


@settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=hostile_bodies)
def test_the_http_intake_answers_any_body_with_a_4xx_problem_or_a_result(
    api: Api, conn: Connection[TupleRow], body: bytes
) -> None:
    before = _event_log_rows(conn)

    response = api.client.post(
        "/events/projection-update", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.status_code < 500
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert response.json()["status"] == response.status_code
    else:
        assert response.status_code == 200
    # every body sent is recorded, rejected ones included
    assert _event_log_rows(conn) == before + 1
