"""The decoding boundary (SPEC §2, §4, §5.8): bytes to an event or a rejection that names why."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.decoding import (
    MAX_JSON_DEPTH,
    nesting_depth,
    read_json_object,
)
from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.events import (
    UndecodableEvent,
    decode_event,
    parse_projection_update,
)
from metrics_orchestrator.domain.identifiers import identifier_problem, is_identifier
from metrics_orchestrator.domain.messages.run_completed import parse_run_completed
from metrics_orchestrator.domain.messages.run_heartbeat import parse_run_heartbeat
from metrics_orchestrator.domain.orchestration import fresh_until
from tests.updates import update_version

NOW = datetime(2025, 11, 11, 12, 0, tzinfo=UTC)
RUN_ID = "6a1e7d4c-0000-4000-8000-000000000001"
UPDATE: dict[str, Any] = {
    "event": "projection_update",
    "dataset_id": "d1",
    "version_manifest_path": "datasets/d1/versions/v1/manifest.json",
    "projections_path": "datasets/d1/projections",
}


def _reason(body: bytes | str) -> str:
    with pytest.raises(UndecodableEvent) as raised:
        decode_event(body, received_at=NOW)
    return raised.value.reason


def _update_problems(**fields: Any) -> str:
    decoded = decode_event(json.dumps({**UPDATE, **fields}), received_at=NOW)
    with pytest.raises(ValidationError) as raised:
        decoded.projection_update()
    return str(raised.value)


# --- JSON limits ---------------------------------------------------------------------------


def test_nesting_up_to_64_levels_is_read_and_65_is_refused_without_recursion() -> None:
    def nested(depth: int) -> bytes:
        return ('{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}").encode()

    deepest = read_json_object(nested(MAX_JSON_DEPTH))
    assert nesting_depth(json.dumps(deepest).encode()) == MAX_JSON_DEPTH
    assert "nested deeper than 64 levels" in _reason(nested(MAX_JSON_DEPTH + 1))
    assert "nested deeper than 64 levels" in _reason(b"[" * 200_000)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert nesting_depth(b'{"a": "[[[[[[\\"[[[[", "b": [1]}') == 2


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_non_finite_numbers_are_refused_naming_the_field(literal: str) -> None:
    body = f'{{"type": "metric_run_heartbeat", "runId": "{RUN_ID}", "progress": {literal}}}'
    reason = _reason(body)
    assert "$.progress: non-finite number" in reason
    with pytest.raises(UndecodableEvent) as raised:
        decode_event(body)
    assert raised.value.event_type == "metric_run_heartbeat"


@pytest.mark.parametrize(
    ("literal", "accepted"),
    [
        (str(2**63 - 1), True),
        (str(-(2**63)), True),
        (str(2**63), False),
        (str(-(2**63) - 1), False),
        ("9" * 5000, False),  # beyond int()'s 4,300-digit guard: never handed to int()
    ],
)
def test_integers_outside_64_bits_are_refused_naming_the_field(
    literal: str, accepted: bool
) -> None:
    body = '{"dataset_id": "d1", "x": {"n": [' + literal + "]}}"
    if accepted:
        assert decode_event(body).payload["x"]["n"] == [int(literal)]
    else:
        assert "$.x.n[0]: integer out of the signed 64-bit range" in _reason(body)


def test_the_size_limit_is_checked_before_parsing() -> None:
    assert "larger than 262144 bytes; not parsed" in _reason(b"[" * (256 * 1024 + 1))


def test_invalid_utf8_and_a_byte_order_mark_are_refused() -> None:
    assert "not valid UTF-8 (invalid start byte at byte 0)" in _reason(b"\xff{}")
    assert "starts with a byte order mark" in _reason(b"\xef\xbb\xbf" + json.dumps(UPDATE).encode())


def test_text_postgresql_cannot_store_is_refused_naming_the_field() -> None:
    assert "$.note: a NUL character" in _reason(json.dumps({**UPDATE, "note": "a\x00b"}))
    assert "$.note: a lone surrogate" in _reason(json.dumps({**UPDATE, "note": "\ud800"}))


def test_an_envelope_inside_an_envelope_is_not_an_event() -> None:
    inner = json.dumps({"Type": "Notification", "Message": json.dumps(UPDATE)})
    assert "missing event type" in _reason(json.dumps({"Type": "Notification", "Message": inner}))


def test_a_text_body_with_a_lone_surrogate_is_refused_not_raised() -> None:
    assert "not valid UTF-8" in _reason('{"dataset_id": "\ud800"}')


# --- field limits --------------------------------------------------------------------------


def test_every_offending_field_of_an_update_is_named() -> None:
    problems = _update_problems(
        dataset_id="ds:v1",
        version_manifest_path="m" * 1025,
        projections_path="p" * 1025,
        bucket="ab",
        occurred_at="2025-11-11T12:06:00Z",
    )
    assert problems.startswith("dataset_id: 'ds:v1' must be 1-128 characters of A-Z a-z 0-9 _ . -")
    assert "version_manifest_path: must be at most 1024 characters" in problems
    assert "projections_path: must be at most 1024 characters" in problems
    assert "bucket: must be 3-63 characters (got 2)" in problems
    assert "occurred_at: is in the future" in problems


def test_paths_are_bounded_in_utf8_bytes_so_the_event_key_fits_its_index() -> None:
    assert "at most 1024 characters and 2048 UTF-8 bytes" in _update_problems(
        version_manifest_path="\U0001f600" * 1000
    )
    decoded = decode_event(
        json.dumps({**UPDATE, "version_manifest_path": "é" * 1024}), received_at=NOW
    )
    assert decoded.projection_update().version_manifest_path == "é" * 1024


@pytest.mark.parametrize(
    ("occurred_at", "accepted"),
    [
        ("1970-01-01T00:00:00Z", True),
        ("1970-01-01T00:59:59+01:00", False),  # 1969 in UTC
        ((NOW + timedelta(minutes=5)).isoformat(), True),
        ((NOW + timedelta(minutes=5, seconds=1)).isoformat(), False),
        ("9999-12-31T23:59:59-23:59", False),  # year 10000 in UTC
        ("0001-01-01T00:00:00+23:59", False),  # before year 1 in UTC
        ("2025-11-11T01:41:38", False),  # no zone
    ],
)
def test_occurred_at_is_bounded_by_1970_and_the_clock_skew(
    occurred_at: str, accepted: bool
) -> None:
    decoded = decode_event(json.dumps({**UPDATE, "occurred_at": occurred_at}), received_at=NOW)
    if accepted:
        assert decoded.projection_update().occurred_at == datetime.fromisoformat(occurred_at)
    else:
        with pytest.raises(ValidationError, match="occurred_at"):
            decoded.projection_update()


def test_the_clock_skew_is_an_input_of_the_decoder() -> None:
    body = json.dumps({**UPDATE, "occurred_at": (NOW + timedelta(hours=1)).isoformat()})
    assert decode_event(body, received_at=NOW, max_clock_skew=timedelta(hours=2)).update
    assert decode_event(body, received_at=NOW).invalid is not None
    # without a time of receipt only the absolute range applies
    assert parse_projection_update(json.loads(body)).occurred_at is not None


def test_the_event_key_of_an_invalid_update_is_its_digest_unless_its_parts_are_valid() -> None:
    long_id = decode_event(json.dumps({**UPDATE, "dataset_id": "x" * 10_000}), received_at=NOW)
    assert long_id.event_key.startswith("projection_update:")
    future = decode_event(
        json.dumps({**UPDATE, "occurred_at": "2999-01-01T00:00Z"}), received_at=NOW
    )
    assert future.event_key == "d1:datasets/d1/versions/v1/manifest.json"


def test_feedback_bounds() -> None:
    completed = {"runId": RUN_ID, "status": "SUCCESS", "rowCount": 2**63 - 1}
    assert parse_run_completed(completed).row_count == 2**63 - 1
    for bad in ({"rowCount": True}, {"rowCount": -1}, {"rowCount": 2**63}, {"rowCount": 1.5}):
        with pytest.raises(ValidationError, match="rowCount"):
            parse_run_completed({**completed, **bad})
    with pytest.raises(ValidationError, match="metricCode"):
        parse_run_completed({**completed, "metricCode": "code with space"})
    with pytest.raises(ValidationError, match="versionTs: must be between"):
        parse_run_completed({**completed, "versionTs": "9999-12-31T23:59:59-23:59"})
    with pytest.raises(ValidationError, match="versionTs: must include a time zone"):
        parse_run_completed({**completed, "versionTs": "2025-11-11T01:43:05"})
    assert parse_run_completed({**completed, "versionTs": "2025-11-11T01-43-05"}).version_ts
    with pytest.raises(ValidationError, match="ts: must be between"):
        parse_run_heartbeat({"runId": RUN_ID, "ts": "0001-01-01T00:00:00+23:59"})


# --- identifiers (SPEC §2) -----------------------------------------------------------------

# What SNS FIFO accepts as a MessageGroupId: 1-128 letters, digits and punctuation.
MESSAGE_GROUP_ID = re.compile(r"[!-~]{1,128}")


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=140))
def test_every_identifier_is_a_valid_fifo_message_group_id(value: str) -> None:
    if is_identifier(value):
        assert MESSAGE_GROUP_ID.fullmatch(value)
        assert ":" not in value
        assert "/" not in value


@pytest.mark.parametrize("value", ["a", "A-Z_a.z-09", "x" * 128])
def test_identifiers_that_are_accepted(value: str) -> None:
    assert is_identifier(value)
    assert identifier_problem(value) is None


@pytest.mark.parametrize("value", ["", "x" * 129, "ds:v1", "a/b", "a b", "é", 42, None])
def test_identifiers_that_are_refused_name_the_value(value: object) -> None:
    problem = identifier_problem(value)
    assert not is_identifier(value)
    assert problem is not None
    assert "must be 1-128 characters of A-Z a-z 0-9 _ . -" in problem


# --- readiness arithmetic --------------------------------------------------------------------


def test_fresh_until_is_clamped_instead_of_overflowing() -> None:
    from uuid import uuid4

    late = update_version(
        id=uuid4(),
        dataset_id="d1",
        effective_at=datetime(9999, 12, 30, tzinfo=UTC),
        received_at=NOW,
        seq=1,
    )
    assert fresh_until(late, 36_500) == datetime.max.replace(tzinfo=UTC)
