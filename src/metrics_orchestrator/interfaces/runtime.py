"""The long-running process of `serve`: background loops plus the HTTP server, one stop signal.

Every part is a loop `target(stop)` on its own thread. SIGTERM, SIGINT or SIGHUP (a closed
terminal) sets `stop`; each loop
finishes what it has in hand (a consumer its in-flight batch, the dispatcher its claim) and
returns; then the process exits 0.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import structlog

from metrics_orchestrator.application import log_events

logger = structlog.get_logger(__name__)


# SIGHUP is what closing the terminal of `make run` sends; left at its default it would kill the
# process without any cleanup, leaking the embedded PostgreSQL.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class Loop:
    name: str
    target: Callable[[threading.Event], None]


class ServiceRuntime:
    def __init__(self, loops: list[Loop]) -> None:
        self.loops = loops
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failed: list[str] = []

    def start(self) -> None:
        for loop in self.loops:
            thread = threading.Thread(
                target=self._guarded, args=(loop,), name=loop.name, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        logger.info(
            log_events.ON_STARTUP,
            message="service started",
            parts=[loop.name for loop in self.loops],
        )

    def _guarded(self, loop: Loop) -> None:
        try:
            loop.target(self.stop_event)
        except Exception:
            logger.exception(
                log_events.ON_SHUTDOWN, message="a service loop crashed; stopping", part=loop.name
            )
            self._failed.append(loop.name)
            self.stop_event.set()

    def stop(self, timeout: float = 60.0) -> bool:
        """Ask every loop to finish and wait for them; False if one failed or overran."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
        clean = not self._failed and not any(t.is_alive() for t in self._threads)
        logger.info(log_events.ON_SHUTDOWN, message="service stopped", clean=clean)
        return clean

    def run_until_signalled(self) -> bool:
        """Start, block until SIGTERM/SIGINT/SIGHUP (or a crashed loop), then stop cleanly."""

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            logger.info(
                log_events.ON_SHUTDOWN, message="stop requested", signal=signal.Signals(signum).name
            )
            self.stop_event.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in STOP_SIGNALS}
        try:
            self.start()
            while not self.stop_event.wait(0.5):
                pass
            return self.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
