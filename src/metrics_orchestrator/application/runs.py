"""Run lifecycle use cases (SPEC §5.5-§5.7). This is the port they need."""

from __future__ import annotations

from typing import Protocol


class RunRepository(Protocol):
    """Persistence of metric runs beyond intake."""
