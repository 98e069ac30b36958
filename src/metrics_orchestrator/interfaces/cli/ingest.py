"""`metrics-orchestrator ingest FILE`: feed JSON-lines events through the queue's intake path."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from uuid import UUID

import typer

from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.router import EventRouter


@dataclass
class IngestSummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    rejections: list[tuple[int, str]] = field(default_factory=list)
    queued_runs: list[UUID] = field(default_factory=list)
    pending_runs: set[UUID] = field(default_factory=set)

    def lines(self) -> Iterator[str]:
        yield (
            f"processed: {self.outcomes[EventStatus.PROCESSED]}, "
            f"duplicates: {self.outcomes[EventStatus.DUPLICATE]}, "
            f"rejected: {self.outcomes[EventStatus.REJECTED]}"
        )
        yield f"runs queued: {len(self.queued_runs)}, runs pending: {len(self.pending_runs)}"
        for line_number, reason in self.rejections:
            yield f"  line {line_number}: rejected: {reason}"


def ingest_lines(router: EventRouter, lines: Iterable[str], *, source: str) -> IngestSummary:
    summary = IngestSummary()
    for number, line in enumerate(lines, start=1):
        body = line.strip()
        if not body:
            continue
        routed = router.handle(body, source=source)
        summary.outcomes[routed.status] += 1
        if routed.status is EventStatus.REJECTED:
            summary.rejections.append((number, routed.error or "rejected"))
        if routed.intake is not None:
            summary.queued_runs.extend(routed.intake.queued_runs)
            summary.pending_runs.update(routed.intake.pending_runs)
    # a run that waited and was then queued in the same file counts once, as queued
    summary.pending_runs.difference_update(summary.queued_runs)
    return summary


def ingest_command(
    file: str = typer.Argument(
        ..., help="JSON-lines file of events, raw or SNS-enveloped; - for stdin"
    ),
) -> None:
    """Feed events through the same intake as the queue consumer, then print a summary."""
    from metrics_orchestrator.bootstrap import bootstrap
    from metrics_orchestrator.interfaces.cli import fail, settings_or_exit

    settings = settings_or_exit()
    stream: TextIO
    if file == "-":
        stream = sys.stdin
    else:
        path = Path(file)
        if not path.is_file():
            raise fail(f"{file}: no such file")
        stream = path.open(encoding="utf-8")
    with stream, bootstrap(settings) as container:
        summary = ingest_lines(container.router, stream, source=f"cli:{file}")
    for line in summary.lines():
        typer.echo(line)
