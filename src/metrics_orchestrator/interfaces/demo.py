"""`metrics-orchestrator demo`: the whole product in under a minute, on an embedded stack.

It starts a throw-away embedded PostgreSQL and an in-process AWS emulator, loads the two
bundled catalogs, runs the real service loops (consumers, dispatcher, sweeper) and a sample
worker that SIMULATES computations, then publishes a scripted story of projection updates to
the real projection-update queue. Each chapter waits until the service has caught up, and
the demo ends with a table of every run and the dataset versions it used.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from metrics_orchestrator.application.ports.runs import RunSummary
from metrics_orchestrator.bootstrap import (
    AwsWiring,
    Container,
    Settings,
    bootstrap,
    resolve_aws,
    resolve_database_url,
    sqs_client_from,
)
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.runtime import ServeParts, build_runtime
from metrics_orchestrator.interfaces.sample_worker import SampleWorker, WorkerPlan

CATALOGS = ("bcra_catalog.yaml", "multi_dataset_catalog.yaml")
# The worker of these (metric code, attempt) pairs misbehaves, so that retries show.
FAILS = ("mon.respaldo_real", 1)
GOES_SILENT = ("delta.base_30d", 1)
CHAPTER_DEADLINE = 20.0


class DemoFailed(Exception):
    """The story did not unfold as scripted (the service did not catch up in time)."""


def demo_settings(base: Settings, data_dir: Path) -> Settings:
    """Short timings so that timeouts and retries happen within seconds."""
    return base.model_copy(
        update={
            "database_url": None,
            "embedded_data_dir": data_dir,
            "aws_endpoint_url": None,
            "sns_run_request_topic_arn": None,
            "sqs_projection_update_queue_url": None,
            "sqs_run_feedback_queue_urls": (),
            "run_start_timeout": timedelta(seconds=10),
            "run_heartbeat_timeout": timedelta(seconds=2),
            "retry_base_delay": timedelta(seconds=1),
            "sweep_interval": timedelta(seconds=0.5),
            "dispatch_poll_interval": timedelta(seconds=0.5),
        }
    )


def demo_behaviour(request: dict[str, Any]) -> WorkerPlan:
    key = (request.get("metricCode"), request.get("attempt"))
    if key == FAILS:
        return WorkerPlan.fail()
    if key == GOES_SILENT:
        return WorkerPlan.go_silent()
    return WorkerPlan.succeed()


def bundled_catalog(name: str) -> dict[str, Any]:
    text = resources.files("metrics_orchestrator.interfaces.demo_catalogs").joinpath(name)
    document: dict[str, Any] = yaml.safe_load(text.read_text(encoding="utf-8"))
    return document


def update(dataset_id: str, version: str, occurred_at: datetime | None = None) -> str:
    event: dict[str, Any] = {
        "event": "projection_update",
        "dataset_id": dataset_id,
        "bucket": "ingestor-datasets",
        "version_manifest_path": f"datasets/{dataset_id}/versions/{version}/manifest.json",
        "projections_path": f"datasets/{dataset_id}/projections",
    }
    if occurred_at is not None:
        event["occurred_at"] = occurred_at.isoformat().replace("+00:00", "Z")
    return json.dumps(event)


@dataclass(frozen=True)
class Chapter:
    title: str
    bodies: tuple[str, ...]
    expect: str


def story(now: datetime) -> list[Chapter]:
    recent = now - timedelta(hours=1)
    return [
        Chapter(
            "BCRA publishes a new version of its single dataset",
            (update("bcra_infomondia_series", "v20251111_014138_730866", recent),),
            "all six BCRA metrics run at once (one of them will fail, one will go silent)",
        ),
        Chapter(
            "Reserves update three times before FX catches up",
            tuple(
                update("reserves_daily", f"r{n}", recent + timedelta(minutes=n)) for n in (1, 2, 3)
            ),
            "reserves.sma_20 runs on every version; reserves.at_parallel waits for fx_daily",
        ),
        Chapter(
            "FX publishes",
            (update("fx_daily", "f1", recent + timedelta(minutes=5)),),
            "reserves.at_parallel runs once on the newest reserves (r3) and f1: coalesced",
        ),
        Chapter(
            "An old prices version arrives (60 days old: stale)",
            (update("prices_monthly", "p_old", now - timedelta(days=60)),),
            "nothing runs: reserves.real_pesos keeps waiting for a fresh prices version",
        ),
        Chapter(
            "A fresh prices version arrives",
            (update("prices_monthly", "p1", recent + timedelta(minutes=6)),),
            "reserves.real_pesos and prices.real_wages run",
        ),
        Chapter(
            "Upstream redelivers the FX event, and a broken producer sends junk",
            (
                update("fx_daily", "f1", recent + timedelta(minutes=5)),
                "{this is not json",
                json.dumps({"event": "projection_update", "dataset_id": "fx_daily"}),
            ),
            "the duplicate changes nothing; both malformed messages are rejected and logged",
        ),
    ]


@dataclass
class Progress:
    """What the sample worker reported, for the live log."""

    console: Console
    lock: threading.Lock = field(default_factory=threading.Lock)

    def feedback(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", "")).removeprefix("metric_run_")
        if kind == "heartbeat":
            return
        detail = event.get("status", "") if kind == "completed" else ""
        with self.lock:
            run = str(event.get("runId"))[:8]
            self.console.print(f"    [dim]worker (simulated)[/dim] {kind:<9} {run} {detail}")


def run_demo(console: Console, base: Settings) -> None:
    started = time.monotonic()
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mo-demo-")))
        settings = demo_settings(base, data_dir)
        console.rule("[bold]metrics-orchestrator demo")
        console.print(f"embedded PostgreSQL (throw-away, in {data_dir}) …")
        url = resolve_database_url(settings, stack)
        aws = resolve_aws(settings, stack)
        console.print(
            f"embedded AWS emulator (moto) at {aws.endpoint_url}: topic and queues created"
        )
        container = stack.enter_context(bootstrap(settings, database_url=url))
        for name in CATALOGS:
            result = container.catalog.load_catalog(bundled_catalog(name))
            console.print(
                f"catalog {name}: {result.metrics.created} metrics, "
                f"{result.datasets.created} datasets, {result.series.created} series"
            )
        stack.enter_context(_service(container, aws))
        stack.enter_context(_worker(container.settings, aws, Progress(console)))
        send = _sender(settings, aws)
        sent = 0
        for number, chapter in enumerate(story(datetime.now(UTC)), start=1):
            console.print(f"\n[bold cyan]{number}. {chapter.title}[/bold cyan]")
            console.print(f"   [dim]expect: {chapter.expect}[/dim]")
            for body in chapter.bodies:
                send(body)
            sent += len(chapter.bodies)
            _wait(partial(_events_logged_at_least, container, sent), "events to be processed")
            _wait(lambda: _settled(container, allow_running=True), "runs to be picked up")
            _print_statuses(console, container)
        console.print(
            "\n[bold cyan]7. Waiting for the failed and the silent run to be retried[/bold cyan]"
        )
        console.print(
            "   [dim]expect: the silent run times out (no heartbeat for 2 s); both get attempt 2"
            "[/dim]"
        )
        _wait(lambda: _settled(container, allow_running=False), "retries to finish", 30.0)
        console.print()
        console.print(runs_table(_all_runs(container)))
        console.print(_events_summary(container))
        console.print(f"[green]demo finished in {time.monotonic() - started:.1f} s[/green]")


@contextmanager
def _service(container: Container, aws: AwsWiring) -> Iterator[None]:
    runtime = build_runtime(container, aws, ServeParts(http=False))
    runtime.start()
    try:
        yield
    finally:
        runtime.stop(timeout=10)


@contextmanager
def _worker(settings: Settings, aws: AwsWiring, progress: Progress) -> Iterator[None]:
    assert aws.worker_queue_url is not None
    worker = SampleWorker(
        sqs_client_from(settings, aws.endpoint_url),
        aws.worker_queue_url,
        aws.run_feedback_queue_urls[0],
        behaviour=demo_behaviour,
        heartbeats=2,
        step_seconds=0.1,
        on_feedback=progress.feedback,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), name="sample-worker")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def _sender(settings: Settings, aws: AwsWiring) -> Callable[[str], None]:
    assert aws.projection_update_queue_url is not None
    client = sqs_client_from(settings, aws.endpoint_url)
    url = aws.projection_update_queue_url

    def send(body: str) -> None:
        client.send_message(QueueUrl=url, MessageBody=body)

    return send


def _wait(condition: Callable[[], bool], what: str, deadline: float = CHAPTER_DEADLINE) -> None:
    until = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > until:
            raise DemoFailed(f"gave up after {deadline:.0f} s waiting for {what}")
        time.sleep(0.2)


def _all_runs(container: Container) -> list[RunSummary]:
    runs, _ = container.runs.list_runs(limit=500)
    return sorted(runs, key=lambda r: (r.metric_code, r.run.attempt, r.run.created_at))


def _events_logged_at_least(container: Container, count: int) -> bool:
    return _events_logged(container) >= count


def _events_logged(container: Container) -> int:
    """Messages of the projection-update queue recorded so far (worker feedback excluded)."""
    events = container.queries.list_events(limit=500).events
    return sum(not e.event_type.startswith("metric_run_") for e in events)


IN_FLIGHT = {RunStatus.QUEUED, RunStatus.DISPATCHED, RunStatus.RUNNING}


def _settled(container: Container, *, allow_running: bool) -> bool:
    """No run waiting to be published or answered (a silent one may stay running)."""
    busy = {RunStatus.QUEUED, RunStatus.DISPATCHED} if allow_running else IN_FLIGHT
    runs = _all_runs(container)
    retry_due = any(
        r.run.status in {RunStatus.FAILED, RunStatus.TIMED_OUT}
        and r.run.attempt < 2
        and not any(o.run.retry_of == r.run.id for o in runs)
        for r in runs
    )
    return not any(r.run.status in busy for r in runs) and (allow_running or not retry_due)


def _print_statuses(console: Console, container: Container) -> None:
    counts: dict[str, int] = {}
    for summary in _all_runs(container):
        counts[summary.run.status.value] = counts.get(summary.run.status.value, 0) + 1
    console.print("   runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))


def _version_of(manifest_path: str) -> str:
    parts = manifest_path.split("/")
    return parts[-2] if len(parts) >= 2 else manifest_path


def _duration(summary: RunSummary) -> str:
    run = summary.run
    start = run.started_at or run.dispatched_at
    if start is None or run.completed_at is None:
        return "-"
    return f"{(run.completed_at - start).total_seconds():.1f} s"


def runs_table(runs: list[RunSummary]) -> Table:
    table = Table(title="Runs", show_lines=False)
    for column in ("metric", "status", "attempt", "dataset versions used", "duration"):
        table.add_column(column)
    for summary in runs:
        table.add_row(
            summary.metric_code,
            summary.run.status.value,
            str(summary.run.attempt),
            _versions_from_payload(summary),
            _duration(summary),
        )
    return table


def _versions_from_payload(summary: RunSummary) -> str:
    datasets = (summary.run.request_payload or {}).get("catalog", {}).get("datasets", {})
    if not datasets:
        return "(waiting for inputs)"
    return ", ".join(
        f"{ds}={_version_of(entry['manifestPath'])}" for ds, entry in sorted(datasets.items())
    )


def _events_summary(container: Container) -> str:
    events = container.queries.list_events(limit=500).events
    counts: dict[str, int] = {}
    for event in events:
        counts[event.status.value] = counts.get(event.status.value, 0) + 1
    rejected = [e.error for e in events if e.status.value == "rejected"]
    lines = ["events: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
    lines += [f"  rejected: {reason}" for reason in rejected]
    return "\n".join(lines)
