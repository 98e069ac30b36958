"""`metrics-orchestrator ingest FILE`: feed JSON-lines events through the queue's intake path.

The file is read as bytes and split into lines; each line goes to the router as it is, so a
line that is not UTF-8 (or not JSON, or not an event) is rejected and recorded like any bad
message while the other lines are processed. A UTF-8 byte order mark at the very start of the
file is tolerated (editors on Windows write one); anywhere else it is part of the line and the
line is rejected. Exit codes: 0 every line processed or a duplicate, 2 any line rejected (the
summary lists them), 1 an infrastructure failure (the summary says how far it got).

Lines go to the router in slices of `SLICE` (10) non-blank lines: the projection updates of a
slice are processed in one transaction, in file order, with exactly the outcome of one line
at a time (SPEC §7). With `--workers N`, N processes share the file: each line goes to the
worker `crc32(dataset_id) % N`, the `dataset_id` of the update as intake decodes it (the
same bounded decoder, SNS envelope unwrapped), so the updates of one dataset are processed in
file order by one worker whether they come raw or enveloped; updates of different datasets
are processed concurrently, in no guaranteed order relative to each other — the same
guarantee as several replicas consuming one queue (docs/orchestration.md). A line that is no
projection update (undecodable, feedback) goes to worker 0, where it is rejected or applied
like any other: one bad line is one rejection, whatever the number of workers. The workers
die with the `ingest` process (interfaces/child_processes.py).
"""

from __future__ import annotations

import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

import typer

from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.bootstrap import bootstrap
from metrics_orchestrator.domain.events import UndecodableEvent, decode_event
from metrics_orchestrator.interfaces.child_processes import ChildLost, run_children
from metrics_orchestrator.interfaces.cli.common import fail, say_database, settings_or_exit

UTF8_BOM = b"\xef\xbb\xbf"
# lines per intake transaction: an SQS receive's worth
SLICE = 10
MAX_WORKERS = 16


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
    """Route every non-blank line, a slice at a time; an infrastructure failure stops there."""
    return ingest_numbered(router, numbered_lines(lines), source=source)


def numbered_lines(lines: Iterable[bytes | str]) -> Iterator[tuple[int, bytes | str]]:
    """The non-blank lines, stripped, with their 1-based line numbers."""
    for number, line in enumerate(lines, start=1):
        body = _without_bom(line) if number == 1 else line
        if body.strip():
            yield number, body.strip()


def ingest_numbered(
    router: EventRouter, lines: Iterable[tuple[int, bytes | str]], *, source: str
) -> IngestSummary:
    summary = IngestSummary()
    for piece in _slices(lines):
        try:
            routed = router.handle_batch([body for _, body in piece], source=source)
        except Exception as exc:  # the database or AWS: nothing from this slice on is handled
            summary.failure = (piece[0][0], f"{type(exc).__name__}: {exc}")
            break
        for (number, _), event in zip(piece, routed, strict=True):
            summary.outcomes[event.status] += 1
            if event.status is EventStatus.REJECTED:
                summary.rejections.append((number, event.error or "rejected"))
            if event.intake is not None:
                summary.queued_runs.extend(event.intake.queued_runs)
                summary.pending_runs.update(event.intake.pending_runs)
    # a run that waited and was then queued in the same file counts once, as queued
    summary.pending_runs.difference_update(summary.queued_runs)
    return summary


def _slices(
    lines: Iterable[tuple[int, bytes | str]],
) -> Iterator[list[tuple[int, bytes | str]]]:
    piece: list[tuple[int, bytes | str]] = []
    for line in lines:
        piece.append(line)
        if len(piece) == SLICE:
            yield piece
            piece = []
    if piece:
        yield piece


def worker_of(body: bytes | str, workers: int) -> int:
    """The worker a line goes to: one per dataset, so a dataset's updates keep file order.

    Read as intake reads it (never parsed unbounded: the line is untrusted), so an update
    lands with its dataset's other updates whether or not it is SNS-enveloped.
    """
    try:
        dataset = decode_event(body).dataset_id
    except UndecodableEvent:
        return 0  # rejected by the worker that takes it, like any other bad line
    if dataset is None:  # not an update: the order of such lines is kept on worker 0
        return 0
    return zlib.crc32(dataset.encode("utf-8")) % workers


def merge(summaries: Sequence[IngestSummary]) -> IngestSummary:
    merged = IngestSummary()
    for part in summaries:
        merged.outcomes.update(part.outcomes)
        merged.rejections += part.rejections
        merged.queued_runs += part.queued_runs
        merged.pending_runs |= part.pending_runs
        if part.failure is not None and (
            merged.failure is None or part.failure[0] < merged.failure[0]
        ):
            merged.failure = part.failure
    merged.rejections.sort()
    merged.pending_runs.difference_update(merged.queued_runs)
    return merged


def _ingest_in_worker(
    database_url: str, lines: list[tuple[int, bytes | str]], source: str
) -> IngestSummary:
    with bootstrap(settings_or_exit(), database_url=database_url) as container:
        return ingest_numbered(container.router, lines, source=source)


def ingest_parallel(
    database_url: str, lines: Iterable[bytes | str], *, source: str, workers: int
) -> IngestSummary:
    """`workers` processes, each a share of the lines (see the module docstring)."""
    shares: list[list[tuple[int, bytes | str]]] = [[] for _ in range(workers)]
    for number, body in numbered_lines(lines):
        shares[worker_of(body, workers)].append((number, body))
    busy = [share for share in shares if share]
    outcomes = run_children(_ingest_in_worker, [(database_url, s, source) for s in busy])
    return merge([_summary_of(s, outcome) for s, outcome in zip(busy, outcomes, strict=True)])


def _summary_of(
    share: Sequence[tuple[int, bytes | str]], outcome: IngestSummary | ChildLost
) -> IngestSummary:
    if isinstance(outcome, IngestSummary):
        return outcome
    # Which of its lines it stored is unknown: a second ingest of the file sorts that out
    # (stored lines are duplicates).
    reason = f"its worker process ended (exit code {outcome.exitcode}) before reporting"
    return IngestSummary(failure=(share[0][0], reason))


def _without_bom(line: bytes | str) -> bytes | str:
    if isinstance(line, bytes):
        return line.removeprefix(UTF8_BOM)
    return line.removeprefix("\ufeff")


def ingest_command(
    file: str = typer.Argument(
        ..., help="JSON-lines file of events, raw or SNS-enveloped; - for stdin"
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=MAX_WORKERS,
        help="processes sharing the file; each dataset's updates stay in file order",
    ),
) -> None:
    """Feed events through the same intake as the queue consumer, then print a summary.

    Exit 0 when every line was processed or a duplicate, 2 when any was rejected, 1 when the
    database or AWS failed.
    """
    settings = settings_or_exit()
    stream: BinaryIO
    if file == "-":
        stream = sys.stdin.buffer
    else:
        path = Path(file)
        if not path.is_file():
            raise fail(f"{file}: no such file")
        stream = path.open("rb")
    with stream, bootstrap(settings, announce=say_database) as container:
        if workers == 1:
            summary = ingest_lines(container.router, stream, source=f"cli:{file}")
        else:
            summary = ingest_parallel(
                container.database_url, stream, source=f"cli:{file}", workers=workers
            )
    for line in summary.lines():
        typer.echo(line)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)
