"""The worker under hostile input (issue 20 items 9-10): any body whatsoever ends as a request,
a FAILURE naming the problem (`retryable: false`), or, with no usable run id, a rejection.

The worker's own SPEC §5.8: `read_message` never raises, and what it asks the worker to publish
is always something SNS takes and the control plane accepts (a UUID run id, an identifier as
metric code, an error text of at most 2,000 characters without NUL or lone surrogates).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.decoding import MAX_BODY_BYTES
from metrics_orchestrator.domain.identifiers import is_identifier
from metrics_orchestrator.domain.messages.run_requested import (
    InvalidRequest,
    RunRequest,
    Unanswerable,
    read_message,
)
from metrics_orchestrator.worker.outputs import (
    MAX_PUBLISHED_TEXT,
    failure_event,
    published_text,
    supersedes,
)
from tests.hostile_inputs import deeply_nested, hostile_bodies, json_values, raw_numbers
from tests.unit.worker.fakes import run_request

PROPERTIES = settings(max_examples=150, deadline=None)
RUN_ID = "11111111-1111-1111-1111-111111111111"
RATIO = {"op": "ratio", "left": {"series_code": "A"}, "right": {"series_code": "B"}}
version_ts = st.datetimes(min_value=datetime(1970, 1, 1)).map(
    lambda d: d.strftime("%Y%m%dT%H%M%S.%fZ")
)
DATASET = {"manifestPath": "m.json", "projectionsPath": "p", "bucket": "b", "updateId": "u"}


def valid_request() -> dict[str, Any]:
    return run_request("series_math", RATIO, {"A": "d1", "B": "d1"}, {"d1": DATASET})


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


def assert_publishable(answer: RunRequest | InvalidRequest) -> None:
    """What the worker would publish for `answer` is something SNS and the control plane take."""
    UUID(answer.run_id)
    if isinstance(answer, InvalidRequest):
        event = failure_event(answer.run_id, answer.metric_code, answer.error, retryable=False)
        assert len(event["error"]) <= MAX_PUBLISHED_TEXT
        assert "\x00" not in event["error"]
        event["error"].encode("utf-8")  # no lone surrogate
        assert event["retryable"] is False
        assert "metricCode" not in event or is_identifier(event["metricCode"])
        assert len(json.dumps(event)) < 4_000


def enveloped(bodies: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """In an SNS notification, as a queue subscribed without raw delivery receives it."""
    return bodies.map(lambda body: json.dumps({"Type": "Notification", "Message": body}))


@st.composite
def near_valid_requests(draw: st.DrawFn) -> str:
    """A valid run request with one field replaced by anything, removed, or nested deep."""
    request = valid_request()
    field = draw(st.sampled_from(sorted(set(request) - {"type", "runId"})))
    action = draw(st.sampled_from(["replace", "remove", "raw_number", "deep"]))
    if action == "remove":
        del request[field]
        return json.dumps(request)
    if action == "raw_number":
        request[field] = "__RAW__"
        return json.dumps(request).replace('"__RAW__"', draw(raw_numbers), 1)
    if action == "deep":
        request[field] = "__DEEP__"
        depth = draw(st.integers(min_value=1, max_value=2_000))
        return json.dumps(request).replace('"__DEEP__"', nested(depth), 1)
    request[field] = draw(json_values)
    return json.dumps(request)


@PROPERTIES
@given(st.one_of(hostile_bodies, enveloped(near_valid_requests()).map(str.encode)))
def test_any_body_is_answered_without_raising(body: bytes) -> None:
    answer = read_message(body)
    if isinstance(answer, Unanswerable):
        assert answer.reason
    else:
        assert_publishable(answer)


@PROPERTIES
@given(st.one_of(near_valid_requests(), enveloped(near_valid_requests())))
def test_a_run_request_with_a_usable_run_id_is_always_answered(body: str) -> None:
    """Whatever else is wrong with it, a run request naming its run gets a completed event."""
    answer = read_message(body)
    assert isinstance(answer, RunRequest | InvalidRequest), answer
    assert answer.run_id == RUN_ID
    assert_publishable(answer)


@PROPERTIES
@given(deeply_nested())
def test_deep_bodies_without_a_run_are_rejected_with_a_reason(body: str) -> None:
    assert isinstance(read_message(body), Unanswerable)


def test_a_request_whose_expression_is_1500_levels_deep_fails_naming_the_depth() -> None:
    body = json.dumps({**valid_request(), "expressionJson": "__DEEP__"})
    body = body.replace('"__DEEP__"', nested(1_500))

    answer = read_message(body)

    assert isinstance(answer, InvalidRequest)
    assert answer.run_id == RUN_ID
    assert answer.problems[0] == "body is JSON nested deeper than 64 levels"
    event = failure_event(answer.run_id, answer.metric_code, answer.error, retryable=False)
    assert event["error"].startswith("INVALID_REQUEST: body is JSON nested deeper than 64")
    assert event["retryable"] is False
    assert event["metricCode"] == "m.test"


def test_an_enveloped_request_1500_levels_deep_is_answered_too() -> None:
    inner = json.dumps({**valid_request(), "catalog": "__DEEP__"})
    inner = inner.replace('"__DEEP__"', "[" * 1_500 + "]" * 1_500)
    answer = read_message(json.dumps({"Type": "Notification", "Message": inner}))
    assert isinstance(answer, InvalidRequest)
    assert answer.problems[0] == "Message is JSON nested deeper than 64 levels"


def test_a_deep_body_without_a_run_id_is_rejected_naming_the_depth() -> None:
    answer = read_message("[" * 1_500 + "]" * 1_500)
    assert answer == Unanswerable("body is JSON nested deeper than 64 levels")
    envelope = json.dumps({"Type": "Notification", "Message": nested(1_500)})
    assert read_message(envelope) == Unanswerable(
        "Message is JSON nested deeper than 64 levels; not a run request (type None)"
    )


def test_an_oversized_body_is_rejected_unparsed() -> None:
    body = json.dumps({**valid_request(), "pad": "x" * MAX_BODY_BYTES})
    answer = read_message(body)
    assert isinstance(answer, Unanswerable)
    assert "larger than" in answer.reason


def test_a_run_id_that_is_not_a_uuid_is_no_usable_run_id() -> None:
    """The control plane refuses feedback for such an id: answering it would help nobody."""
    answer = read_message(json.dumps({**valid_request(), "runId": "x" * 300_000}))
    assert isinstance(answer, Unanswerable)
    assert len(answer.reason) < 200


def test_a_metric_code_that_is_not_an_identifier_is_a_problem_and_not_echoed() -> None:
    answer = read_message(json.dumps({**valid_request(), "metricCode": "m" * 10_000}))
    assert isinstance(answer, InvalidRequest)
    assert answer.metric_code is None
    assert answer.problems[0].startswith("metricCode: 'mmm")
    assert len(answer.problems[0]) < 200


def test_values_no_event_may_carry_are_named() -> None:
    body = json.dumps({**valid_request(), "attempt": "__RAW__"}).replace('"__RAW__"', "1e999")
    answer = read_message(body)
    assert isinstance(answer, InvalidRequest)
    assert "$.attempt: non-finite number (1e999)" in answer.problems


def test_6000_bad_inputs_make_an_error_of_at_most_2000_characters_naming_the_rest() -> None:
    """Issue 20 item 10: a 330 KB INVALID_REQUEST was refused by SNS and looped to the DLQ."""
    request = {**valid_request(), "inputs": [{"datasetId": n} for n in range(6_000)]}
    answer = read_message(json.dumps(request))
    assert isinstance(answer, InvalidRequest)
    assert len(answer.problems) == 6_000 + 2  # and A and B have no entry
    event = failure_event(answer.run_id, answer.metric_code, answer.error, retryable=False)
    assert len(event["error"]) <= MAX_PUBLISHED_TEXT
    assert event["error"].startswith("INVALID_REQUEST: inputs[0]: must have string datasetId")
    assert event["error"].endswith(" more problems")


def test_published_text_is_storable_and_capped() -> None:
    assert published_text("a\x00b\ud800c") == "a\\u0000b\\ud800c"
    long = published_text("x" * 330_000)
    assert len(long) == MAX_PUBLISHED_TEXT
    assert long.endswith("... (cut; 330,000 characters in all)")
    assert published_text("short") == "short"


def test_a_worker_error_text_is_capped_in_the_event() -> None:
    event = failure_event(RUN_ID, None, "WORKER_ERROR: " + "y" * 50_000)
    assert len(event["error"]) == MAX_PUBLISHED_TEXT
    assert "retryable" not in event


@given(version_ts, version_ts)
def test_the_current_manifest_only_moves_to_a_later_version(ours: str, theirs: str) -> None:
    assert supersedes(ours, theirs) == (ours > theirs)
    assert not (supersedes(ours, theirs) and supersedes(theirs, ours))


def test_a_current_manifest_of_another_format_is_replaced() -> None:
    assert supersedes("20251111T014305.123456Z", None)
    assert supersedes("20251111T014305.123456Z", "2025-11-11T01-43-05")
    assert supersedes("20251111T014305.123456Z", 7)
