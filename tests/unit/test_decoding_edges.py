"""The exact edges of the decoding boundary (SPEC §4.1, §4.2, §5.8), pinned one by one.

Every rejection reason below is stored in `event_log` and shown by the API, so its wording is
behaviour. test_decoding.py covers the limits as a whole; this file covers their boundaries
(`>` against `>=`), the SNS envelope, the event type, paths, timestamps and the problem list.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.decoding import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    UndecodableEvent,
    is_jsonb_storable,
    nesting_depth,
    read_json_object,
    unstorable_values,
)
from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.events import (
    PROJECTION_UPDATE,
    body_digest_key,
    decode_event,
    event_text,
    parse_projection_update,
)
from metrics_orchestrator.domain.fields import FieldReader, timestamp_problem
from metrics_orchestrator.domain.messages.run_completed import parse_run_completed
from metrics_orchestrator.domain.messages.run_started import RUN_STARTED

NOW = datetime(2025, 11, 11, 12, 0, tzinfo=UTC)
RUN_ID = "6a1e7d4c-0000-4000-8000-000000000001"
UPDATE: dict[str, Any] = {
    "dataset_id": "d1",
    "version_manifest_path": "datasets/d1/versions/v1/manifest.json",
    "projections_path": "datasets/d1/projections",
}
NUL = "a NUL character (\\u0000), which cannot be stored"


def _refusal(body: bytes) -> UndecodableEvent:
    with pytest.raises(UndecodableEvent) as raised:
        read_json_object(body)
    return raised.value


def _problems(payload: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as raised:
        parse_projection_update(payload, received_at=NOW)
    return str(raised.value)


def _decode_refusal(document: object) -> UndecodableEvent:
    with pytest.raises(UndecodableEvent) as raised:
        decode_event(json.dumps(document))
    return raised.value


# --- UndecodableEvent -----------------------------------------------------------------------


def test_an_undecodable_event_says_why_and_is_of_unknown_type_by_default() -> None:
    error = UndecodableEvent("why")
    assert (str(error), error.reason, error.event_type) == ("why", "why", "unknown")
    assert _refusal(b"{").event_type == "unknown"


# --- size, JSON, object -----------------------------------------------------------------------


def _body_of(size: int) -> bytes:
    skeleton = b'{"pad": ""}'
    return b'{"pad": "' + b"x" * (size - len(skeleton)) + b'"}'


def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_not() -> None:
    assert len(_body_of(MAX_BODY_BYTES)) == MAX_BODY_BYTES
    assert read_json_object(_body_of(MAX_BODY_BYTES))["pad"].startswith("x")
    assert _refusal(_body_of(MAX_BODY_BYTES + 1)).reason == (
        f"payload larger than {MAX_BODY_BYTES} bytes; not parsed"
    )


def test_invalid_json_is_named_as_the_body_unless_told_otherwise() -> None:
    assert _refusal(b"{").reason.startswith("body is not valid JSON: ")
    with pytest.raises(UndecodableEvent) as raised:
        read_json_object(b"{", what="SNS envelope Message")
    assert raised.value.reason.startswith("SNS envelope Message is not valid JSON: ")


@pytest.mark.parametrize(
    ("body", "got"),
    [
        (b"[1]", "list"),
        (b'"x"', "str"),
        (b"1", "int"),
        (b"null", "NoneType"),
        (b"NaN", "non-finite number"),
    ],
)
def test_a_document_that_is_not_an_object_is_named_by_its_type(body: bytes, got: str) -> None:
    assert _refusal(body).reason == f"body must be a JSON object, got {got}"


def test_a_bom_is_refused() -> None:
    assert _refusal(b"\xef\xbb\xbf{}").reason == (
        "body starts with a byte order mark; send JSON without one"
    )


def test_invalid_utf8_names_the_byte() -> None:
    assert _refusal(b'{"a": "\xff"}').reason == (
        "body is not valid UTF-8 (invalid start byte at byte 7)"
    )


# --- nesting ----------------------------------------------------------------------------------


def test_many_brackets_side_by_side_are_not_deep() -> None:
    flat = ("{" + '"a": [' + ", ".join(["[]"] * (2 * MAX_JSON_DEPTH)) + "]}").encode()
    assert read_json_object(flat)["a"] == [[]] * (2 * MAX_JSON_DEPTH)


def test_the_deepest_allowed_nesting_is_read_even_with_many_brackets() -> None:
    deep = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    body = ('{"deep": ' + deep + ', "wide": [' + ", ".join(["{}"] * 10) + "]}").encode()
    assert nesting_depth(body) == MAX_JSON_DEPTH
    assert set(read_json_object(body)) == {"deep", "wide"}


def test_one_level_deeper_is_refused() -> None:
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert _refusal(('{"deep": ' + deep + "}").encode()).reason == (
        f"body is JSON nested deeper than {MAX_JSON_DEPTH} levels"
    )


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"[][][]", 1),
        (b"{}{}{}", 1),
        (b"[[]][[]]", 2),
        (b"{[]}{[]}{[]}", 2),
        (b'[["]]]]"]]', 2),
        (b'{"a": "{{{{"}', 1),
    ],
)
def test_nesting_depth_counts_closing_brackets_and_skips_strings(body: bytes, depth: int) -> None:
    assert nesting_depth(body) == depth


# --- storable values --------------------------------------------------------------------------


@pytest.mark.parametrize("document", [{"a": 1}, {"é": "ü"}, [1.5, None, True], "text"])
def test_ordinary_documents_are_storable(document: Any) -> None:
    assert is_jsonb_storable(document) is True
    assert unstorable_values(document) == []


@pytest.mark.parametrize(
    "document",
    [{"a": float("nan")}, [float("inf")], {"a": "\x00"}, {"\x00": 1}, ["\ud800"], {"\udfff": 1}],
)
def test_non_finite_numbers_nul_and_lone_surrogates_are_not_storable(document: Any) -> None:
    assert is_jsonb_storable(document) is False


def test_at_most_ten_problems_are_listed_in_document_order() -> None:
    document = {f"f{i:02}": "\x00" for i in range(12)}
    assert unstorable_values(document) == [f"$.f{i:02}: {NUL}" for i in range(10)]


def test_exactly_ten_problems_are_all_listed() -> None:
    document = [f"\x00{i}" for i in range(10)]
    assert unstorable_values(document) == [f"$[{i}]: {NUL}" for i in range(10)]


def test_a_bad_key_is_named_by_its_repr() -> None:
    assert unstorable_values({"a\x00b": 1}) == [f"$.'a\\x00b': key contains {NUL}"]
    assert unstorable_values({"x": {"\ud800": 1}}) == [
        "$.x.'\\ud800': key contains a lone surrogate escape (e.g. \\ud800), which cannot be stored"
    ]


def test_long_keys_in_a_path_are_shortened_past_forty_characters() -> None:
    assert unstorable_values({"k" * 40: "\x00"}) == [f"$.{'k' * 40}: {NUL}"]
    assert unstorable_values({"k" * 41: "\x00"}) == [f"$.{'k' * 40}...(41 characters): {NUL}"]


def test_a_refused_number_is_named_by_its_literal() -> None:
    decoded = read_json_object(b'{"n": 1e999, "i": -99999999999999999999999}')
    assert unstorable_values(decoded) == [
        "$.n: non-finite number (1e999)",
        "$.i: integer out of the signed 64-bit range (-99999999999999999999999)",
    ]


# --- the body as text, and its key -------------------------------------------------------------


def test_event_text_keeps_text_and_escapes_invalid_utf8() -> None:
    assert event_text("é") == "é"
    assert event_text("é".encode()) == "é"
    assert event_text(b"a\xffb") == "a\\xffb"


def test_the_digest_key_is_the_sha256_of_the_body_even_with_a_lone_surrogate() -> None:
    body = '{"x": "\ud800"}'
    expected = hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
    assert body_digest_key("metric_run_started", body) == f"metric_run_started:{expected}"
    plain = hashlib.sha256(b"{}").hexdigest()
    assert body_digest_key("t", "{}") == f"t:{plain}"


# --- the SNS envelope and the event type -------------------------------------------------------


def _envelope(message: object) -> dict[str, Any]:
    return {"Type": "Notification", "Message": message, "TopicArn": "arn:aws:sns:x"}


def test_an_sns_notification_is_unwrapped() -> None:
    decoded = decode_event(json.dumps(_envelope(json.dumps(UPDATE))), received_at=NOW)
    assert decoded.payload == UPDATE
    assert decoded.projection_update().dataset_id == "d1"


def test_a_message_field_outside_a_notification_is_an_ordinary_field() -> None:
    document = {**UPDATE, "Message": "not an event"}
    assert decode_event(json.dumps(document)).payload == document
    other = {**UPDATE, "Type": "SubscriptionConfirmation", "Message": "hello"}
    assert decode_event(json.dumps(other)).payload == other


def test_an_envelope_message_must_be_a_json_object_string() -> None:
    assert _decode_refusal(_envelope(1)).reason == "SNS envelope: Message must be a JSON string"
    assert _decode_refusal(_envelope("1")).reason == (
        "SNS envelope Message must be a JSON object, got int"
    )


def test_the_event_field_names_the_type_when_type_is_absent() -> None:
    decoded = decode_event(json.dumps({"event": RUN_STARTED, "runId": RUN_ID}))
    assert decoded.event_type == RUN_STARTED
    assert decode_event(json.dumps({"type": RUN_STARTED, "event": "x"})).event_type == RUN_STARTED


@pytest.mark.parametrize("value", ["", 5, None, ["metric_run_started"]])
def test_a_type_that_is_not_a_non_empty_string_is_missing(value: object) -> None:
    assert _decode_refusal({"type": value}).reason == (
        "missing event type: expected a 'type' or 'event' string field"
    )


def test_an_unknown_type_is_shown_up_to_eighty_characters() -> None:
    assert _decode_refusal({"type": "x" * 80}).reason == f"unknown event type {'x' * 80!r}"
    assert _decode_refusal({"type": "x" * 81}).reason == (
        f"unknown event type {'x' * 80!r}... (81 characters)"
    )
    assert _decode_refusal({"type": "x" * 81}).event_type == "unknown"


# --- projection_update fields ------------------------------------------------------------------


def test_the_event_field_is_optional_and_must_name_the_event_when_present() -> None:
    assert parse_projection_update(UPDATE).dataset_id == "d1"
    assert _problems({**UPDATE, "event": "other"}) == "event: must be 'projection_update'"


def test_every_required_field_is_named_when_missing() -> None:
    assert _problems({}) == (
        "dataset_id: is required; version_manifest_path: is required; projections_path: is required"
    )


@pytest.mark.parametrize("value", ["", "   ", 5, ["a"]])
def test_a_path_must_be_a_non_empty_string(value: object) -> None:
    assert _problems({**UPDATE, "projections_path": value}) == (
        "projections_path: must be a non-empty string"
    )


def test_the_bucket_is_kept_and_bounded() -> None:
    update = parse_projection_update({**UPDATE, "bucket": "my-bucket"})
    assert update.bucket == "my-bucket"
    assert parse_projection_update(UPDATE).bucket is None
    assert _problems({**UPDATE, "bucket": "ab"}) == "bucket: must be 3-63 characters (got 2)"


# --- timestamps --------------------------------------------------------------------------------


def test_a_timestamp_longer_than_sixty_four_characters_is_refused_before_parsing() -> None:
    assert _problems({**UPDATE, "occurred_at": "x" * 65}) == (
        "occurred_at: must be 1-64 characters (got 65)"
    )
    assert _problems({**UPDATE, "occurred_at": "x" * 64}) == (
        "occurred_at: must be an ISO-8601 timestamp"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("yesterday", "must be an ISO-8601 timestamp"),
        ("2025-11-11T12:00:00", "must include a time zone (e.g. Z or +00:00)"),
        ("1969-12-31T23:59:59.999999+00:00", "must be between 1970-01-01 and 9999-12-31 in UTC"),
        ("9999-12-31T23:59:59-01:00", "must be between 1970-01-01 and 9999-12-31 in UTC"),
        ("0001-01-01T00:00:00+01:00", "must be between 1970-01-01 and 9999-12-31 in UTC"),
    ],
)
def test_timestamp_problems_are_named(text: str, problem: str) -> None:
    assert timestamp_problem(text) == problem


@pytest.mark.parametrize(
    "text",
    ["1970-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00", "2025-11-11T12:00:00Z"],
)
def test_the_ends_of_the_range_are_accepted(text: str) -> None:
    assert timestamp_problem(text) is None


@pytest.fixture
def local_zone_far_east() -> Iterator[None]:
    """The range is checked in UTC, whatever the machine's zone."""
    saved = time.tzname
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "XST-14")  # POSIX for UTC+14, no tz database needed
        time.tzset()
        yield
    time.tzset()
    assert time.tzname == saved


def test_the_range_is_checked_in_utc_not_in_the_local_zone(local_zone_far_east: None) -> None:
    assert timestamp_problem("9999-12-31T23:00:00+00:00") is None


def test_occurred_at_up_to_the_clock_skew_after_receipt_is_accepted() -> None:
    at_limit = (NOW + timedelta(minutes=5)).isoformat()
    update = parse_projection_update({**UPDATE, "occurred_at": at_limit}, received_at=NOW)
    assert update.occurred_at == NOW + timedelta(minutes=5)


# --- feedback text fields ----------------------------------------------------------------------


def _completed_problems(**fields: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        parse_run_completed({"runId": RUN_ID, "status": "SUCCESS", **fields})
    return str(raised.value)


def test_output_manifest_and_version_ts_are_bounded() -> None:
    ok = parse_run_completed(
        {"runId": RUN_ID, "status": "SUCCESS", "outputManifest": "m" * 1024, "versionTs": "v" * 128}
    )
    assert (ok.output_manifest, ok.version_ts) == ("m" * 1024, "v" * 128)
    assert _completed_problems(outputManifest="m" * 1025) == (
        "outputManifest: must be 1-1,024 characters (got 1,025)"
    )
    assert _completed_problems(versionTs="v" * 129) == (
        "versionTs: must be 1-128 characters (got 129)"
    )


@given(st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != ""))
def test_a_string_field_keeps_any_non_blank_text(text: str) -> None:
    bucket = text if 3 <= len(text) <= 63 else None
    payload = {**UPDATE, "bucket": bucket} if bucket else UPDATE
    assert parse_projection_update(payload).bucket == bucket


# --- what decode_event returns ------------------------------------------------------------------


def test_without_a_receipt_time_an_update_is_decoded_but_not_validated() -> None:
    decoded = decode_event(json.dumps(UPDATE))
    assert (decoded.update, decoded.invalid) == (None, None)
    assert decoded.projection_update().dataset_id == "d1"


def test_with_a_receipt_time_an_update_carries_its_validated_fields() -> None:
    body = json.dumps(UPDATE)
    decoded = decode_event(body.encode(), received_at=NOW)
    assert (decoded.event_type, decoded.payload, decoded.raw_body) == (
        PROJECTION_UPDATE,
        UPDATE,
        body,
    )
    assert decoded.invalid is None
    assert decoded.update == parse_projection_update(UPDATE)


def test_an_invalid_update_keeps_its_body_and_the_reason() -> None:
    body = json.dumps({**UPDATE, "dataset_id": "bad id"})
    decoded = decode_event(body, received_at=NOW)
    assert (decoded.event_type, decoded.payload["dataset_id"], decoded.raw_body) == (
        PROJECTION_UPDATE,
        "bad id",
        body,
    )
    assert decoded.update is None
    assert decoded.invalid is not None
    assert str(decoded.invalid).startswith("dataset_id: ")


def test_a_worker_event_is_not_validated_as_an_update() -> None:
    decoded = decode_event(json.dumps({"type": RUN_STARTED, "runId": RUN_ID}), received_at=NOW)
    assert (decoded.event_type, decoded.update, decoded.invalid) == (RUN_STARTED, None, None)


def test_an_unstorable_value_is_rejected_with_every_problem_and_the_known_type() -> None:
    refusal = _decode_refusal({"type": RUN_STARTED, "a": "\x00", "b": ["\x00"]})
    assert refusal.reason == f"payload rejected: $.a: {NUL}; $.b[0]: {NUL}"
    assert refusal.event_type == RUN_STARTED
    assert _decode_refusal({"type": "bogus", "a": "\x00"}).event_type == "unknown"
    assert _decode_refusal({"a": "\x00"}).event_type == "unknown"


# --- string fields --------------------------------------------------------------------------------


def test_one_character_is_enough_for_a_string_field() -> None:
    assert parse_projection_update({**UPDATE, "dataset_id": "d"}).dataset_id == "d"


@pytest.mark.parametrize("length", [3, 63])
def test_a_bucket_name_of_three_to_sixty_three_characters_is_kept(length: int) -> None:
    assert parse_projection_update({**UPDATE, "bucket": "b" * length}).bucket == "b" * length


def test_a_bucket_name_too_long_or_blank_is_refused() -> None:
    assert _problems({**UPDATE, "bucket": "b" * 64}) == "bucket: must be 3-63 characters (got 64)"
    assert _problems({**UPDATE, "bucket": "   "}) == "bucket: must be a non-empty string"
    assert _problems({**UPDATE, "bucket": 7}) == "bucket: must be a non-empty string"


def test_a_string_with_only_a_lower_bound_says_or_more() -> None:
    fields = FieldReader({"x": "ab", "y": "abc"})
    assert fields.string("y", required=True, min_length=3) == "abc"
    assert fields.string("x", required=True, min_length=3) is None
    assert [str(e) for e in fields.errors] == ["x: must be 3 or more characters (got 2)"]


# --- event keys (SPEC §5.1: the idempotency key, stored under a unique index) ---------------------


def test_the_natural_key_of_an_update_is_its_dataset_and_manifest() -> None:
    key = "d1:datasets/d1/versions/v1/manifest.json"
    assert parse_projection_update(UPDATE).event_key == key
    assert decode_event(json.dumps(UPDATE), received_at=NOW).event_key == key
    assert decode_event(json.dumps(UPDATE)).event_key == key


@pytest.mark.parametrize(
    "fields",
    [
        {"version_manifest_path": 5},
        {"version_manifest_path": "   "},
        {"version_manifest_path": "m" * 1025},
        {"dataset_id": "bad id"},
    ],
)
def test_an_update_with_an_invalid_key_part_is_keyed_by_its_body(fields: dict[str, Any]) -> None:
    body = json.dumps({**UPDATE, **fields})
    decoded = decode_event(body, received_at=NOW)
    assert decoded.event_key == body_digest_key(PROJECTION_UPDATE, body)


def test_closing_brackets_count_one_level_each() -> None:
    assert nesting_depth(b"[][[]]") == 2
    assert nesting_depth(b"{}{}{[[]]}") == 3
