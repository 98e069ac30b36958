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
from typing import Any

import structlog
import uvicorn

from metrics_orchestrator.bootstrap import (
    AwsWiring,
    Container,
    Settings,
    SettingsError,
    build_consumers,
    build_dispatcher,
)
from metrics_orchestrator.domain import log_events

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


# -- assembling `serve` -------------------------------------------------------------


@dataclass(frozen=True)
class ServeParts:
    consumers: bool = True
    dispatcher: bool = True
    sweeper: bool = True
    notifier: bool = True
    http: bool = True


def build_runtime(
    container: Container,
    aws: AwsWiring,
    parts: ServeParts,
    http_app: Callable[[Container], Any] | None = None,
) -> ServiceRuntime:
    """Assemble the loops of `serve`: consumers, dispatcher, sweeper, notifier and the HTTP
    server."""
    settings = container.settings
    loops: list[Loop] = []
    if parts.consumers:
        if aws.projection_update_queue_url is None and not aws.run_feedback_queue_urls:
            raise SettingsError(
                "SQS_PROJECTION_UPDATE_QUEUE_URL: set it (or SQS_RUN_FEEDBACK_QUEUE_URLS) "
                "to run consumers"
            )
        loops += [
            Loop(f"consumer:{c.name}", c.run_forever) for c in build_consumers(container, aws)
        ]
    if parts.dispatcher:
        loops.append(Loop("dispatcher", build_dispatcher(container, aws).run))
    if parts.sweeper:
        interval = settings.sweep_interval
        loops.append(Loop("sweeper", lambda stop: container.sweeper.run(stop, interval)))
    if parts.notifier:
        loops.append(Loop("notifier", container.notifier.run))
    if parts.http and http_app is not None:
        loops.append(Loop("http", _http_loop(http_app(container), settings)))
    return ServiceRuntime(loops)


def _http_loop(app: Any, settings: Settings) -> Callable[[threading.Event], None]:
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.http_host, port=settings.http_port, log_config=None, lifespan="off"
        )
    )

    def serve_http(stop: threading.Event) -> None:
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        while not stop.wait(0.2):
            if not thread.is_alive():
                raise RuntimeError(
                    f"HTTP server stopped; is {settings.http_host}:{settings.http_port} in use?"
                )
        server.should_exit = True
        thread.join(10)

    return serve_http
