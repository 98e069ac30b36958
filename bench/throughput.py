"""Figure 1: intake throughput on a real PostgreSQL (projection updates and runs queued per second).

Each cell (fan-out, workers, events per transaction) gets a fresh database holding the
synthetic catalog. Every worker process builds the production object graph (`bootstrap`),
ingests a warm-up share of the stream, waits for the others at a barrier and then ingests
its share (event `i` goes to worker `i % workers`, like consumers sharing one queue) for a
fixed time. Throughput is the total over the wall time from the first start to the last
finish. Decoding the body is included (a consumer does it too); SQS is not (figure 3).

Right after each intake measurement, the same cell (catalog, stream, workers, events per
transaction) measures its ceiling on a fresh database: the same rows written with no logic
(bench/row_ceiling.py). Every figure is stated as a fraction of that ceiling.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg_pool import ConnectionPool

from bench.catalog import CatalogShape
from bench.environment import BenchDatabases, connection, median
from bench.row_ceiling import RowsReport, write_rows_share
from bench.stream import EventStream, StreamShape
from bench.workers import Task, WorkerPool
from metrics_orchestrator.application.intake import IntakeResult, IntakeService
from metrics_orchestrator.bootstrap import Container, bootstrap
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.infrastructure.settings import load_settings

DATASETS = 16
SOURCE = "bench"


@dataclass(frozen=True)
class ShareReport:
    """What one worker did in the measured phase (monotonic clock, shared by processes)."""

    started: float
    finished: float
    events: int
    transactions: int
    processed: int
    duplicates: int
    queued: int
    warmup_events: int
    # CPU seconds spent in the measured phase by this worker and by its database backend
    client_cpu: float
    server_cpu: float


def ingest_share(
    start: Callable[[], None],
    *,
    database_url: str,
    stream: StreamShape,
    worker: int,
    workers: int,
    batch: int,
    warmup_events: int,
    duration: float,
    keep_open: bool = False,
) -> ShareReport:
    """The job of one worker process (see the module docstring).

    With `keep_open`, the object graph (its pool, and so its one connection with the
    statements it prepared) outlives the job: the next job of this process on the same
    database goes on with it, as a long-running `serve` would (`close_kept` ends it).
    """
    with _container(database_url, keep_open) as container:
        ingest = _ingester(container.intake, batch)
        bodies = EventStream(stream).bodies(worker=worker, workers=workers)
        warmed = 0
        while warmed < warmup_events:
            warmed += len(ingest(_take(bodies, batch)))
        backend = backend_pid(container.pool)
        start()
        started = time.monotonic()
        client_cpu, server_cpu = time.process_time(), cpu_seconds(backend)
        deadline = started + duration
        totals = _Totals()
        while time.monotonic() < deadline:
            totals.add(ingest(_take(bodies, batch)))
        finished = time.monotonic()
        client_cpu, server_cpu = (
            time.process_time() - client_cpu,
            cpu_seconds(backend) - server_cpu,
        )
    return ShareReport(
        started=started,
        finished=finished,
        events=totals.events,
        transactions=totals.transactions,
        processed=totals.processed,
        duplicates=totals.duplicates,
        queued=totals.queued,
        warmup_events=warmed,
        client_cpu=client_cpu,
        server_cpu=server_cpu,
    )


# per database: the object graph a `keep_open` job left running in this worker process
_KEPT: dict[str, tuple[ExitStack, Container]] = {}


@contextmanager
def _container(database_url: str, keep_open: bool) -> Iterator[Container]:
    if not keep_open:
        with bootstrap(load_settings(env={}), database_url=database_url) as container:
            yield container
        return
    if database_url not in _KEPT:
        stack = ExitStack()
        container = stack.enter_context(bootstrap(load_settings(env={}), database_url=database_url))
        _KEPT[database_url] = (stack, container)
    yield _KEPT[database_url][1]


def close_kept(start: Callable[[], None]) -> None:
    """A job: close what `keep_open` jobs left running in this worker process."""
    del start  # nothing to synchronise
    while _KEPT:
        _, (stack, _) = _KEPT.popitem()
        stack.close()


def backend_pid(pool: ConnectionPool[Any]) -> int:
    """The server process of the pool's one connection (intake here is strictly sequential)."""
    with pool.connection() as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a local process, from /proc (0 when the server is not local)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Ingester = Callable[[list[str]], list[IntakeResult]]


def _ingester(intake: IntakeService, batch: int) -> Ingester:
    def one_by_one(bodies: list[str]) -> list[IntakeResult]:
        return [
            intake.ingest(decode_event(body), source=SOURCE, received_at=datetime.now(UTC))
            for body in bodies
        ]

    def batched(bodies: list[str]) -> list[IntakeResult]:
        events = [decode_event(body) for body in bodies]
        return intake.ingest_many(events, source=SOURCE, received_at=datetime.now(UTC))

    return one_by_one if batch == 1 else batched


def _take(bodies: Iterator[str], count: int) -> list[str]:
    return [next(bodies) for _ in range(count)]


@dataclass
class _Totals:
    events: int = 0
    transactions: int = 0
    processed: int = 0
    duplicates: int = 0
    queued: int = 0

    def add(self, results: Sequence[IntakeResult]) -> None:
        self.events += len(results)
        self.transactions += 1
        for result in results:
            if result.status.value == "processed":
                self.processed += 1
            elif result.status.value == "duplicate":
                self.duplicates += 1
            self.queued += len(result.queued_runs)


# -- the grid --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    fan_out: int
    workers: int
    batch: int

    def label(self) -> str:
        return f"fan-out {self.fan_out:>3}, {self.workers} worker(s), {self.batch:>2}/tx"


@dataclass
class CellResult:
    cell: Cell
    updates_per_second: list[float] = field(default_factory=list)
    runs_per_second: list[float] = field(default_factory=list)
    transactions_per_second: list[float] = field(default_factory=list)
    # CPU milliseconds per update: (client, server), one pair per repeat
    cpu_ms: list[tuple[float, float]] = field(default_factory=list)
    # the same rows with no logic, same cell, measured right after each repeat
    ceiling_per_second: list[float] = field(default_factory=list)

    @property
    def ceiling(self) -> float:
        return median(self.ceiling_per_second)

    @property
    def of_ceiling(self) -> float:
        """Median over the repeats of intake / ceiling, each pair measured back to back."""
        return median(
            [u / c for u, c in zip(self.updates_per_second, self.ceiling_per_second, strict=True)]
        )

    @property
    def client_cpu_ms(self) -> float:
        return median([c for c, _ in self.cpu_ms])

    @property
    def server_cpu_ms(self) -> float:
        return median([s for _, s in self.cpu_ms])

    @property
    def updates(self) -> float:
        return median(self.updates_per_second)

    @property
    def runs(self) -> float:
        return median(self.runs_per_second)

    @property
    def transactions(self) -> float:
        return median(self.transactions_per_second)

    def spread(self) -> str:
        low, high = min(self.updates_per_second), max(self.updates_per_second)
        return f"{low:,.0f}-{high:,.0f}"


@dataclass(frozen=True)
class ThroughputConfig:
    fan_outs: tuple[int, ...] = (1, 10, 100)
    workers: tuple[int, ...] = (1, 2, 4)
    batches: tuple[int, ...] = (1, 10)
    repeats: int = 3
    duration: float = 2.0
    warmup_events: int = 20


@dataclass
class ThroughputResult:
    config: ThroughputConfig
    cells: list[CellResult]

    def get(self, fan_out: int, workers: int, batch: int) -> CellResult | None:
        for result in self.cells:
            if result.cell == Cell(fan_out, workers, batch):
                return result
        return None


def run_throughput(
    pool: WorkerPool,
    databases: BenchDatabases,
    config: ThroughputConfig,
    progress: Callable[[str], None] = print,
) -> ThroughputResult:
    cells = [
        Cell(fan_out, workers, batch)
        for fan_out in config.fan_outs
        for batch in config.batches
        for workers in config.workers
        if workers <= pool.size
    ]
    results = []
    for cell in cells:
        result = CellResult(cell)
        for repeat in range(config.repeats):
            _measure(pool, databases, config, cell, repeat, result)
        progress(
            f"  {cell.label()}: {result.updates:8,.0f} updates/s "
            f"(runs {result.runs:8,.0f}/s; repeats {result.spread()}; CPU ms/update "
            f"client {result.client_cpu_ms:.2f} server {result.server_cpu_ms:.2f}); "
            f"same rows, no logic: {result.ceiling:8,.0f}/s ({result.of_ceiling:.0%})"
        )
        results.append(result)
    return ThroughputResult(config, results)


def _measure(
    pool: WorkerPool,
    databases: BenchDatabases,
    config: ThroughputConfig,
    cell: Cell,
    repeat: int,
    into: CellResult,
) -> None:
    url = databases.with_catalog(CatalogShape(datasets=DATASETS, fan_out=cell.fan_out))
    try:
        stream = StreamShape(datasets=DATASETS, seed=repeat, tag=f"r{repeat}-")
        tasks = [
            Task(
                ingest_share,
                {
                    "database_url": url,
                    "stream": stream,
                    "worker": worker,
                    "workers": cell.workers,
                    "batch": cell.batch,
                    "warmup_events": config.warmup_events,
                    "duration": config.duration,
                },
            )
            for worker in range(cell.workers)
        ]
        reports: list[ShareReport] = pool.run(tasks)
        _check_recorded(url, reports)
    finally:
        databases.drop(url)
    wall = max(r.finished for r in reports) - min(r.started for r in reports)
    into.updates_per_second.append(sum(r.events for r in reports) / wall)
    into.runs_per_second.append(sum(r.queued for r in reports) / wall)
    into.transactions_per_second.append(sum(r.transactions for r in reports) / wall)
    events = sum(r.events for r in reports)
    into.cpu_ms.append(
        (
            sum(r.client_cpu for r in reports) / events * 1000,
            sum(r.server_cpu for r in reports) / events * 1000,
        )
    )
    runs_per_update = sum(r.queued for r in reports) / events
    into.ceiling_per_second.append(
        _measure_ceiling(pool, databases, config, cell, stream, runs_per_update)
    )


def _measure_ceiling(
    pool: WorkerPool,
    databases: BenchDatabases,
    config: ThroughputConfig,
    cell: Cell,
    stream: StreamShape,
    runs_per_update: float,
) -> float:
    url = databases.with_catalog(CatalogShape(datasets=DATASETS, fan_out=cell.fan_out))
    try:
        tasks = [
            Task(
                write_rows_share,
                {
                    "database_url": url,
                    "stream": stream,
                    "worker": worker,
                    "workers": cell.workers,
                    "batch": cell.batch,
                    "runs_per_update": runs_per_update,
                    "warmup_events": config.warmup_events,
                    "duration": config.duration,
                },
            )
            for worker in range(cell.workers)
        ]
        reports: list[RowsReport] = pool.run(tasks)
    finally:
        databases.drop(url)
    wall = max(r.finished for r in reports) - min(r.started for r in reports)
    return sum(r.events for r in reports) / wall


def _check_recorded(url: str, reports: Sequence[ShareReport]) -> None:
    """Every event ingested is in the database, once: a benchmark of a broken intake is void."""
    with connection(url) as conn:
        row: Any = conn.execute(
            "SELECT (SELECT count(*) FROM dataset_updates), (SELECT count(*) FROM event_log)"
        ).fetchone()
    expected = sum(r.events + r.warmup_events for r in reports)
    if row[0] != expected or row[1] != expected:
        raise RuntimeError(
            f"intake lost or duplicated events: {expected} ingested, {row[0]} updates and "
            f"{row[1]} event_log rows recorded"
        )
