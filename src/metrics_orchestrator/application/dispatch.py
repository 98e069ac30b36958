"""The dispatcher: publishes queued runs after commit (SPEC §5.4)."""

from __future__ import annotations

from typing import Protocol


class DispatchRepository(Protocol):
    """Claiming and marking queued runs."""
