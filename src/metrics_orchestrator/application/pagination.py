"""Pages and their opaque cursors, for every list the service returns (SPEC §6.3).

A cursor is the JSON of a page position, base64url without padding. It is opaque to clients
and only ever decoded here: a cursor that does not decode to the position its list expects is
a ValidationError on `cursor`, never a 500 or a silently different page. Each list keeps the
position it had before this module existed, so a cursor issued earlier stays valid:

| list | position |
|---|---|
| metrics, datasets, series (keyset by code/id) | `{"after": key}` |
| event log (newest first) | `{"before_id": id}` |
| runs (newest first) | `[created_at ISO 8601, run id]` |
| a run's output rows | `{"offset": n}` |
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeGuard, TypeVar
from uuid import UUID

from metrics_orchestrator.application.ports.runs import RunPageKey
from metrics_orchestrator.domain.errors import FieldError, ValidationError

T = TypeVar("T")

MAX_PAGE_SIZE = 500
NOT_OURS = "is not a cursor this API returned"
_MAX_EVENT_ID = 2**63  # event_log.id is a bigint


# --- the wire format ---------------------------------------------------------------------------


def encode_cursor(position: object) -> str:
    raw = json.dumps(position).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, message: str = NOT_OURS) -> object:
    """The position a cursor carries; ValidationError when it is not base64url JSON."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid_cursor(message) from None


def invalid_cursor(message: str = NOT_OURS) -> ValidationError:
    return ValidationError([FieldError("cursor", message)])


def check_page_size(limit: int, maximum: int = MAX_PAGE_SIZE) -> None:
    if not 1 <= limit <= maximum:
        raise ValidationError([FieldError("limit", f"must be between 1 and {maximum}")])


def cut_page(
    rows: Sequence[T], limit: int, cursor_of: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """The first `limit` of `rows` (fetched as `limit + 1`), and the next page's cursor if more."""
    page = list(rows[:limit])
    return page, cursor_of(page[-1]) if len(rows) > limit else None


# --- each list's position ----------------------------------------------------------------------


def keyset_page(
    items: Iterable[T], key: Callable[[T], str], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """The `limit` items after the cursor's key in key order, and the next page's cursor.

    For the catalog lists, read whole from their service (hundreds of entries, not millions);
    pages are cut by key, so an entry added or removed between two requests never shifts a page.
    """
    after = decode_key_cursor(cursor) if cursor else None
    remaining = sorted((i for i in items if after is None or key(i) > after), key=key)
    return cut_page(remaining, limit, lambda last: encode_key_cursor(key(last)))


def encode_key_cursor(last_key: str) -> str:
    return encode_cursor({"after": last_key})


def decode_key_cursor(cursor: str) -> str:
    after = _field(decode_cursor(cursor), "after")
    if not isinstance(after, str):
        raise invalid_cursor()
    return after


def encode_event_cursor(last_id: int) -> str:
    return encode_cursor({"before_id": last_id})


def decode_event_cursor(cursor: str) -> int:
    before_id = _field(decode_cursor(cursor), "before_id")
    if not _is_int(before_id) or not 1 <= before_id < _MAX_EVENT_ID:
        raise invalid_cursor()
    return before_id


def encode_run_cursor(key: RunPageKey) -> str:
    return encode_cursor([key.created_at.isoformat(), str(key.id)])


def decode_run_cursor(cursor: str) -> RunPageKey:
    position = decode_cursor(cursor)
    if not isinstance(position, list) or len(position) != 2:
        raise invalid_cursor()
    created_at, run_id = position
    if not isinstance(created_at, str) or not isinstance(run_id, str):
        raise invalid_cursor()
    try:
        key = RunPageKey(datetime.fromisoformat(created_at), UUID(run_id))
    except ValueError:
        raise invalid_cursor() from None
    if key.created_at.tzinfo is None:
        raise invalid_cursor()
    return key


OFFSET_NOT_OURS = "is not a cursor this endpoint returned"


def encode_offset_cursor(offset: int) -> str:
    return encode_cursor({"offset": offset})


def decode_offset_cursor(cursor: str | None) -> int:
    """The row offset a cursor carries; 0 without one."""
    if not cursor:
        return 0
    offset = _field(decode_cursor(cursor, OFFSET_NOT_OURS), "offset")
    if not _is_int(offset) or offset < 0:
        raise invalid_cursor(OFFSET_NOT_OURS)
    return offset


def _field(position: object, name: str) -> object:
    return position.get(name) if isinstance(position, dict) else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
