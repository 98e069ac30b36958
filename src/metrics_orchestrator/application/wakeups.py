"""Waking a background loop (dispatcher, notifier) on NOTIFY, polling when the LISTEN
connection is lost, and backing off after errors."""

from __future__ import annotations

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
