"""The embedded PostgreSQL is started again when pgserver gives up on a slow first start."""

from __future__ import annotations

import subprocess
import time

import pytest

from metrics_orchestrator.infrastructure.embedded_postgres import START_TRIES, _started


def test_a_start_that_timed_out_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    failures = [subprocess.TimeoutExpired("pg_ctl", 10), FileNotFoundError("pg/log")]

    def start() -> str:
        if failures:
            raise failures.pop(0)
        return "server"

    assert _started(start) == "server"
    assert failures == []


def test_a_start_that_keeps_failing_raises_the_last_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    calls: list[int] = []

    def start() -> str:
        calls.append(1)
        raise subprocess.TimeoutExpired("pg_ctl", 10)

    with pytest.raises(subprocess.TimeoutExpired):
        _started(start)
    assert len(calls) == START_TRIES
