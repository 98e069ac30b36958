"""Decoding and validating received events (SPEC §4.1, §4.2, §5.1, §5.8). Pure functions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from metrics_orchestrator.domain.errors import FieldError, ValidationError

MAX_BODY_BYTES = 256 * 1024

PROJECTION_UPDATE = "projection_update"
RUN_STARTED = "metric_run_started"
RUN_HEARTBEAT = "metric_run_heartbeat"
RUN_COMPLETED = "metric_run_completed"
KNOWN_EVENT_TYPES = frozenset({PROJECTION_UPDATE, RUN_STARTED, RUN_HEARTBEAT, RUN_COMPLETED})


class UndecodableEvent(Exception):
    """A body that cannot be an event at all: oversized, not JSON, not an object, unknown type.

    `event_type` is what could be read of the type (or "unknown"), for the event log.
    """

    def __init__(self, reason: str, event_type: str = "unknown") -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_type = event_type


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """A message body reduced to its event: type and JSON object, envelope removed."""

    event_type: str
    payload: dict[str, Any]
    raw_body: str


def body_digest_key(event_type: str, raw_body: str) -> str:
    """Key of events without a natural one: a redelivered copy maps to the same key."""
    return f"{event_type}:{hashlib.sha256(raw_body.encode('utf-8')).hexdigest()}"


def decode_event(raw_body: str) -> DecodedEvent:
    """Read a queue message body, raw or in an SNS notification envelope, into an event."""
    if len(raw_body.encode("utf-8")) > MAX_BODY_BYTES:
        raise UndecodableEvent(f"payload larger than {MAX_BODY_BYTES} bytes; not parsed")
    document = _json_object(raw_body, what="body")
    if document.get("Type") == "Notification" and "Message" in document:
        message = document["Message"]
        if not isinstance(message, str):
            raise UndecodableEvent("SNS envelope: Message must be a JSON string")
        document = _json_object(message, what="SNS envelope Message")
    unstorable = _unstorable_text(document)
    if unstorable:
        raise UndecodableEvent(f"payload contains {unstorable}, which cannot be stored")
    event_type = document.get("type", document.get("event"))
    if event_type is None and "dataset_id" in document:
        # SPEC §4.1: `event` is optional on a projection update
        event_type = PROJECTION_UPDATE
    if not isinstance(event_type, str) or not event_type:
        raise UndecodableEvent("missing event type: expected a 'type' or 'event' string field")
    if event_type not in KNOWN_EVENT_TYPES:
        raise UndecodableEvent(f"unknown event type {event_type!r}", event_type="unknown")
    return DecodedEvent(event_type=event_type, payload=document, raw_body=raw_body)


def _unstorable_text(document: Any) -> str | None:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates ("\\ud800")."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return "a NUL character (\\u0000)"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "a lone surrogate escape (e.g. \\ud800)"
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def _json_object(text: str, *, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UndecodableEvent(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UndecodableEvent(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


class FieldReader:
    """Collects every problem with an event's fields before failing (SPEC §5.8)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.errors: list[FieldError] = []

    def string(self, name: str, *, required: bool) -> str | None:
        value = self.payload.get(name)
        if value is None:
            if required:
                self.errors.append(FieldError(name, "is required"))
            return None
        if not isinstance(value, str) or not value.strip():
            self.errors.append(FieldError(name, "must be a non-empty string"))
            return None
        return value

    def timestamp(self, name: str, *, required: bool) -> datetime | None:
        text = self.string(name, required=required)
        if text is None:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.errors.append(FieldError(name, "must be an ISO-8601 timestamp"))
            return None
        if parsed.tzinfo is None:
            self.errors.append(FieldError(name, "must include a time zone (e.g. Z or +00:00)"))
            return None
        return parsed

    def finish(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


@dataclass(frozen=True, slots=True)
class ProjectionUpdate:
    dataset_id: str
    version_manifest_path: str
    projections_path: str
    bucket: str | None
    occurred_at: datetime | None

    @property
    def event_key(self) -> str:
        return f"{self.dataset_id}:{self.version_manifest_path}"


def parse_projection_update(payload: dict[str, Any]) -> ProjectionUpdate:
    """Validate a projection_update event, naming every offending field at once."""
    fields = FieldReader(payload)
    event = payload.get("event")
    if event is not None and event != PROJECTION_UPDATE:
        fields.errors.append(FieldError("event", f"must be {PROJECTION_UPDATE!r}"))
    dataset_id = fields.string("dataset_id", required=True)
    manifest = fields.string("version_manifest_path", required=True)
    projections = fields.string("projections_path", required=True)
    bucket = fields.string("bucket", required=False)
    occurred_at = fields.timestamp("occurred_at", required=False)
    fields.finish()
    assert dataset_id is not None
    assert manifest is not None
    assert projections is not None
    return ProjectionUpdate(
        dataset_id=dataset_id,
        version_manifest_path=manifest,
        projections_path=projections,
        bucket=bucket,
        occurred_at=occurred_at,
    )
