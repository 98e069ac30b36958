"""Keyset pagination of the catalog lists (metrics by code, datasets by id).

The catalog is read whole from its service (it is small: hundreds of entries, not millions);
pages are cut by key, so an entry added or removed between two requests never shifts a page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from typing import TypeVar

from metrics_orchestrator.domain.errors import FieldError, ValidationError

T = TypeVar("T")


def keyset_page(
    items: Iterable[T], key: Callable[[T], str], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """The `limit` items after the cursor's key in key order, and the next page's cursor."""
    after = decode_key_cursor(cursor) if cursor else None
    remaining = sorted((i for i in items if after is None or key(i) > after), key=key)
    page = remaining[:limit]
    more = len(remaining) > limit
    return page, encode_key_cursor(key(page[-1])) if more else None


def encode_key_cursor(last_key: str) -> str:
    raw = json.dumps({"after": last_key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_key_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        after = json.loads(raw)["after"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        after = None
    if not isinstance(after, str):
        raise ValidationError([FieldError("cursor", "is not a cursor this API returned")])
    return after
