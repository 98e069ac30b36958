"""Small test helpers shared by the suites (no database or AWS mocks live here)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import Clock, UnitOfWorkFactory
from metrics_orchestrator.application.telemetry import Telemetry


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


def running_postmaster_pid(data_dir: Path) -> int | None:
    """The pid of a PostgreSQL serving `data_dir` right now, if any (from postmaster.pid)."""
    try:
        first_line = (data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0]
        pid = int(first_line.strip())
    except (FileNotFoundError, IndexError, ValueError):
        return None
    try:
        return pid if psutil.Process(pid).name().startswith("postgres") else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def feedback_service(
    uow_factory: UnitOfWorkFactory, clock: Clock, telemetry: Telemetry | None = None
) -> FeedbackService:
    """The feedback use case as the container wires it: a success's output feeds intake (§8)."""
    intake = IntakeService(uow_factory, clock, lambda code: f"s3://metrics-output/metrics/{code}/")
    return FeedbackService(uow_factory, clock, intake, telemetry=telemetry)
