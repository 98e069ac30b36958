"""Helpers for HTTP API tests: the real app over a real database, on a controllable clock."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from fastapi.testclient import TestClient
from httpx import Response

from metrics_orchestrator.bootstrap import Container, bootstrap
from metrics_orchestrator.infrastructure.settings import load_settings
from metrics_orchestrator.interfaces.web.app import create_app_with_dashboard
from tests.integration.intake_helpers import update_body
from tests.support import MutableClock

PROBLEM_JSON = "application/problem+json"
# The TestClient sends `Host: testserver`; the app trusts it because the tests say that is its
# address (PUBLIC_URL), as a deployment behind a proxy does, not by a special case in the app.
TEST_PUBLIC_URL = "http://testserver"


@dataclass
class Api:
    client: TestClient
    container: Container
    clock: MutableClock
    database_url: str

    def load_catalog(self, path: Path) -> None:
        self.container.catalog.load_catalog(yaml.safe_load(path.read_text(encoding="utf-8")))

    def send_update(
        self, dataset_id: str, version: str, *, occurred_at: datetime | None = None
    ) -> Response:
        response: Response = self.client.post(
            "/events/projection-update",
            content=update_body(dataset_id, version, occurred_at=occurred_at),
            headers={"Content-Type": "application/json"},
        )
        return response

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def runs_of(self, metric_code: str) -> list[dict[str, Any]]:
        page = self.client.get("/runs", params={"metric": metric_code, "limit": 500})
        assert page.status_code == 200, page.text
        items: list[dict[str, Any]] = page.json()["items"]
        return items


@contextmanager
def running_api(
    database_url: str, clock: MutableClock, env: Mapping[str, str] | None = None
) -> Iterator[Api]:
    settings = load_settings(env={"PUBLIC_URL": TEST_PUBLIC_URL, **(env or {})})
    with (
        bootstrap(settings, clock=clock, database_url=database_url) as container,
        TestClient(create_app_with_dashboard(container)) as client,
    ):
        yield Api(client, container, clock, database_url)


def assert_problem(response: Response, status: int, *, detail_contains: str = "") -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert detail_contains in body["detail"]
    return body
