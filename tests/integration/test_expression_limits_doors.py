"""Every limit of SPEC §3 holds at any depth through every door an expression comes in by:
`POST /metrics`, a catalog file (YAML, as `catalog load` and the demo read it, and the
`catalog load` command itself), and a run
request reaching the reference worker. `PATCH /metrics/{code}` takes no expression at all.

Each case is a valid tree with one value out of range at a random depth (tests/expression_bounds);
the door must refuse it with the error at that value's JSON path, and store nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from typer.testing import CliRunner

from metrics_orchestrator.application.catalog_document import read_catalog_document
from metrics_orchestrator.domain.messages.run_requested import InvalidRequest, read_message
from metrics_orchestrator.interfaces.cli import app
from tests.expression_bounds import DAYS_MESSAGE, BrokenLimit, broken_limits
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock

DOOR_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

CATALOG: dict[str, Any] = {
    "series": [{"code": code} for code in ("A", "B", "C")],
    "datasets": [{"id": "d", "series": ["A", "B", "C"]}],
}


def _json_text(case: BrokenLimit) -> str | None:
    """The metric as a JSON body, or None when the broken value has no JSON spelling (NaN)."""
    try:
        return json.dumps(_metric(case), allow_nan=False)
    except ValueError:
        return None


def _metric(case: BrokenLimit) -> dict[str, Any]:
    return {
        "id": "m-limits",
        "code": "limits",
        "expression_type": case.expression_type,
        "expression": case.expression,
    }


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        api.container.catalog.load_catalog(CATALOG)
        yield api


@DOOR_SETTINGS
@given(case=broken_limits())
def test_post_metrics_refuses_a_limit_broken_at_any_depth(api: Api, case: BrokenLimit) -> None:
    body = _json_text(case)
    assume(body is not None)
    assert body is not None

    response = api.client.post(
        "/metrics", content=body, headers={"Content-Type": "application/json"}
    )

    problem = assert_problem(response, 422)
    assert [(e["path"], e["message"]) for e in problem["errors"]] == [(case.path, case.message)]
    assert api.client.get("/metrics/limits").status_code == 404


@DOOR_SETTINGS
@given(case=broken_limits(root="metrics[0].expression"))
def test_a_catalog_file_refuses_a_limit_broken_at_any_depth(case: BrokenLimit) -> None:
    # Through YAML text: 1e20 is written `1.0e+20` and read back as a float, inf as `.inf`.
    text = yaml.safe_dump(CATALOG | {"metrics": [_metric(case)]})

    _, errors = read_catalog_document(yaml.safe_load(text))

    assert [(e.path, e.message) for e in errors] == [(case.path, case.message)]


@DOOR_SETTINGS
@given(case=broken_limits(root="expressionJson"))
def test_the_reference_worker_refuses_a_request_with_a_limit_broken_at_any_depth(
    case: BrokenLimit,
) -> None:
    body = _json_text(case)
    assume(body is not None)
    request = {
        "type": "metric_run_requested",
        "runId": "00000000-0000-0000-0000-000000000001",
        "attempt": 1,
        "metricCode": "limits",
        "expressionType": case.expression_type,
        "expressionJson": case.expression,
        "inputs": [],
        "catalog": {"datasets": {}},
        "output": {"basePath": "s3://out/limits/"},
    }

    parsed = read_message(json.dumps(request))

    assert isinstance(parsed, InvalidRequest)
    assert f"{case.path}: {case.message}" in parsed.problems


def test_patch_takes_no_expression(api: Api) -> None:
    created = api.client.post(
        "/metrics",
        json={
            "id": "m-sma",
            "code": "sma",
            "expression_type": "window_op",
            "expression": {"op": "sma", "series": {"series_code": "A"}, "window": 3},
        },
    )
    assert created.status_code == 200, created.text

    response = api.client.patch(
        "/metrics/sma",
        json={"expression": {"op": "sma", "series": {"series_code": "A"}, "window": 10**20}},
    )

    problem = assert_problem(response, 422)
    assert [e["path"] for e in problem["errors"]] == ["expression"]
    assert api.client.get("/metrics/sma").json()["expression"]["window"] == 3


def test_catalog_load_refuses_out_of_range_values_deep_in_a_file(
    database_url: str, tmp_path: Path
) -> None:
    # As a person writes them: PyYAML reads `1.0e+20` as a float and `1e20` as a string.
    file = tmp_path / "catalog.yaml"
    file.write_text(
        """
series: [{code: A}, {code: B}]
datasets: [{id: d, series: [A, B]}]
metrics:
  - id: m-deep
    code: deep
    expression_type: composite
    expression:
      op: sum
      operands:
        - {series_code: A}
        - op: ratio
          left: {op: sma, series: {op: ema, series: {series_code: A}, window: 1.0e+20}, window: 2}
          right: {op: lag, series: {series_code: B}, window: 100000000000000000000}
          align: asof
          max_age_days: 36501
        - {op: max, series: {series_code: B}, window: 1e20}
""",
        encoding="utf-8",
    )

    result = CliRunner().invoke(
        app, ["catalog", "load", str(file)], env={"DATABASE_URL": database_url}
    )

    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    where = "metrics[0].expression.operands"
    assert errors == [
        f"error: {where}[1].left.series.window: {DAYS_MESSAGE}",
        f"error: {where}[1].right.window: {DAYS_MESSAGE}",
        f"error: {where}[1].max_age_days: {DAYS_MESSAGE}",
        f"error: {where}[2].window: {DAYS_MESSAGE}",
    ]


def test_a_window_of_thousands_of_digits_is_a_4xx_not_a_500(api: Api) -> None:
    body = (
        '{"id": "m-long", "code": "long", "expression_type": "window_op", "expression": '
        '{"op": "sma", "series": {"series_code": "A"}, "window": ' + "9" * 5000 + "}}"
    )

    response = api.client.post(
        "/metrics", content=body, headers={"Content-Type": "application/json"}
    )

    assert 400 <= response.status_code < 500, response.text
    assert api.client.get("/metrics/long").status_code == 404
