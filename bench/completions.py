"""Figure 6: a completion that triggers N dependents against a projection update with fan-out N.

Issue 23 item 8 (SPEC §8): a SUCCESS of metric A records a version of `metric:A` and forms
A's dependents' runs in the completion's own transaction, so it should cost about what a
projection update with the same fan-out costs through the intake.

For each N, back to back, one worker process (the production object graph, `bootstrap`):

- **completions**: a fresh database whose catalog is one dataset, one upstream metric A over
  it and N dependents reading `{"metric_code": A}`. The worker first seeds A's runs through the
  intake (one projection update each, so every run has its request payload and lineage as in
  production) and marks them dispatched with SQL (what the dispatcher does once SNS accepted a
  request); then it delivers a SUCCESS with an `outputManifest` for each, in the order the runs
  were formed, through `FeedbackService.handle` (`container.feedback`): every completion is
  the freshest output of A and queues N runs. A few completions warm up, the rest are timed.
- **updates**: the throughput figure's path (bench/throughput.py `ingest_share`) on the
  synthetic catalog with fan-out N, one worker, one update per transaction (a completion is
  one event per transaction too), for a fixed time.

Both report wall time and CPU (the worker's own and its PostgreSQL backend's, from /proc) per
operation; the ratio completion / update is the figure. The synthetic catalog's metrics read
1-3 datasets, so an update queues a little fewer than N runs (an `all_new` metric waits for
its other inputs); the runs queued per operation are reported next to the times.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from bench.catalog import CatalogShape, dataset_id, series_code
from bench.environment import BenchDatabases, connection, median
from bench.stream import StreamShape, projection_update
from bench.throughput import ShareReport, backend_pid, cpu_seconds, ingest_share
from bench.workers import Task, WorkerPool
from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.bootstrap import bootstrap
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.messages.run_completed import build_run_succeeded
from metrics_orchestrator.infrastructure.settings import load_settings

SOURCE = "bench"
UPSTREAM = "bench.upstream"
# the throughput figure's catalog size, so its update path is the one measured there
UPDATE_DATASETS = 16


# -- the catalog and the messages (pure) -----------------------------------------------------


def dependent_code(ordinal: int) -> str:
    return f"bench.dependent_{ordinal:03d}"


def completions_catalog(fan_out: int) -> dict[str, Any]:
    """One dataset, the upstream metric A over one of its series, `fan_out` metrics over A."""
    if fan_out < 1:
        raise ValueError("fan_out must be >= 1")
    upstream = _window_metric(UPSTREAM, {"series_code": series_code(0, 0)}, "any_new")
    dependents = [
        # half `all_new`, half `any_new` as in the synthetic catalog; with one input both
        # run on every new version of A
        _window_metric(
            dependent_code(n), {"metric_code": UPSTREAM}, "any_new" if n % 2 == 0 else "all_new"
        )
        for n in range(fan_out)
    ]
    return {
        "series": [{"code": series_code(0, 0), "name": "bench upstream series"}],
        "datasets": [
            {"id": dataset_id(0), "name": "bench upstream", "series": [series_code(0, 0)]}
        ],
        "metrics": [upstream, *dependents],
    }


def _window_metric(code: str, series: dict[str, str], policy: str) -> dict[str, Any]:
    return {
        "id": f"metric-{code}",
        "code": code,
        "expression_type": "window_op",
        "expression": {"op": "sma", "series": series, "window": 3},
        "frequency": "daily",
        "required_days": 7,
        "trigger_policy": policy,
    }


def completion_body(run_id: UUID, base_path: str, sequence: int) -> str:
    """A SUCCESS of the upstream metric's run with an output manifest under its base path,
    as the reference worker writes it (`<basePath><versionTs>/manifest.json`)."""
    version_ts = f"bench-{sequence:06d}"
    base = base_path if base_path.endswith("/") else f"{base_path}/"
    event = build_run_succeeded(
        str(run_id),
        UPSTREAM,
        version_ts=version_ts,
        output_manifest=f"{base}{version_ts}/manifest.json",
        row_count=1,
    )
    return json.dumps(event)


# -- one worker's job: seed, warm up, complete ----------------------------------------------


@dataclass(frozen=True)
class OperationsReport:
    """What one worker measured: `operations` timed, `queued` runs they queued in all."""

    operations: int
    queued: int
    seconds: float
    client_cpu: float
    server_cpu: float


def complete_share(
    start: Callable[[], None],
    *,
    database_url: str,
    fan_out: int,
    completions: int,
    warmup: int,
) -> OperationsReport:
    """Seed `warmup + completions` dispatched runs of A, complete the warm-up share, then
    time the rest (see the module docstring)."""
    with bootstrap(load_settings(env={}), database_url=database_url) as container:
        container.catalog.load_catalog(completions_catalog(fan_out))
        runs = _seed_dispatched_runs(container.intake, database_url, warmup + completions)
        deliver = _deliverer(container.feedback)
        for sequence, (run_id, base_path) in enumerate(runs[:warmup]):
            deliver(completion_body(run_id, base_path, sequence))
        backend = backend_pid(container.pool)
        start()
        started = time.monotonic()
        client_cpu, server_cpu = time.process_time(), cpu_seconds(backend)
        for sequence, (run_id, base_path) in enumerate(runs[warmup:], start=warmup):
            deliver(completion_body(run_id, base_path, sequence))
        seconds = time.monotonic() - started
        client_cpu, server_cpu = (
            time.process_time() - client_cpu,
            cpu_seconds(backend) - server_cpu,
        )
    _check_completed(database_url, fan_out, warmup + completions)
    return OperationsReport(
        operations=completions,
        # checked: every completion queued one run per dependent
        queued=completions * fan_out,
        seconds=seconds,
        client_cpu=client_cpu,
        server_cpu=server_cpu,
    )


def _seed_dispatched_runs(
    intake: IntakeService, database_url: str, count: int
) -> list[tuple[UUID, str]]:
    """`count` runs of A, formed by the intake from projection updates one at a time (each is
    the freshest version, so each queues one run), then dispatched; in formation order."""
    first = datetime.now(UTC) - timedelta(hours=1)
    for n in range(count):
        update = projection_update(0, f"seed{n:06d}", first + timedelta(milliseconds=n))
        intake.ingest(
            decode_event(json.dumps(update)), source=SOURCE, received_at=datetime.now(UTC)
        )
    with connection(database_url) as conn:
        conn.execute(
            "UPDATE metric_runs SET status = 'dispatched', dispatched_at = now()"
            " WHERE status = 'queued'"
        )
        rows: list[Any] = conn.execute(
            "SELECT r.id, r.request_payload -> 'output' ->> 'basePath' FROM metric_runs r"
            " JOIN metrics m ON m.id = r.metric_id WHERE m.code = %s AND r.status = 'dispatched'"
            " ORDER BY r.created_at, r.id",
            (UPSTREAM,),
        ).fetchall()
    if len(rows) != count:
        raise RuntimeError(f"seeding formed {len(rows)} runs of {UPSTREAM}, not {count}")
    return [(row[0], row[1]) for row in rows]


def _deliverer(feedback: FeedbackService) -> Callable[[str], None]:
    def deliver(body: str) -> None:
        outcome = feedback.handle(decode_event(body), source=SOURCE, received_at=datetime.now(UTC))
        if outcome.status is not EventStatus.PROCESSED:
            raise RuntimeError(f"completion not processed: {outcome.status} {outcome.reason}")

    return deliver


def _check_completed(database_url: str, fan_out: int, completions: int) -> None:
    """Every completion succeeded its run and queued one run per dependent: a benchmark of
    a completion that formed nothing is void."""
    with connection(database_url) as conn:
        row: Any = conn.execute(
            "SELECT count(*) FILTER (WHERE m.code = %s AND r.status = 'succeeded'),"
            " count(*) FILTER (WHERE m.code <> %s AND r.status = 'queued')"
            " FROM metric_runs r JOIN metrics m ON m.id = r.metric_id",
            (UPSTREAM, UPSTREAM),
        ).fetchone()
    succeeded, dependents = int(row[0]), int(row[1])
    if succeeded != completions or dependents != completions * fan_out:
        raise RuntimeError(
            f"{completions} completions at fan-out {fan_out}: {succeeded} runs succeeded and "
            f"{dependents} dependent runs queued (expected {completions * fan_out})"
        )


# -- the figure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompletionsConfig:
    fan_outs: tuple[int, ...] = (1, 10, 100)
    repeats: int = 1
    # completions timed per repeat, after `warmup` untimed ones
    completions: int = 40
    warmup: int = 5
    # the update measurement, as in the throughput figure
    duration: float = 1.0
    warmup_events: int = 10


@dataclass(frozen=True)
class PerOperation:
    """Wall milliseconds, CPU milliseconds (client, server) and runs queued per operation."""

    wall_ms: float
    client_cpu_ms: float
    server_cpu_ms: float
    runs: float

    @property
    def cpu_ms(self) -> float:
        return self.client_cpu_ms + self.server_cpu_ms

    @staticmethod
    def of(
        operations: int, seconds: float, client_cpu: float, server_cpu: float, queued: int
    ) -> PerOperation:
        if operations < 1:
            raise ValueError("no operations measured")
        return PerOperation(
            wall_ms=seconds / operations * 1000,
            client_cpu_ms=client_cpu / operations * 1000,
            server_cpu_ms=server_cpu / operations * 1000,
            runs=queued / operations,
        )


@dataclass
class CompletionPoint:
    fan_out: int
    # one per repeat, each pair measured back to back
    completions: list[PerOperation] = field(default_factory=list)
    updates: list[PerOperation] = field(default_factory=list)

    def completion(self) -> PerOperation:
        return _median_of(self.completions)

    def update(self) -> PerOperation:
        return _median_of(self.updates)

    @property
    def wall_ratio(self) -> float:
        """Median over the repeats of completion / update wall time per operation."""
        return median(
            [c.wall_ms / u.wall_ms for c, u in zip(self.completions, self.updates, strict=True)]
        )

    @property
    def cpu_ratio(self) -> float:
        """Median over the repeats of completion / update CPU (client + server) per operation."""
        return median(
            [c.cpu_ms / u.cpu_ms for c, u in zip(self.completions, self.updates, strict=True)]
        )


def _median_of(values: list[PerOperation]) -> PerOperation:
    return PerOperation(
        wall_ms=median([v.wall_ms for v in values]),
        client_cpu_ms=median([v.client_cpu_ms for v in values]),
        server_cpu_ms=median([v.server_cpu_ms for v in values]),
        runs=median([v.runs for v in values]),
    )


@dataclass
class CompletionsResult:
    config: CompletionsConfig
    points: list[CompletionPoint] = field(default_factory=list)


def run_completions(
    pool: WorkerPool,
    databases: BenchDatabases,
    config: CompletionsConfig,
    progress: Callable[[str], None] = print,
) -> CompletionsResult:
    result = CompletionsResult(config)
    for fan_out in config.fan_outs:
        point = CompletionPoint(fan_out)
        for repeat in range(config.repeats):
            point.completions.append(_measure_completions(pool, databases, config, fan_out))
            point.updates.append(_measure_updates(pool, databases, config, fan_out, repeat))
        result.points.append(point)
        completion, update = point.completion(), point.update()
        progress(
            f"  fan-out {fan_out:>3}: completion {completion.wall_ms:7.2f} ms "
            f"(CPU {completion.client_cpu_ms:.2f} + {completion.server_cpu_ms:.2f}, "
            f"{completion.runs:.1f} runs), update {update.wall_ms:7.2f} ms "
            f"(CPU {update.client_cpu_ms:.2f} + {update.server_cpu_ms:.2f}, "
            f"{update.runs:.1f} runs): completion / update {point.wall_ratio:.2f} "
            f"(CPU {point.cpu_ratio:.2f})"
        )
    return result


def _measure_completions(
    pool: WorkerPool, databases: BenchDatabases, config: CompletionsConfig, fan_out: int
) -> PerOperation:
    url = databases.migrated()
    try:
        kwargs = {
            "database_url": url,
            "fan_out": fan_out,
            "completions": config.completions,
            "warmup": config.warmup,
        }
        (report,) = pool.run([Task(complete_share, kwargs)])
    finally:
        databases.drop(url)
    assert isinstance(report, OperationsReport)
    return PerOperation.of(
        report.operations, report.seconds, report.client_cpu, report.server_cpu, report.queued
    )


def _measure_updates(
    pool: WorkerPool,
    databases: BenchDatabases,
    config: CompletionsConfig,
    fan_out: int,
    repeat: int,
) -> PerOperation:
    url = databases.with_catalog(CatalogShape(datasets=UPDATE_DATASETS, fan_out=fan_out))
    try:
        kwargs = {
            "database_url": url,
            "stream": StreamShape(datasets=UPDATE_DATASETS, seed=repeat, tag=f"c{repeat}-"),
            "worker": 0,
            "workers": 1,
            "batch": 1,
            "warmup_events": config.warmup_events,
            "duration": config.duration,
        }
        (report,) = pool.run([Task(ingest_share, kwargs)])
    finally:
        databases.drop(url)
    assert isinstance(report, ShareReport)
    return PerOperation.of(
        report.events,
        report.finished - report.started,
        report.client_cpu,
        report.server_cpu,
        report.queued,
    )
