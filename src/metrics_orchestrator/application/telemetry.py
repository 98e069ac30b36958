"""The telemetry port (SPEC §6.4): what the use cases report about their work.

Use cases call it after their transaction committed, so a rolled-back or retried transaction
is never counted. Infrastructure turns the calls into Prometheus metrics; `NullTelemetry` is
the default for use cases built without one (tests, CLI one-shots).
"""

from __future__ import annotations

from typing import Protocol

from metrics_orchestrator.application.ports.changes import NEW_RUN

__all__ = ["NEW_RUN", "Exposition", "NullTelemetry", "Telemetry"]


class Telemetry(Protocol):
    def event_processed(self, event_type: str, outcome: str, seconds: float) -> None:
        """One received message handled: its type, outcome (processed, duplicate, rejected)
        and how long handling it took."""
        ...

    def run_transition(self, from_status: str, to_status: str, count: int = 1) -> None:
        """`count` runs moved from one status to another (`NEW_RUN` when just created)."""
        ...

    def dispatch_published(self, count: int, seconds: float) -> None:
        """One publish call put `count` run requests on the topic in `seconds`."""
        ...

    def dispatch_failed(self, count: int) -> None:
        """`count` run requests could not be published (retried later or given up)."""
        ...


class NullTelemetry:
    """Records nothing."""

    def event_processed(self, event_type: str, outcome: str, seconds: float) -> None:
        return None

    def run_transition(self, from_status: str, to_status: str, count: int = 1) -> None:
        return None

    def dispatch_published(self, count: int, seconds: float) -> None:
        return None

    def dispatch_failed(self, count: int) -> None:
        return None


class Exposition(Protocol):
    def render(self) -> tuple[bytes, str]:
        """The metrics in a scraper's text format, and its content type."""
        ...
