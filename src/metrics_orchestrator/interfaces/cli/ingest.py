"""`metrics-orchestrator ingest FILE`: feed JSON-lines events through the queue's intake path.

The file is read as bytes and split into lines; each line goes to the router as it is, so a
line that is not UTF-8 (or not JSON, or not an event) is rejected and recorded like any bad
message while the other lines are processed. A UTF-8 byte order mark at the very start of the
file is tolerated (editors on Windows write one); anywhere else it is part of the line and the
line is rejected. Exit codes: 0 every line processed or a duplicate, 2 any line rejected (the
summary lists them), 1 an infrastructure failure (the summary says how far it got).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

import typer

from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.router import EventRouter

UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class IngestSummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    rejections: list[tuple[int, str]] = field(default_factory=list)
    queued_runs: list[UUID] = field(default_factory=list)
    pending_runs: set[UUID] = field(default_factory=set)
    # the line being handled when the infrastructure failed, and why
    failure: tuple[int, str] | None = None

    def lines(self) -> Iterator[str]:
        yield (
            f"processed: {self.outcomes[EventStatus.PROCESSED]}, "
            f"duplicates: {self.outcomes[EventStatus.DUPLICATE]}, "
            f"rejected: {self.outcomes[EventStatus.REJECTED]}"
        )
        yield f"runs queued: {len(self.queued_runs)}, runs pending: {len(self.pending_runs)}"
        for line_number, reason in self.rejections:
            yield f"  line {line_number}: rejected: {reason}"
        if self.failure is not None:
            line_number, reason = self.failure
            yield f"  line {line_number}: not handled, stopped: {reason}"

    @property
    def exit_code(self) -> int:
        if self.failure is not None:
            return 1
        return 2 if self.outcomes[EventStatus.REJECTED] else 0


def ingest_lines(
    router: EventRouter, lines: Iterable[bytes | str], *, source: str
) -> IngestSummary:
    """Route every non-blank line; an infrastructure failure stops at that line."""
    summary = IngestSummary()
    for number, line in enumerate(lines, start=1):
        body = _without_bom(line) if number == 1 else line
        if not body.strip():
            continue
        try:
            routed = router.handle(body.strip(), source=source)
        except Exception as exc:  # the database or AWS: nothing after this line is handled
            summary.failure = (number, f"{type(exc).__name__}: {exc}")
            break
        summary.outcomes[routed.status] += 1
        if routed.status is EventStatus.REJECTED:
            summary.rejections.append((number, routed.error or "rejected"))
        if routed.intake is not None:
            summary.queued_runs.extend(routed.intake.queued_runs)
            summary.pending_runs.update(routed.intake.pending_runs)
    # a run that waited and was then queued in the same file counts once, as queued
    summary.pending_runs.difference_update(summary.queued_runs)
    return summary


def _without_bom(line: bytes | str) -> bytes | str:
    if isinstance(line, bytes):
        return line.removeprefix(UTF8_BOM)
    return line.removeprefix("\ufeff")


def ingest_command(
    file: str = typer.Argument(
        ..., help="JSON-lines file of events, raw or SNS-enveloped; - for stdin"
    ),
) -> None:
    """Feed events through the same intake as the queue consumer, then print a summary.

    Exit 0 when every line was processed or a duplicate, 2 when any was rejected, 1 when the
    database or AWS failed.
    """
    from metrics_orchestrator.bootstrap import bootstrap
    from metrics_orchestrator.interfaces.cli import fail, settings_or_exit

    settings = settings_or_exit()
    stream: BinaryIO
    if file == "-":
        stream = sys.stdin.buffer
    else:
        path = Path(file)
        if not path.is_file():
            raise fail(f"{file}: no such file")
        stream = path.open("rb")
    with stream, bootstrap(settings) as container:
        summary = ingest_lines(container.router, stream, source=f"cli:{file}")
    for line in summary.lines():
        typer.echo(line)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)
