"""Waking a background loop (dispatcher, notifier) on NOTIFY, polling when the LISTEN
connection is lost, and backing off after errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from metrics_orchestrator.application.ports.dispatch import RunQueuedListener
from metrics_orchestrator.domain.log_events import ON_DISPATCHER_ERROR as ON_LISTENER_ERROR

log = structlog.get_logger()

ListenerFactory = Callable[[], RunQueuedListener]


class ErrorBackoff:
    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self._first = first
        self._cap = cap
        self._current = first

    def next(self) -> float:
        delay, self._current = self._current, min(self._current * 2, self._cap)
        return delay

    def reset(self) -> None:
        self._current = self._first


class NoListener:
    """Polling only: waiting is sleeping."""

    def wait(self, timeout: float) -> bool:
        time.sleep(timeout)
        return False

    def close(self) -> None:
        return None


class ReconnectingListener:
    """A listener that survives database outages: on error it polls and reconnects later."""

    RECONNECT_DELAY = 5.0

    def __init__(self, factory: ListenerFactory, what: str) -> None:
        self._factory = factory
        self._what = what
        self._listener: RunQueuedListener | None = None
        self._reconnect_at = 0.0

    def __enter__(self) -> ReconnectingListener:
        self._connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self._disconnect()

    def wait(self, timeout: float) -> bool:
        if self._listener is None and time.monotonic() >= self._reconnect_at:
            self._connect()
        if self._listener is None:
            time.sleep(timeout)
            return False
        try:
            return self._listener.wait(timeout)
        except Exception as exc:
            self._lost(exc, "LISTEN connection lost; polling until it is back")
            return False

    def _connect(self) -> None:
        try:
            self._listener = self._factory()
        except Exception as exc:
            self._lost(exc, f"cannot LISTEN for {self._what}; polling instead")

    def _lost(self, exc: Exception, message: str) -> None:
        log.warning(ON_LISTENER_ERROR, message=message, error=str(exc))
        self._disconnect()
        self._reconnect_at = time.monotonic() + self.RECONNECT_DELAY

    def _disconnect(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        try:
            listener.close()
        except Exception as exc:
            log.debug(
                ON_LISTENER_ERROR, message="closing the LISTEN connection failed", error=str(exc)
            )


def run_until_stopped(
    stop: threading.Event,
    work_once: Callable[[], int],
    *,
    listener_factory: ListenerFactory,
    what: str,
    poll_interval: float,
    idle: threading.Event,
    on_error: Callable[[Exception], None],
) -> None:
    """A background loop (dispatcher, notifier): `work_once` (how much it claimed) again at once
    while it finds work, else after a NOTIFY or `poll_interval`; after an error, a growing pause.
    `idle` is set while it waits (tests and health checks see an idle loop)."""
    error_delay = ErrorBackoff()
    with ReconnectingListener(listener_factory, what) as listener:
        while not stop.is_set():
            try:
                claimed = work_once()
            except Exception as exc:
                on_error(exc)
                stop.wait(error_delay.next())
                continue
            error_delay.reset()
            if claimed == 0:
                _wait_for_work(stop, listener, poll_interval, idle)


def _wait_for_work(
    stop: threading.Event,
    listener: ReconnectingListener,
    poll_interval: float,
    idle: threading.Event,
) -> None:
    idle.set()
    try:
        # Short slices keep shutdown prompt even with a long polling interval.
        deadline = time.monotonic() + poll_interval
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or listener.wait(min(remaining, 0.5)):
                return
    finally:
        idle.clear()
