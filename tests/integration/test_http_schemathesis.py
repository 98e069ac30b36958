"""Property-based API test: generated requests never cause a 5xx, responses match the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.http_helpers import running_api
from tests.support import MutableClock

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(database_url: str, fixtures_dir: Path) -> Iterator[Any]:
    with running_api(database_url, MutableClock()) as api:
        # A populated catalog and a few runs, so generated requests also reach existing rows.
        api.load_catalog(fixtures_dir / "multi_dataset_catalog.yaml")
        api.send_update("fx_daily", "v1")
        api.send_update("reserves_daily", "r1")
        yield schemathesis.openapi.from_asgi("/openapi.json", api.client.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_honours_its_openapi_schema(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
