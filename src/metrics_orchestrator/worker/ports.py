"""What the worker's use case needs from the outside world; adapters implement these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from metrics_orchestrator.domain.clock import Clock as Clock
from metrics_orchestrator.domain.s3_locations import S3Location


class ObjectNotFound(Exception):
    """The object does not exist (as opposed to: the store could not be read)."""


class WriteConflict(Exception):
    """A conditional write found the object not as required (S3 412 / 409): someone else wrote."""


class ObjectStore(Protocol):
    def get(self, location: S3Location) -> bytes:
        """The object's bytes; ObjectNotFound if absent, any other exception if unreadable."""
        ...

    def get_tagged(self, location: S3Location) -> tuple[bytes, str]:
        """The object's bytes and its ETag (for a later conditional write); as `get`."""
        ...

    def put(
        self,
        location: S3Location,
        body: bytes,
        content_type: str,
        *,
        if_absent: bool = False,
        if_tag: str | None = None,
    ) -> str:
        """Write the object and return its new ETag. `if_absent`: only if no object is there;
        `if_tag`: only if the object there still has this ETag. WriteConflict otherwise."""
        ...


class FeedbackPublisher(Protocol):
    def publish(self, event: Mapping[str, Any]) -> None:
        """Send one SPEC §4.2 event; raises when it could not be sent."""
        ...
