"""The event log: every message consumed is recorded (SPEC §5.1, §5.8)."""

from __future__ import annotations

from typing import Protocol


class EventLogRepository(Protocol):
    """Persistence of consumed events and their outcome."""
