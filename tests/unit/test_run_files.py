"""Where a run attempt's files are beside its output (domain/run_files.py, issue 25)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.run_files import RunFile, run_file, run_log_location
from metrics_orchestrator.domain.s3_locations import S3Location

RUN_ID = "11111111-1111-1111-1111-111111111111"


@pytest.mark.parametrize(
    ("base", "key"),
    [
        ("s3://out/metrics/m/", f"metrics/m/runs/{RUN_ID}-3.log"),
        ("s3://out/metrics/m", f"metrics/m/runs/{RUN_ID}-3.log"),
        ("s3://out", f"runs/{RUN_ID}-3.log"),
    ],
)
def test_a_log_is_under_the_requests_base_path_per_attempt(base: str, key: str) -> None:
    payload = {"output": {"basePath": base}}

    assert run_log_location(payload, RUN_ID, 3) == S3Location("out", key)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"output": None},
        {"output": "s3://out/"},
        {"output": {}},
        {"output": {"basePath": 7}},
        {"output": {"basePath": "metrics/m/"}},
        {"output": {"basePath": "s3:///no-bucket"}},
    ],
)
def test_a_request_naming_no_s3_base_path_has_no_log_location(payload: Any) -> None:
    assert run_log_location(payload, RUN_ID, 1) is None


@given(st.sampled_from(list(RunFile)), st.integers(min_value=1, max_value=10**6))
def test_the_three_files_of_an_attempt_differ_only_in_their_suffix(
    kind: RunFile, attempt: int
) -> None:
    location = run_file(S3Location("out", "metrics/m/"), RUN_ID, attempt, kind)

    assert location.key == f"metrics/m/runs/{RUN_ID}-{attempt}.{kind.value}"
