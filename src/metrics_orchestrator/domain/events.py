"""Decoding and validating received events (SPEC §4.1, §4.2, §5.1, §5.8). Pure functions.

`decode_event` is the one boundary every received body crosses (queue, HTTP, `ingest`): bytes
in, a `DecodedEvent` out, or `UndecodableEvent` naming why it cannot be an event. The JSON
limits are in `decoding`; the rules of a projection update's fields are here, those of the
worker messages in `messages/`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from metrics_orchestrator.domain.decoding import (
    MAX_BODY_BYTES,
    UndecodableEvent,
    as_bytes,
    read_json_object,
    unstorable_values,
)
from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.fields import FieldReader, path_problem
from metrics_orchestrator.domain.identifiers import identifier_problem
from metrics_orchestrator.domain.messages.run_completed import RUN_COMPLETED
from metrics_orchestrator.domain.messages.run_heartbeat import RUN_HEARTBEAT
from metrics_orchestrator.domain.messages.run_started import RUN_STARTED
from metrics_orchestrator.domain.model import DatasetUpdate

__all__ = ["MAX_BODY_BYTES", "UndecodableEvent"]

PROJECTION_UPDATE = "projection_update"
KNOWN_EVENT_TYPES = frozenset({PROJECTION_UPDATE, RUN_STARTED, RUN_HEARTBEAT, RUN_COMPLETED})

# SPEC §4.1: the limits of a projection update's fields (paths: domain/fields.py).
MIN_BUCKET_LENGTH, MAX_BUCKET_LENGTH = 3, 63
DEFAULT_MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """A message body reduced to its event: type and JSON object, envelope removed.

    For a projection update decoded with its time of receipt, `update` or `invalid` holds the
    result of validating its fields against that time (SPEC §4.1).
    """

    event_type: str
    payload: dict[str, Any]
    raw_body: str
    update: ProjectionUpdate | None = None
    invalid: ValidationError | None = None

    def projection_update(self) -> ProjectionUpdate:
        """The validated update; raises ValidationError naming every offending field."""
        if self.invalid is not None:
            raise self.invalid
        if self.update is not None:
            return self.update
        return parse_projection_update(self.payload)

    @property
    def dataset_id(self) -> str | None:
        """The dataset a projection update names (envelope removed), valid or not; None for
        other events. What keeps a dataset's updates in order (`ingest --workers`)."""
        named = self.payload.get("dataset_id") if self.event_type == PROJECTION_UPDATE else None
        return named if isinstance(named, str) else None

    @property
    def event_key(self) -> str:
        """The update's natural key when its parts are valid, else the key of its body."""
        if self.update is not None:
            return self.update.event_key
        dataset_id = self.payload.get("dataset_id")
        manifest = self.payload.get("version_manifest_path")
        if identifier_problem(dataset_id) is None and path_problem(manifest) is None:
            return f"{dataset_id}:{manifest}"
        return body_digest_key(self.event_type, self.raw_body)


def body_digest_key(event_type: str, raw_body: str) -> str:
    """Key of events without a natural one: a redelivered copy maps to the same key."""
    digest = hashlib.sha256(raw_body.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{event_type}:{digest}"


def event_text(body: bytes | str) -> str:
    """The body as text, whatever its bytes (invalid UTF-8 as backslash escapes)."""
    if isinstance(body, str):
        return body
    return body.decode("utf-8", "backslashreplace")


def decode_event(
    body: bytes | str,
    *,
    received_at: datetime | None = None,
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
) -> DecodedEvent:
    """Read a message body, raw or in an SNS notification envelope, into an event.

    With `received_at`, a projection update's fields are validated too, `occurred_at`
    against that time (at most `max_clock_skew` after it).
    """
    raw = as_bytes(body)
    document = read_json_object(raw)
    if document.get("Type") == "Notification" and "Message" in document:
        message = document["Message"]
        if not isinstance(message, str):
            raise UndecodableEvent("SNS envelope: Message must be a JSON string")
        document = read_json_object(as_bytes(message), what="SNS envelope Message")
    event_type = _event_type(document)
    unstorable = unstorable_values(document)
    if unstorable:
        known = event_type if event_type in KNOWN_EVENT_TYPES else "unknown"
        raise UndecodableEvent("payload rejected: " + "; ".join(unstorable), event_type=known)
    if event_type is None:
        raise UndecodableEvent("missing event type: expected a 'type' or 'event' string field")
    if event_type not in KNOWN_EVENT_TYPES:
        raise UndecodableEvent(f"unknown event type {_shown(event_type)}", event_type="unknown")
    decoded = DecodedEvent(event_type=event_type, payload=document, raw_body=event_text(body))
    if event_type != PROJECTION_UPDATE or received_at is None:
        return decoded
    try:
        update = parse_projection_update(
            document, received_at=received_at, max_clock_skew=max_clock_skew
        )
    except ValidationError as exc:
        return DecodedEvent(event_type, document, decoded.raw_body, invalid=exc)
    return DecodedEvent(event_type, document, decoded.raw_body, update=update)


def _event_type(document: dict[str, Any]) -> str | None:
    event_type = document.get("type", document.get("event"))
    if event_type is None and "dataset_id" in document:
        # SPEC §4.1: `event` is optional on a projection update
        return PROJECTION_UPDATE
    if not isinstance(event_type, str) or not event_type:
        return None
    return event_type


def _shown(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


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

    def dataset_update(self, received_at: datetime) -> DatasetUpdate:
        """The update this announcement makes, received at that moment (not yet recorded)."""
        return DatasetUpdate(
            id=uuid4(),
            event_key=self.event_key,
            dataset_id=self.dataset_id,
            bucket=self.bucket or "",
            version_manifest_path=self.version_manifest_path,
            projections_path=self.projections_path,
            occurred_at=self.occurred_at,
            received_at=received_at,
        )


def parse_projection_update(
    payload: dict[str, Any],
    *,
    received_at: datetime | None = None,
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
) -> ProjectionUpdate:
    """Validate a projection_update event, naming every offending field at once.

    `occurred_at` may be at most `max_clock_skew` after `received_at` (when given): a producer
    whose clock runs ahead must not make its version the freshest for good (SPEC §4.1).
    """
    fields = FieldReader(payload)
    event = payload.get("event")
    if event is not None and event != PROJECTION_UPDATE:
        fields.errors.append(FieldError("event", f"must be {PROJECTION_UPDATE!r}"))
    dataset_id = fields.identifier("dataset_id", required=True)
    manifest = fields.path("version_manifest_path", required=True)
    projections = fields.path("projections_path", required=True)
    bucket = fields.string(
        "bucket", required=False, min_length=MIN_BUCKET_LENGTH, max_length=MAX_BUCKET_LENGTH
    )
    latest = received_at + max_clock_skew if received_at is not None else None
    occurred_at = fields.timestamp("occurred_at", required=False, not_after=latest)
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
