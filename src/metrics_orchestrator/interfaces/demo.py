"""`metrics-orchestrator demo`: the whole product in under a minute, on an embedded stack.

It starts a throw-away embedded PostgreSQL and an in-process AWS emulator, loads the two
bundled catalogs, writes the generated sample world (every dataset version the story announces)
into the emulator's S3, and runs the real service loops (consumers, dispatcher) and the
REFERENCE worker, which computes every run for real. In front of it, on the run-request queue,
sits the sample worker as a fault injector: it SIMULATES the two misbehaving runs the story
needs (a failure, a worker that goes silent) and passes every other request on, untouched, to
the reference worker's own queue; so each queue has one reader and the story is the same on
every run. Then it tells a story in chapters (`story()`): each publishes projection updates to
the real projection-update queue, or lets the real sweeper act, and ends when its effects are in
the database. The demo drives the sweeper itself, in the chapters that announce a retry or a
timeout, so that nothing happens before it is told. It ends with a table of every run, the
dataset versions it used and, for a succeeded run, its row count and latest computed value. A
new chapter is one more `Chapter` in `story()`.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console

from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.ports.incidents import ChannelSettings
from metrics_orchestrator.application.ports.runs import RunSummary
from metrics_orchestrator.application.refresh import refresh_stale
from metrics_orchestrator.bootstrap import (
    Announce,
    AwsWiring,
    Container,
    Settings,
    bootstrap,
    create_s3_client,
    resolve_aws,
    resolve_database_url,
    sqs_client_from,
)
from metrics_orchestrator.domain.incidents import ChannelFormat
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.demo_narration import Narrator, Snapshot, versions_of
from metrics_orchestrator.interfaces.demo_report import (
    events_summary,
    outputs_of,
    runs_table,
    same_input_files,
)
from metrics_orchestrator.interfaces.demo_webhook import DEMO_SECRET, DemoWebhook, demo_webhook
from metrics_orchestrator.interfaces.reference_worker import (
    MISSING_EXTRA,
    WorkerUnavailable,
    embedded_worker_loop,
)
from metrics_orchestrator.interfaces.runtime import ServeParts, build_runtime
from metrics_orchestrator.interfaces.sample_world import write_world
from metrics_orchestrator.worker.bootstrap import build_sample_worker
from metrics_orchestrator.worker.sample import WorkerPlan

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CATALOGS = ("bcra_catalog.yaml", "multi_dataset_catalog.yaml", "chains_catalog.yaml")
# The worker of these (metric code, attempt) pairs misbehaves, so that retries show.
FAILS = ("mon.respaldo_real", 1)
GOES_SILENT = ("prices.real_wages", 1)
CHAPTER_DEADLINE = 20.0
# Where the story's datasets live (the bundled catalogs' bucket for them).
WORLD_BUCKET = "ingestor-datasets"
BCRA_VERSION = "v20251111_014138_730866"
# Every dataset version the story announces: the sample world has each of them in S3.
STORY_VERSIONS = (
    ("bcra_infomondia_series", BCRA_VERSION),
    ("reserves_daily", "r1"),
    ("reserves_daily", "r2"),
    ("reserves_daily", "r3"),
    ("fx_daily", "f1"),
    ("prices_monthly", "p_old"),
    ("prices_monthly", "p1"),
)
# The reference worker's own queue: only the sample worker (the fault injector) writes to it.
COMPUTE_QUEUE = "metrics-orchestrator-demo-compute"
# Heartbeats well inside the demo's 2 s RUN_HEARTBEAT_TIMEOUT; four runs computed at once.
REFERENCE_WORKER = {"worker_heartbeat_interval": 0.5, "worker_concurrency": 4}


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


def simulated(metric_code: str, attempt: int) -> bool:
    """Whether the sample worker answers this run itself (with a scripted fault)."""
    return (metric_code, attempt) in (FAILS, GOES_SILENT)


def demo_behaviour(request: dict[str, Any]) -> WorkerPlan:
    key = (request.get("metricCode"), request.get("attempt"))
    if key == FAILS:
        return WorkerPlan.fail()
    if key == GOES_SILENT:
        return WorkerPlan.go_silent()
    return WorkerPlan.pass_on()


def bundled_catalog(name: str) -> dict[str, Any]:
    text = resources.files("metrics_orchestrator.interfaces.demo_catalogs").joinpath(name)
    document: dict[str, Any] = yaml.safe_load(text.read_text(encoding="utf-8"))
    return document


def update(dataset_id: str, version: str, occurred_at: datetime | None = None) -> str:
    event: dict[str, Any] = {
        "event": "projection_update",
        "dataset_id": dataset_id,
        "bucket": WORLD_BUCKET,
        "version_manifest_path": f"datasets/{dataset_id}/versions/{version}/manifest.json",
        "projections_path": f"datasets/{dataset_id}/projections",
    }
    if occurred_at is not None:
        event["occurred_at"] = occurred_at.isoformat().replace("+00:00", "Z")
    return json.dumps(event)


@dataclass
class Stage:
    """What a chapter can act on: the queue the producers write to, and the service itself."""

    container: Container
    _send: Callable[[str], None]
    sent: int = 0

    def send(self, body: str) -> None:
        self._send(body)
        self.sent += 1


@dataclass(frozen=True)
class Chapter:
    """One step of the story: what happens, what to expect, and when it has visibly happened.

    `done` reads the database (a `Snapshot`), never the clock: a chapter ends when its effects
    are there, however fast or slow the machine. With `sweeps`, the demo runs the sweeper
    during the chapter (and only then), so timeouts and retries happen where they are told.
    """

    title: str
    expect: str
    act: Callable[[Stage], None]
    done: Callable[[Snapshot], bool]
    sweeps: bool = False


def sending(*bodies: str) -> Callable[[Stage], None]:
    def act(stage: Stage) -> None:
        for body in bodies:
            stage.send(body)

    return act


def nothing(_stage: Stage) -> None:
    """The chapter's events come from the service itself (the sweeper), not a producer."""


def sweeping(title: str, expect: str, done: Callable[[Snapshot], bool]) -> Chapter:
    """A chapter no producer acts in: the sweeper runs, and its timeouts and retries are it."""
    return Chapter(title, expect, nothing, done, sweeps=True)


def change_definition_and_refresh(stage: Stage) -> None:
    """An operator edits a metric's expression, then runs `metrics refresh --stale`."""
    chains = bundled_catalog("chains_catalog.yaml")
    chains["metrics"][0]["expression"]["right"]["window"] = 6
    stage.container.catalog.load_catalog(chains)
    refresh_stale(stage.container.queries, stage.container.intake)


def statuses(snapshot: Snapshot, expected: dict[str, list[RunStatus]]) -> bool:
    """Each metric's runs are in exactly these statuses (in input-version, attempt order)."""
    return all(snapshot.statuses(code) == runs for code, runs in expected.items())


def settled(
    expected: dict[str, list[RunStatus]], *, except_running: bool = False
) -> Callable[[Snapshot], bool]:
    """Most chapters end so: the metrics' runs are in these statuses and no run is in flight
    (but a RUNNING one, with `except_running`)."""
    return lambda s: statuses(s, expected) and not s.in_flight(except_running=except_running)


OK, FAILED, TIMED_OUT = RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT
WAITING, RUNNING = RunStatus.PENDING_DEPENDENCIES, RunStatus.RUNNING
BCRA_METRICS = (
    "delta.base_30d",
    "delta.reserves_7d",
    "mon.base_ampliada_ars",
    "mon.pasivos_rem_ars",
    "ratio.reserves_to_base",
)


def story(now: datetime) -> list[Chapter]:
    recent = now - timedelta(hours=1)
    fx = update("fx_daily", "f1", recent + timedelta(minutes=5))
    return [
        Chapter(
            "BCRA publishes a new version of its single dataset",
            "all six BCRA metrics run at once; the worker fails mon.respaldo_real (as told)",
            sending(update("bcra_infomondia_series", BCRA_VERSION, recent)),
            settled({"mon.respaldo_real": [FAILED]} | {m: [OK] for m in BCRA_METRICS}),
        ),
        sweeping(
            "The sweeper retries the failed run",
            "after a 1 s back-off mon.respaldo_real gets retry 2 of 3, which succeeds",
            settled({"mon.respaldo_real": [FAILED, OK]}),
        ),
        Chapter(
            "Reserves update three times before FX catches up",
            "reserves.sma_20 runs on every version; reserves.at_parallel and reserves.real_pesos "
            "wait for fx_daily",
            sending(
                *(
                    update("reserves_daily", f"r{n}", recent + timedelta(minutes=n))
                    for n in (1, 2, 3)
                )
            ),
            settled(
                {
                    "reserves.sma_20": [OK, OK, OK],
                    "reserves.at_parallel": [WAITING],
                    "reserves.real_pesos": [WAITING],
                }
            ),
        ),
        Chapter(
            "FX publishes",
            "reserves.at_parallel runs once on the newest reserves (r3) and f1 (coalesced), "
            "fx.gap runs; reserves.real_pesos now waits only for prices; "
            "reserves.real_yoy_over_gap holds fx.gap's output and waits for its other input",
            sending(fx),
            settled(
                {
                    "reserves.at_parallel": [OK],
                    "fx.gap": [OK],
                    "reserves.real_pesos": [WAITING],
                    "reserves.real_yoy_over_gap": [WAITING],
                }
            ),
        ),
        Chapter(
            "An old prices version arrives (60 days old: stale)",
            "nothing runs: reserves.real_pesos keeps waiting for a fresh prices version",
            sending(update("prices_monthly", "p_old", now - timedelta(days=60))),
            settled({"reserves.real_pesos": [WAITING], "prices.real_wages": []}),
        ),
        Chapter(
            "A fresh prices version arrives",
            "reserves.real_pesos and prices.real_wages run; then the metrics over metrics: "
            "reserves.real_pesos_yoy on real_pesos' output, reserves.real_yoy_over_gap on "
            "both derived metrics; the worker of prices.real_wages goes silent after starting "
            "(as told)",
            sending(update("prices_monthly", "p1", recent + timedelta(minutes=6))),
            settled(
                {
                    "reserves.real_pesos": [OK],
                    "reserves.real_pesos_yoy": [OK],
                    "reserves.real_yoy_over_gap": [OK],
                    "prices.real_wages": [RUNNING],
                },
                except_running=True,
            ),
        ),
        sweeping(
            "The silent run times out and is retried",
            "no heartbeat for 2 s: the sweeper times prices.real_wages out, then retry 2 of 3 "
            "succeeds",
            settled({"prices.real_wages": [TIMED_OUT, OK]}),
        ),
        Chapter(
            "A definition changes, and a refresh brings the chain up to date",
            "reserves.real_pesos_yoy now compares with six observations earlier: it is stale "
            "(definition changed), reserves.real_yoy_over_gap too (upstream stale); "
            "`refresh --stale` runs the root, and its output runs the rest",
            change_definition_and_refresh,
            settled({"reserves.real_pesos_yoy": [OK, OK], "reserves.real_yoy_over_gap": [OK, OK]}),
        ),
        Chapter(
            "Upstream redelivers the FX event, and a broken producer sends junk",
            "the duplicate changes nothing; both malformed messages are rejected and logged, "
            "each opens an incident, and the team's webhook hears of both",
            sending(
                fx,
                "{this is not json",
                json.dumps({"event": "projection_update", "dataset_id": "fx_daily"}),
            ),
            lambda s: (
                s.event_counts()["duplicate"] == 1
                and s.event_counts()["rejected"] == 2
                and len(s.open_incidents()) == 2
            ),
        ),
        Chapter(
            "An operator dismisses the junk",
            "`events dismiss` takes both out of the inbox: their incidents resolve, and the "
            "webhook hears that too",
            dismiss_rejected,
            lambda s: bool(s.incidents) and not s.open_incidents(),
        ),
    ]


def dismiss_rejected(stage: Stage) -> None:
    """What an operator does with `events dismiss KEY --reason TEXT` (SPEC §6.1)."""
    page = stage.container.queries.list_events(status=EventStatus.REJECTED, limit=50)
    for event in page.events:
        stage.container.router.dismiss(event.event_key, "junk from a broken producer")


def run_demo(console: Console, base: Settings, *, announce: Announce | None = None) -> None:
    started = time.monotonic()
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mo-demo-")))
        settings = demo_settings(base, data_dir)
        console.rule("[bold]metrics-orchestrator demo")
        console.print(f"embedded PostgreSQL (throw-away, in {data_dir}) …")
        url = resolve_database_url(settings, stack, announce=announce)
        aws = resolve_aws(settings, stack)
        console.print(
            f"embedded AWS emulator (moto) at {aws.endpoint_url}: topic and queues created"
        )
        container = stack.enter_context(bootstrap(settings, database_url=url, aws=aws))
        webhook = stack.enter_context(demo_webhook())
        container.notifications.configure([_demo_channel(webhook.url)])
        console.print(
            f"notification channel demo-webhook: a local receiver at {webhook.url} (signed json)"
        )
        for name in CATALOGS:
            result = container.catalog.load_catalog(bundled_catalog(name))
            console.print(
                f"catalog {name}: {plural(result.metrics.created, 'metric')}, "
                f"{plural(result.datasets.created, 'dataset')}, "
                f"{plural(result.series.created, 'series', 'series')}"
            )
        writing = time.monotonic()
        written = _write_sample_world(settings, aws)
        console.print(
            f"sample world in the emulator's S3: {plural(written, 'dataset version')}, about "
            f"two years of generated points each ({time.monotonic() - writing:.1f} s)"
        )
        narrator = Narrator(
            max_attempts={m.code: m.max_attempts for m in container.catalog.list_metrics()},
            goes_silent=lambda code, attempt: (code, attempt) == GOES_SILENT,
            simulated=simulated,
        )
        compute_queue_url = _create_compute_queue(settings, aws)
        stack.enter_context(_service(container, aws))
        stack.enter_context(_reference_worker(container.settings, aws, compute_queue_url))
        stack.enter_context(_worker(container.settings, aws, narrator, compute_queue_url))
        console.print(
            "reference worker computing; in front of it a sample worker SIMULATES two faults "
            f"({FAILS[0]} attempt {FAILS[1]} fails, {GOES_SILENT[0]} attempt "
            f"{GOES_SILENT[1]} goes silent) and passes every other request on"
        )
        stage = Stage(container, _sender(settings, aws))
        for number, chapter in enumerate(story(datetime.now(UTC)), start=1):
            console.print(f"\n[bold cyan]{number}. {chapter.title}[/bold cyan]")
            console.print(f"   [dim]expect: {chapter.expect}[/dim]")
            chapter.act(stage)
            _play(container, chapter, narrator, stage.sent)
            for line in narrator.chapter_lines(snapshot(container)):
                console.print(line)
            _print_statuses(console, container)
        console.print()
        runs = _all_runs(container)
        console.print(runs_table(runs, outputs_of(container, runs)))
        for note in same_input_files(container, runs):
            console.print(note, soft_wrap=True)
        console.print(events_summary(snapshot(container).events))
        console.print(_webhook_summary(container, webhook))
        console.print(f"[green]demo finished in {time.monotonic() - started:.1f} s[/green]")


def _demo_channel(url: str) -> ChannelSettings:
    return ChannelSettings(
        "demo-webhook", url, ChannelFormat.JSON, DEMO_SECRET, kinds=None, metrics=None
    )


def _webhook_summary(container: Container, webhook: DemoWebhook) -> str:
    """What the team's webhook heard, once the notifier has delivered the last change."""
    expected = sum(1 + (not i.open) for i in snapshot(container).incidents)
    _wait(lambda: len(webhook.seen()) >= expected, "the webhook to hear of every incident")
    seen = webhook.seen()
    counts = Counter(kind for kind, *_ in seen)
    signed = "all signed" if all(ok for *_, ok in seen) else "NOT ALL SIGNED"
    told = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
    return f"webhook demo-webhook received {told} ({signed}: X-Signature-256 verified)"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def _play(container: Container, chapter: Chapter, narrator: Narrator, sent: int) -> None:
    """Wait until the chapter's effects are in the database (sweeping, if it sweeps)."""

    def finished() -> bool:
        if chapter.sweeps:
            narrator.swept(container.sweeper.sweep_once())
        now = snapshot(container)
        narrator.observe(now)
        return len(now.events) >= sent and chapter.done(now) and narrator.caught_up(now)

    _wait(finished, f"chapter {chapter.title!r} to happen")


def snapshot(container: Container) -> Snapshot:
    events = container.queries.list_events(limit=500).events
    updates = [e for e in events if not e.event_type.startswith("metric_run_")]
    incidents = list(container.incidents.page(limit=50).incidents)
    return Snapshot(_all_runs(container), updates, incidents)


@contextmanager
def _service(container: Container, aws: AwsWiring) -> Iterator[None]:
    # No sweeper loop: the chapters that announce a timeout or a retry sweep themselves.
    runtime = build_runtime(container, aws, ServeParts(http=False, sweeper=False))
    runtime.start()
    try:
        yield
    finally:
        runtime.stop(timeout=10)


def _write_sample_world(settings: Settings, aws: AwsWiring) -> int:
    """Each (dataset, version) of the story, in the SPEC §4.4 layout. A dataset's data is
    written once: its later versions are manifests listing the same (identical) files."""
    s3 = create_s3_client(settings.aws_region, aws.endpoint_url)
    documents = [bundled_catalog(name) for name in CATALOGS]
    first: dict[str, str] = {}
    for dataset_id, version in STORY_VERSIONS:
        if dataset_id in first:
            _copy_manifest(s3, dataset_id, first[dataset_id], version)
            continue
        document = next(
            d for d in documents if any(s["id"] == dataset_id for s in d.get("datasets", []))
        )
        only = [s for s in document["datasets"] if s["id"] == dataset_id]
        try:
            write_world(s3, [{**document, "datasets": only}], version=version)
        except ImportError as exc:
            raise DemoFailed(f"{MISSING_EXTRA} ({exc})") from exc
        first[dataset_id] = version
    return len(STORY_VERSIONS)


def _copy_manifest(s3: S3Client, dataset_id: str, source: str, version: str) -> None:
    def key(v: str) -> str:
        return f"datasets/{dataset_id}/versions/{v}/manifest.json"

    body = s3.get_object(Bucket=WORLD_BUCKET, Key=key(source))["Body"].read()
    manifest = {**json.loads(body), "version_id": version}
    s3.put_object(
        Bucket=WORLD_BUCKET,
        Key=key(version),
        Body=json.dumps(manifest).encode(),
        ContentType="application/json",
    )


def _create_compute_queue(settings: Settings, aws: AwsWiring) -> str:
    client = sqs_client_from(settings, aws.endpoint_url)
    return client.create_queue(QueueName=COMPUTE_QUEUE)["QueueUrl"]


@contextmanager
def _reference_worker(settings: Settings, aws: AwsWiring, queue_url: str) -> Iterator[None]:
    try:
        loop = embedded_worker_loop(
            settings, replace(aws, worker_queue_url=queue_url), **REFERENCE_WORKER
        )
    except WorkerUnavailable as exc:
        raise DemoFailed(str(exc)) from exc
    with _in_thread(loop.target, loop.name):
        yield


@contextmanager
def _worker(
    settings: Settings, aws: AwsWiring, narrator: Narrator, compute_queue_url: str
) -> Iterator[None]:
    """The sample worker on the run-request queue: the scripted faults, or a hand-over."""
    assert aws.worker_queue_url is not None
    sqs = sqs_client_from(settings, aws.endpoint_url)

    def pass_on(body: str) -> None:
        sqs.send_message(QueueUrl=compute_queue_url, MessageBody=body)

    worker = build_sample_worker(
        settings.aws_region,
        aws.endpoint_url,
        aws.worker_queue_url,
        aws.run_feedback_queue_urls[0],
        behaviour=demo_behaviour,
        heartbeats=2,
        step_seconds=0.1,
        on_feedback=narrator.feedback,
        pass_on=pass_on,
    )
    with _in_thread(worker.run_forever, "sample-worker"):
        yield


@contextmanager
def _in_thread(target: Callable[[threading.Event], None], name: str) -> Iterator[None]:
    """`target(stop)` on a thread of its own while the block runs; then stopped and joined."""
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,), name=name)
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
    # runs formed in one batch may share a creation time: their versions then order them
    return sorted(
        runs, key=lambda r: (r.metric_code, r.run.attempt, r.run.created_at, versions_of(r))
    )


def _print_statuses(console: Console, container: Container) -> None:
    counts: dict[str, int] = {}
    for summary in _all_runs(container):
        counts[summary.run.status.value] = counts.get(summary.run.status.value, 0) + 1
    console.print("   runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
