"""The log of one run attempt, written beside its output (`{basePath}runs/{runId}-{attempt}.log`,
`domain/run_files.py`) for the run page, `GET /runs/{id}/logs` and `runs logs ID` (issue 25).

Each line the use case says about a run goes both to the worker's own log (structlog, stdout)
and into the run's log, as `2026-12-05T03:24:21.123Z INFO    message key=value …`. The run's
log is bounded (MAX_RUN_LOG_BYTES): the first lines fill up to three quarters of it, then the
newest lines are kept in the rest, with one line saying how many between were left out. A run's
story is at its start (what it read) and its end (what it wrote, or why it failed).
"""

from __future__ import annotations

import json
import threading
import traceback
from collections import deque
from typing import Any

from metrics_orchestrator.domain.clock import Clock
from metrics_orchestrator.domain.messages.shared import utc_text
from metrics_orchestrator.domain.run_files import MAX_RUN_LOG_BYTES

# One line is cut to this many bytes (an error can quote a whole manifest).
MAX_LINE_BYTES = 2_000
# Room for the line that says what was left out.
_GAP_LINE_BYTES = 100


class RunLog:
    """The run's lines, safe to add to from the use case while a heartbeat thread renders."""

    def __init__(
        self,
        logger: Any,
        clock: Clock,
        *,
        run_id: str,
        attempt: int,
        limit: int = MAX_RUN_LOG_BYTES,
    ) -> None:
        self._logger = logger
        self._clock = clock
        self._context = {"run_id": run_id, "attempt": attempt}
        self._head_budget = (limit - _GAP_LINE_BYTES) * 3 // 4
        self._tail_budget = limit - _GAP_LINE_BYTES - self._head_budget
        self._head: list[bytes] = []
        self._head_bytes = 0
        self._tail: deque[bytes] = deque()
        self._tail_bytes = 0
        self._left_out = 0
        self._lock = threading.Lock()

    def info(self, event: str, message: str, **fields: Any) -> None:
        """`message` to the worker's log (as structlog event `event`) and to the run's."""
        self._logger.info(event, message=message, **self._context, **fields)
        self.line("INFO", message, **fields)

    def warning(self, event: str, message: str, **fields: Any) -> None:
        self._logger.warning(event, message=message, **self._context, **fields)
        self.line("WARNING", message, **fields)

    def exception(self, event: str, message: str, **fields: Any) -> None:
        """An unexpected error, with the traceback being handled, in both logs."""
        self._logger.exception(event, message=message, **self._context, **fields)
        self.line("ERROR", message, **fields)
        for text in traceback.format_exc().rstrip().splitlines():
            self.line("ERROR", text)

    def line(self, level: str, message: str, **fields: Any) -> None:
        """A line for the run's log only (detail the worker's own log does not need)."""
        shown = "".join(
            f" {key}={_shown(value)}" for key, value in fields.items() if value is not None
        )
        text = f"{utc_text(self._clock.now())} {level:<7} {message}{shown}"
        self._add(_cut(text.replace("\n", " ")))

    def render(self) -> bytes:
        """The log as the worker writes it: UTF-8 lines, within the limit."""
        with self._lock:
            lines = list(self._head)
            if self._left_out:
                plural = "" if self._left_out == 1 else "s"
                lines.append(f"... {self._left_out:,} line{plural} left out ...".encode())
            lines += self._tail
        return b"".join(line + b"\n" for line in lines)

    def _add(self, line: bytes) -> None:
        size = len(line) + 1
        with self._lock:
            if not self._tail and self._head_bytes + size <= self._head_budget:
                self._head.append(line)
                self._head_bytes += size
                return
            self._tail.append(line)
            self._tail_bytes += size
            while self._tail_bytes > self._tail_budget:
                self._tail_bytes -= len(self._tail.popleft()) + 1
                self._left_out += 1


def _shown(value: object) -> str:
    """A field's value in a line: text as it is, structures as compact JSON."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _cut(text: str) -> bytes:
    """`text` as UTF-8 of at most MAX_LINE_BYTES, a cut one ending in `...`; no NUL."""
    raw = text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace")
    if len(raw) <= MAX_LINE_BYTES:
        return raw
    return raw[: MAX_LINE_BYTES - 3].decode("utf-8", "ignore").encode() + b"..."
