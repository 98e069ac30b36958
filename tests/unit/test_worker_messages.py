"""Each worker message's builder and parser agree (issue 21 item 4: one module per message).

What the reference worker and the sample worker send is built by the same functions the
control plane's parsers are written against, so a message built is a message accepted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.feedback import parse_feedback
from metrics_orchestrator.domain.messages.run_completed import (
    RUN_COMPLETED,
    RunCompleted,
    build_run_failed,
    build_run_succeeded,
)
from metrics_orchestrator.domain.messages.run_heartbeat import (
    RUN_HEARTBEAT,
    RunHeartbeat,
    build_run_heartbeat,
)
from metrics_orchestrator.domain.messages.run_requested import (
    RunRequest,
    build_retry_request,
    read_message,
    requested_metric_code,
)
from metrics_orchestrator.domain.messages.run_started import (
    RUN_STARTED,
    RunStarted,
    build_run_started,
)
from tests.unit.worker.fakes import run_request

PROPERTIES = settings(max_examples=100, deadline=None)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
RATIO = {"op": "ratio", "left": {"series_code": "A"}, "right": {"series_code": "B"}}
DATASET = {"manifestPath": "m.json", "projectionsPath": "p", "bucket": "b", "updateId": "u"}


@PROPERTIES
@given(run_id=st.uuids(), started_at=moments)
def test_a_built_started_event_parses_to_its_run_and_time(
    run_id: UUID, started_at: datetime
) -> None:
    event = build_run_started(str(run_id), started_at)
    parsed = parse_feedback(event["type"], event)
    assert event["type"] == RUN_STARTED
    assert isinstance(parsed, RunStarted)
    assert parsed.run_id == run_id
    assert parsed.started_at is not None
    assert abs((parsed.started_at - started_at).total_seconds()) < 0.001


@PROPERTIES
@given(run_id=st.uuids(), progress=st.floats(-10, 10), ts=moments)
def test_a_built_heartbeat_parses_with_its_progress_clamped(
    run_id: UUID, progress: float, ts: datetime
) -> None:
    event = build_run_heartbeat(str(run_id), progress, ts)
    parsed = parse_feedback(event["type"], event)
    assert event["type"] == RUN_HEARTBEAT
    assert isinstance(parsed, RunHeartbeat)
    assert parsed.run_id == run_id
    assert parsed.progress == round(min(max(progress, 0.0), 1.0), 4)


@PROPERTIES
@given(run_id=st.uuids(), rows=st.integers(0, 2**63 - 1), code=st.sampled_from(["m1", None]))
def test_a_built_success_parses_to_what_it_reports(
    run_id: UUID, rows: int, code: str | None
) -> None:
    event = build_run_succeeded(
        str(run_id),
        code,
        version_ts="20251111T014305.123456Z",
        output_manifest="s3://b/k",
        row_count=rows,
    )
    parsed = parse_feedback(event["type"], event)
    assert isinstance(parsed, RunCompleted)
    assert (parsed.run_id, parsed.metric_code, parsed.succeeded, parsed.row_count) == (
        run_id,
        code,
        True,
        rows,
    )
    assert ("metricCode" in event) is (code is not None)


@PROPERTIES
@given(run_id=st.uuids(), retryable=st.booleans(), error=st.text(min_size=1, max_size=50))
def test_a_built_failure_parses_to_its_error_and_retryability(
    run_id: UUID, retryable: bool, error: str
) -> None:
    event = build_run_failed(str(run_id), "m1", error, retryable=retryable)
    parsed = parse_feedback(event["type"], event)
    assert event["type"] == RUN_COMPLETED
    assert isinstance(parsed, RunCompleted)
    assert (parsed.succeeded, parsed.retryable) == (False, retryable)
    assert parsed.error == (error or None)
    assert ("retryable" in event) is (not retryable)


def test_a_retry_request_is_the_original_under_the_new_runs_identity() -> None:
    original = run_request("series_math", RATIO, {"A": "d1", "B": "d1"}, {"d1": DATASET})
    new_id = uuid4()
    retry = build_retry_request(
        original, run_id=new_id, attempt=3, requested_at=datetime(2025, 11, 12, 8, 30, tzinfo=UTC)
    )
    changed = {key for key in original if original[key] != retry[key]}
    assert changed == {"runId", "attempt", "requestedAt"}
    assert (retry["runId"], retry["attempt"], retry["requestedAt"]) == (
        str(new_id),
        3,
        "2025-11-12T08:30:00Z",
    )
    read = read_message(json.dumps(retry))
    assert isinstance(read, RunRequest)
    assert read.key == (str(new_id), 3)


def test_the_requested_metric_code_is_the_stored_requests() -> None:
    assert requested_metric_code({"metricCode": "m.renamed_since"}) == "m.renamed_since"
    assert requested_metric_code({"metricCode": 5}) == ""
    assert requested_metric_code({}) == ""
    assert requested_metric_code(None) == ""
