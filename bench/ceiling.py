"""Figure 2: what the database allows — one-row insert-and-commit from Python, and pgbench.

The same server and the same worker processes as figure 1 run the most trivial durable
transaction there is (insert one row, commit). Its rate is the ceiling for any design that
commits once per event; intake throughput is reported as a fraction of it. `pgbench -c1 -N`
(the simple-update TPC-B-like script) is added when the binary is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from bench.environment import BenchDatabases, connection, median
from bench.workers import Task, WorkerPool

PROBE_TABLE = """
CREATE TABLE IF NOT EXISTS bench_commit_probe (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    note text NOT NULL
)
"""
_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


@dataclass(frozen=True)
class CommitReport:
    started: float
    finished: float
    commits: int


def commit_loop(
    start: Callable[[], None], *, database_url: str, duration: float, warmup: int
) -> CommitReport:
    """The job of one worker: insert one row and commit, as fast as possible."""
    with psycopg.connect(database_url) as conn:
        for _ in range(warmup):
            _commit_one(conn)
        start()
        started = time.monotonic()
        deadline = started + duration
        commits = 0
        while time.monotonic() < deadline:
            _commit_one(conn)
            commits += 1
        finished = time.monotonic()
    return CommitReport(started, finished, commits)


def _commit_one(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("INSERT INTO bench_commit_probe (note) VALUES (%s)", ("x",))
    conn.commit()


@dataclass(frozen=True)
class CeilingConfig:
    workers: tuple[int, ...] = (1, 2, 4)
    repeats: int = 3
    duration: float = 2.0
    warmup: int = 50
    pgbench_seconds: int = 5


@dataclass
class CeilingResult:
    config: CeilingConfig
    commits_per_second: dict[int, list[float]] = field(default_factory=dict)
    pgbench_tps: list[float] = field(default_factory=list)
    pgbench_note: str = ""

    def commits(self, workers: int) -> float | None:
        values = self.commits_per_second.get(workers)
        return median(values) if values else None

    @property
    def pgbench(self) -> float | None:
        return median(self.pgbench_tps) if self.pgbench_tps else None


def run_ceiling(
    pool: WorkerPool,
    databases: BenchDatabases,
    config: CeilingConfig,
    progress: Callable[[str], None] = print,
) -> CeilingResult:
    result = CeilingResult(config)
    url = databases.migrated()
    try:
        with connection(url) as conn:
            conn.execute(PROBE_TABLE)
        for workers in (w for w in config.workers if w <= pool.size):
            rates = result.commits_per_second.setdefault(workers, [])
            for _ in range(config.repeats):
                rates.append(_measure(pool, url, config, workers))
            progress(f"  one-row insert+commit, {workers} connection(s): {median(rates):8,.0f}/s")
        _pgbench(url, config, result)
        if result.pgbench is not None:
            progress(f"  pgbench -c1 -N: {result.pgbench:8,.0f} tps")
        else:
            progress(f"  pgbench: {result.pgbench_note}")
    finally:
        databases.drop(url)
    return result


def _measure(pool: WorkerPool, url: str, config: CeilingConfig, workers: int) -> float:
    kwargs = {"database_url": url, "duration": config.duration, "warmup": config.warmup}
    reports: list[CommitReport] = pool.run([Task(commit_loop, kwargs) for _ in range(workers)])
    wall = max(r.finished for r in reports) - min(r.started for r in reports)
    return sum(r.commits for r in reports) / wall


def _pgbench(url: str, config: CeilingConfig, result: CeilingResult) -> None:
    binary = shutil.which("pgbench")
    if binary is None:
        result.pgbench_note = "not installed (apt-get install postgresql-client); skipped"
        return
    try:
        subprocess.run(
            [binary, "-i", "-q", "-s", "1", url], check=True, capture_output=True, timeout=120
        )
        for _ in range(config.repeats):
            run = subprocess.run(
                [binary, "-c1", "-N", "-T", str(config.pgbench_seconds), url],
                check=True,
                capture_output=True,
                text=True,
                timeout=config.pgbench_seconds + 60,
            )
            match = _TPS.search(run.stdout)
            if match:
                result.pgbench_tps.append(float(match.group(1)))
    except (OSError, subprocess.SubprocessError) as exc:
        result.pgbench_note = f"failed: {exc}"
