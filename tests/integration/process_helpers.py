"""Targets for processes the process tests spawn (importable by a spawned child)."""

from __future__ import annotations

import time
from multiprocessing.connection import Connection

from metrics_orchestrator.interfaces.child_processes import exit_when_parent_closes


def sleep_guarded_by_the_lifeline_alone(lifeline: Connection) -> None:
    """A child with only the portable guard (no parent-death signal), then idle for long."""
    exit_when_parent_closes(lifeline)
    time.sleep(120)
