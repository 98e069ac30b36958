"""Long-lived worker processes (multiprocessing spawn) that start measured work together.

Concurrency is measured with processes, not threads: intake is CPU-bound Python and threads
would only take turns on the GIL. The processes are spawned once per suite run and reused,
so interpreter start-up never lands inside a measurement. A job is a picklable function
`job(start, **kwargs)`; it prepares (connects, warms up), calls `start()` — a barrier shared
by the workers of that round — and only then starts its clock.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

START_TIMEOUT = 300.0


# `job(start, **kwargs)`: prepares, calls `start()` (the barrier), measures, returns a result
Job = Callable[..., Any]


@dataclass(frozen=True)
class Task:
    job: Job
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class _Failure:
    text: str


class WorkerError(RuntimeError):
    pass


def _quiet_logging() -> None:
    """INFO-level JSON logs, as `serve` would write them, rendered into a null sink.

    The rendering cost is part of what intake costs in production; the terminal is not.
    """
    from metrics_orchestrator.infrastructure.logging import configure_logging
    from metrics_orchestrator.infrastructure.settings import LogFormat

    configure_logging("INFO", LogFormat.JSON)
    # Log lines go to the current sys.stderr; failures travel back through the pipe instead.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def _serve(conn: Connection, barriers: dict[int, Barrier]) -> None:
    _quiet_logging()
    while True:
        message = conn.recv()
        if message is None:
            return
        task, parties = message
        barrier = barriers[parties]

        def start(barrier: Barrier = barrier) -> None:
            barrier.wait(START_TIMEOUT)

        try:
            conn.send(task.job(start, **task.kwargs))
        except BaseException:
            barrier.abort()  # the other workers of this round must not wait forever
            conn.send(_Failure(traceback.format_exc()))


class WorkerPool:
    """`size` spawned processes; `run(tasks)` runs one task per worker, all started together."""

    def __init__(self, size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.size = size
        self._barriers = {n: ctx.Barrier(n) for n in range(1, size + 1)}
        self._conns: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for index in range(size):
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=_serve, args=(child, self._barriers), name=f"bench-worker-{index}"
            )
            process.start()
            child.close()
            self._conns.append(parent)
            self._processes.append(process)

    def run(self, tasks: list[Task]) -> list[Any]:
        if not 1 <= len(tasks) <= self.size:
            raise ValueError(f"between 1 and {self.size} tasks per round")
        parties = len(tasks)
        for conn, task in zip(self._conns, tasks, strict=False):
            conn.send((task, parties))
        results = [conn.recv() for conn in self._conns[:parties]]
        failures = [r.text for r in results if isinstance(r, _Failure)]
        if failures:
            self._barriers[parties].reset()
            raise WorkerError("a bench worker failed:\n" + "\n".join(failures))
        return results

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(None)
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def in_process(task: Task) -> Any:
    """Run a task in this process (no barrier needed for one party)."""
    return task.job(lambda: None, **task.kwargs)
