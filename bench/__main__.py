"""`python -m bench --quick|--full [--only NAME] [--output PATH]` (`make bench`, `make bench-full`).

Runs the benchmarks, prints each figure as it is measured and writes `docs/performance.md`
(a complete run only, unless `--output` is given). `--quick` is a smoke run in under three
minutes with short, single measurements; `--full` produces the published figures.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.ceiling import CeilingConfig, run_ceiling
from bench.completions import CompletionsConfig, run_completions
from bench.dashboard import DashboardConfig, run_dashboard
from bench.environment import REPO_ROOT, BenchDatabases, bench_databases, describe_machine
from bench.latency import LatencyConfig, run_latency
from bench.memory import MemoryConfig, run_memory
from bench.report import SuiteResults, render, write_report
from bench.scaling import ScalingConfig, run_scaling
from bench.throughput import ThroughputConfig, run_throughput
from bench.workers import WorkerPool
from metrics_orchestrator.infrastructure.logging import configure_logging
from metrics_orchestrator.infrastructure.settings import LogFormat

BENCHMARKS = (
    "ceiling",
    "throughput",
    "scaling",
    "latency",
    "memory",
    "completions",
    "dashboard",
)
REPORT = REPO_ROOT / "docs" / "performance.md"


@dataclass(frozen=True)
class Mode:
    name: str
    throughput: ThroughputConfig
    ceiling: CeilingConfig
    latency: LatencyConfig
    scaling: ScalingConfig
    memory: MemoryConfig
    completions: CompletionsConfig
    dashboard: DashboardConfig


QUICK = Mode(
    name="quick",
    throughput=ThroughputConfig(repeats=1, duration=1.0, warmup_events=10),
    ceiling=CeilingConfig(repeats=1, duration=1.0, warmup=20, pgbench_seconds=2),
    latency=LatencyConfig(rates=(100.0,), duration=4.0, warmup=1.0, drain=5.0),
    scaling=ScalingConfig(
        history_levels=(10_000, 100_000), fan_outs=(1, 10, 100), repeats=1, duration=1.0
    ),
    memory=MemoryConfig(duration=30.0, rate=20.0, sample_every=1.0),
    completions=CompletionsConfig(
        fan_outs=(1, 10, 100), repeats=1, completions=40, warmup=5, duration=1.0
    ),
    dashboard=DashboardConfig(repeats=3),
)
FULL = Mode(
    name="full",
    throughput=ThroughputConfig(repeats=5, duration=5.0, warmup_events=50),
    ceiling=CeilingConfig(repeats=5, duration=5.0, warmup=100, pgbench_seconds=10),
    latency=LatencyConfig(rates=(20.0, 50.0, 100.0), duration=30.0, warmup=5.0),
    scaling=ScalingConfig(
        history_levels=(10_000, 100_000, 1_000_000),
        fan_outs=(1, 3, 10, 30, 100),
        repeats=5,
        duration=5.0,
        warmup_events=50,
    ),
    memory=MemoryConfig(duration=300.0, rate=20.0, sample_every=5.0),
    completions=CompletionsConfig(
        fan_outs=(1, 3, 10, 30, 100),
        repeats=5,
        completions=200,
        warmup=20,
        duration=5.0,
        warmup_events=50,
    ),
    dashboard=DashboardConfig(repeats=11),
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="smoke run, under three minutes")
    mode.add_argument("--full", action="store_true", help="the published figures")
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="run only these")
    parser.add_argument("--output", type=Path, help=f"report path (default {REPORT})")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    # SIGTERM unwinds like Ctrl-C, so bench databases, moto and `serve` are cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # the benchmark's own AWS and database set-up should only speak up when it fails
    configure_logging("WARNING", LogFormat.CONSOLE)
    mode = FULL if args.full else QUICK
    selected = tuple(args.only or BENCHMARKS)
    command = " ".join(["python -m bench", *argv])
    started = time.monotonic()
    with bench_databases() as databases:
        results = SuiteResults(
            mode=mode.name,
            command=command,
            machine=describe_machine(databases.server),
        )
        print(f"{command}: {', '.join(selected)} on {results.machine.cpu}", flush=True)
        with WorkerPool(4) as pool:
            for name in selected:
                _run(name, mode, pool, databases, results)
        results.load_after = os.getloadavg()
    print(f"\ndone in {time.monotonic() - started:.0f} s\n")
    print(render(results))
    output = args.output or (REPORT if args.only is None else None)
    if output is not None:
        write_report(results, output)
        print(f"written to {output}")
    return 0


def _run(
    name: str, mode: Mode, pool: WorkerPool, databases: BenchDatabases, results: SuiteResults
) -> None:
    print(f"\n[{name}]", flush=True)
    started = time.monotonic()
    progress: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    if name == "ceiling":
        results.ceiling = run_ceiling(pool, databases, mode.ceiling, progress)
    elif name == "throughput":
        results.throughput = run_throughput(pool, databases, mode.throughput, progress)
    elif name == "scaling":
        results.scaling = run_scaling(pool, databases, mode.scaling, progress)
    elif name == "latency":
        results.latency = run_latency(databases, mode.latency, progress)
    elif name == "memory":
        results.memory = run_memory(databases, mode.memory, progress)
    elif name == "completions":
        results.completions = run_completions(pool, databases, mode.completions, progress)
    elif name == "dashboard":
        results.dashboard = run_dashboard(databases, mode.dashboard, progress)
    print(f"  ({time.monotonic() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
