"""Reading an event's fields, collecting every problem before failing (SPEC §4, §5.8).

Shared by every message's parser (`events` for projection updates, `messages/` for the worker
messages). Pure functions, standard library only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.identifiers import identifier_problem

# SPEC §4.1, §4.2: the limits of event fields.
MAX_PATH_LENGTH = 1024
# A path is part of the event key, which PostgreSQL indexes (a btree entry holds ~2,700
# bytes): 1,024 characters of 4-byte UTF-8 would not fit, so paths are bounded in bytes too.
MAX_PATH_BYTES = 2048
# Free text a worker reports (error, versionTs, outputManifest): bounded by the body size only
# for `error`; these two are path-like and end up in listings.
MAX_LABEL_LENGTH = 1024
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def path_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if len(value) > MAX_PATH_LENGTH or len(value.encode("utf-8", "replace")) > MAX_PATH_BYTES:
        return f"must be at most {MAX_PATH_LENGTH} characters and {MAX_PATH_BYTES} UTF-8 bytes"
    return None


class FieldReader:
    """Collects every problem with an event's fields before failing (SPEC §5.8)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.errors: list[FieldError] = []

    def string(
        self, name: str, *, required: bool, min_length: int = 1, max_length: int | None = None
    ) -> str | None:
        """A non-blank string of `min_length` to `max_length` characters."""
        value = self.payload.get(name)
        if value is None:
            if required:
                self.errors.append(FieldError(name, "is required"))
            return None
        if not isinstance(value, str) or not value.strip():
            self.errors.append(FieldError(name, "must be a non-empty string"))
            return None
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            upper = f"-{max_length:,}" if max_length is not None else " or more"
            self.errors.append(
                FieldError(name, f"must be {min_length}{upper} characters (got {len(value):,})")
            )
            return None
        return value

    def path(self, name: str, *, required: bool) -> str | None:
        """A path of SPEC §4.1: 1-1,024 characters (and at most MAX_PATH_BYTES bytes)."""
        value = self.payload.get(name)
        if value is None:
            if required:
                self.errors.append(FieldError(name, "is required"))
            return None
        problem = path_problem(value)
        if problem is not None:
            self.errors.append(FieldError(name, problem))
            return None
        assert isinstance(value, str)
        return value

    def identifier(self, name: str, *, required: bool) -> str | None:
        """An identifier of SPEC §2 (`domain.identifiers`)."""
        value = self.string(name, required=required)
        if value is None:
            return None
        problem = identifier_problem(value)
        if problem is not None:
            self.errors.append(FieldError(name, problem))
            return None
        return value

    def timestamp(
        self, name: str, *, required: bool, not_after: datetime | None = None
    ) -> datetime | None:
        """An ISO-8601 timestamp with a zone, 1970-9999 in UTC, and not after `not_after`."""
        text = self.string(name, required=required, max_length=64)
        if text is None:
            return None
        parsed = _timestamp(text)
        if isinstance(parsed, str):
            self.errors.append(FieldError(name, parsed))
            return None
        if not_after is not None and parsed > not_after:
            self.errors.append(
                FieldError(name, f"is in the future: later than {not_after.isoformat()}")
            )
            return None
        return parsed

    def finish(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


def _timestamp(text: str) -> datetime | str:
    """The parsed timestamp, or why it is not one SPEC §4 accepts."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return "must be an ISO-8601 timestamp"
    if parsed.tzinfo is None:
        return "must include a time zone (e.g. Z or +00:00)"
    range_rule = "must be between 1970-01-01 and 9999-12-31 in UTC"
    try:
        in_utc = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return range_rule
    if not EARLIEST_TIMESTAMP <= in_utc <= LATEST_TIMESTAMP:
        return range_rule
    return parsed


def timestamp_problem(text: str) -> str | None:
    """Why `text` is not a timestamp SPEC §4 accepts, or None."""
    parsed = _timestamp(text)
    return parsed if isinstance(parsed, str) else None
