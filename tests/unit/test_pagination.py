"""The one cursor module (application/pagination.py): wire format, round trips, forgeries."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.application.pagination import (
    MAX_PAGE_SIZE,
    check_page_size,
    cut_page,
    decode_event_cursor,
    decode_key_cursor,
    decode_offset_cursor,
    decode_run_cursor,
    encode_event_cursor,
    encode_key_cursor,
    encode_offset_cursor,
    encode_run_cursor,
    keyset_page,
)
from metrics_orchestrator.application.ports.runs import RunPageKey
from metrics_orchestrator.domain.errors import ValidationError

RUN_ID = UUID("12345678-1234-5678-1234-567812345678")
CREATED = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
DECODERS = (decode_key_cursor, decode_event_cursor, decode_run_cursor, decode_offset_cursor)


def _wire(position: object) -> str:
    """The format the three former modules wrote: base64url of the JSON, no padding."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def test_cursors_issued_before_the_merge_still_decode() -> None:
    assert encode_key_cursor("fx.gap") == _wire({"after": "fx.gap"})
    assert decode_key_cursor(_wire({"after": "fx.gap"})) == "fx.gap"
    assert encode_event_cursor(42) == _wire({"before_id": 42})
    assert decode_event_cursor(_wire({"before_id": 42})) == 42
    key = RunPageKey(CREATED, RUN_ID)
    assert encode_run_cursor(key) == _wire([CREATED.isoformat(), str(RUN_ID)])
    assert decode_run_cursor(_wire([CREATED.isoformat(), str(RUN_ID)])) == key
    assert encode_offset_cursor(7) == _wire({"offset": 7})
    assert decode_offset_cursor(_wire({"offset": 7})) == 7
    assert decode_offset_cursor(None) == 0


@pytest.mark.parametrize(
    ("decode", "position"),
    [
        (decode_key_cursor, {"after": 3}),
        (decode_key_cursor, {"before_id": 3}),
        (decode_event_cursor, {"before_id": 0}),
        (decode_event_cursor, {"before_id": 2**63}),
        (decode_event_cursor, {"before_id": True}),
        (decode_event_cursor, [1]),
        (decode_run_cursor, ["2026-03-01T12:30:00", str(RUN_ID)]),  # naive
        (decode_run_cursor, [CREATED.isoformat(), 5]),
        (decode_run_cursor, [CREATED.isoformat(), "not-a-uuid"]),
        (decode_run_cursor, [CREATED.isoformat()]),
        (decode_run_cursor, {"after": "x"}),
        (decode_offset_cursor, {"offset": -1}),
        (decode_offset_cursor, {"offset": 1.5}),
    ],
)
def test_a_position_of_the_wrong_shape_is_refused_on_cursor(
    decode: Callable[[str], object], position: object
) -> None:
    with pytest.raises(ValidationError) as caught:
        decode(_wire(position))
    assert [error.path for error in caught.value.errors] == ["cursor"]


@given(st.text(max_size=40))
def test_any_string_decodes_or_is_a_validation_error(cursor: str) -> None:
    for decode in DECODERS:
        problems: list[str] = []
        try:
            decode(cursor)
        except ValidationError as exc:
            problems = [error.path for error in exc.errors]
        assert problems in ([], ["cursor"])


@given(st.text())
def test_key_cursors_round_trip(key: str) -> None:
    assert decode_key_cursor(encode_key_cursor(key)) == key


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_event_cursors_round_trip(event_id: int) -> None:
    assert decode_event_cursor(encode_event_cursor(event_id)) == event_id


@given(st.datetimes(timezones=st.just(UTC)), st.uuids())
def test_run_cursors_round_trip(created_at: datetime, run_id: UUID) -> None:
    key = RunPageKey(created_at, run_id)
    assert decode_run_cursor(encode_run_cursor(key)) == key


@given(st.lists(st.text(max_size=3), unique=True, max_size=12), st.integers(1, 5))
def test_keyset_pages_walk_every_item_once_in_key_order(items: list[str], limit: int) -> None:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = keyset_page(items, lambda item: item, limit, cursor)
        assert len(page) <= limit
        seen += page
        if cursor is None:
            break
    assert seen == sorted(items)


def test_a_page_has_a_cursor_only_when_more_rows_follow() -> None:
    assert cut_page([1, 2, 3], 2, str) == ([1, 2], "2")
    assert cut_page([1, 2], 2, str) == ([1, 2], None)
    assert cut_page([], 2, str) == ([], None)


def test_page_size_bounds() -> None:
    check_page_size(1)
    check_page_size(MAX_PAGE_SIZE)
    for limit in (0, MAX_PAGE_SIZE + 1):
        with pytest.raises(ValidationError, match="limit"):
            check_page_size(limit)
    with pytest.raises(ValidationError, match="between 1 and 9"):
        check_page_size(10, 9)
