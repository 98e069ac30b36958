"""Small test helpers shared by the suites (no database or AWS mocks live here)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class MutableClock:
    """A clock tests move by hand; thread-safe so concurrent tests can share it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 11, 11, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment
