"""Projection-update intake (SPEC §5.1-§5.4)."""

from __future__ import annotations

from typing import Protocol


class IntakeRepository(Protocol):
    """Set-based queries and writes of the intake transaction."""
