"""What the worker's use case needs from the outside world; adapters implement these."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from metrics_orchestrator.worker.request import S3Location


class ObjectNotFound(Exception):
    """The object does not exist (as opposed to: the store could not be read)."""


class ObjectStore(Protocol):
    def get(self, location: S3Location) -> bytes:
        """The object's bytes; ObjectNotFound if absent, any other exception if unreadable."""
        ...

    def put(self, location: S3Location, body: bytes, content_type: str) -> None: ...


class FeedbackPublisher(Protocol):
    def publish(self, event: Mapping[str, Any]) -> None:
        """Send one SPEC §4.2 event; raises when it could not be sent."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...
