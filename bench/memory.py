"""Figure 5: resident memory of `serve` during a soak at a steady rate.

`metrics-orchestrator serve --no-http` runs against a bench database and a moto server with
every other part on (consumers, dispatcher, sweeper). The benchmark feeds projection updates
to its queue at a steady rate, and a stand-in worker answers every run request with a
`metric_run_completed` event on the feedback queue, so the whole lifecycle turns over.
VmRSS is read from /proc every few seconds; VmHWM gives the peak.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.catalog import CatalogShape
from bench.environment import BenchDatabases, connection, median
from bench.service import MotoProcess, ServeProcess, rss_kib, service_environment
from bench.stream import live_update
from metrics_orchestrator.domain.messages.run_completed import RUN_COMPLETED

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DATASETS = 16
TICK = 0.2


@dataclass(frozen=True)
class MemoryConfig:
    duration: float = 30.0
    rate: float = 20.0
    sample_every: float = 2.0
    # the first part of the soak is start-up (imports, pools, caches): not judged for growth
    warmup_fraction: float = 0.2


@dataclass
class MemoryResult:
    config: MemoryConfig
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)
    peak_mib: float = 0.0
    sent: int = 0
    processed: int = 0
    succeeded: int = 0
    command: str = ""
    note: str = ""

    def _steady(self) -> list[tuple[float, float]]:
        cut = self.config.duration * self.config.warmup_fraction
        return [s for s in self.samples if s[0] >= cut]

    @property
    def start_mib(self) -> float:
        steady = self._steady()
        quarter = steady[: max(1, len(steady) // 4)]
        return median([mib for _, mib in quarter])

    @property
    def end_mib(self) -> float:
        steady = self._steady()
        quarter = steady[-max(1, len(steady) // 4) :]
        return median([mib for _, mib in quarter])

    @property
    def growth_mib(self) -> float:
        return self.end_mib - self.start_mib

    @property
    def slope_mib_per_minute(self) -> float:
        steady = self._steady()
        if len(steady) < 2:
            return float("nan")
        xs = [t for t, _ in steady]
        ys = [m for _, m in steady]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        denominator = sum((x - mean_x) ** 2 for x in xs)
        if denominator == 0:
            return 0.0
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator
        return slope * 60

    @property
    def flat(self) -> bool:
        return self.growth_mib <= max(2.0, 0.03 * self.start_mib)


def run_memory(
    databases: BenchDatabases,
    config: MemoryConfig,
    progress: Callable[[str], None] = print,
) -> MemoryResult:
    result = MemoryResult(config)
    url = databases.with_catalog(CatalogShape(datasets=DATASETS, fan_out=1))
    try:
        with MotoProcess() as moto:
            topology = moto.provision()
            env = service_environment(url, moto.endpoint_url, topology)
            with ServeProcess(env) as serve:
                result.command = " ".join(serve.command)
                result.note = serve.note
                stop = threading.Event()
                worker = threading.Thread(
                    target=_answer_run_requests,
                    args=(
                        moto.sqs,
                        topology.worker_queue.url,
                        topology.run_feedback_queue.url,
                        stop,
                    ),
                    daemon=True,
                )
                worker.start()
                try:
                    result.sent = _soak(
                        moto.sqs, topology.projection_update_queue.url, serve, config, result
                    )
                    _drain(url, result.sent)
                finally:
                    stop.set()
                    worker.join(30)
                _, peak_kib = rss_kib(serve.pid)
                result.peak_mib = peak_kib / 1024
        result.processed, result.succeeded = _outcome(url)
    finally:
        databases.drop(url)
    progress(
        f"  serve RSS: {result.start_mib:.1f} MiB after warm-up, {result.end_mib:.1f} MiB at the "
        f"end, peak {result.peak_mib:.1f} MiB; slope {result.slope_mib_per_minute:+.2f} MiB/min "
        f"({'flat' if result.flat else 'GROWING'}); {result.processed}/{result.sent} updates "
        f"processed, {result.succeeded} runs succeeded"
    )
    return result


def _soak(
    sqs: SQSClient,
    queue_url: str,
    serve: ServeProcess,
    config: MemoryConfig,
    result: MemoryResult,
) -> int:
    per_tick = max(1, min(10, round(config.rate * TICK)))
    started = time.monotonic()
    next_sample = started
    sent = 0
    tick = 0
    while (elapsed := time.monotonic() - started) < config.duration:
        if not serve.alive():
            raise RuntimeError(f"serve died during the soak; see {serve.log_path}")
        if time.monotonic() >= next_sample:
            rss, _ = rss_kib(serve.pid)
            result.samples.append((elapsed, rss / 1024))
            next_sample += config.sample_every
        bodies = [live_update((sent + n) % DATASETS, sent + n, tag="soak") for n in range(per_tick)]
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)],
        )
        sent += per_tick
        tick += 1
        delay = started + tick * per_tick / config.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return sent


def _answer_run_requests(
    sqs: SQSClient, worker_queue_url: str, feedback_queue_url: str, stop: threading.Event
) -> None:
    """A stand-in worker: every run request is answered at once with a successful completion."""
    while not stop.is_set():
        messages = sqs.receive_message(
            QueueUrl=worker_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            continue
        completions = [_completion(json.loads(m["Body"])) for m in messages]
        sqs.send_message_batch(
            QueueUrl=feedback_queue_url,
            Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(completions)],
        )
        sqs.delete_message_batch(
            QueueUrl=worker_queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
            ],
        )


def _completion(request: dict[str, Any]) -> str:
    return json.dumps(
        {
            "type": RUN_COMPLETED,
            "runId": request["runId"],
            "metricCode": request["metricCode"],
            "status": "SUCCESS",
            "rowCount": 1,
        }
    )


def _drain(url: str, sent: int, timeout: float = 30.0) -> None:
    """Let the service finish what it was sent before it is stopped."""
    deadline = time.monotonic() + timeout
    while _outcome(url)[0] < sent and time.monotonic() < deadline:
        time.sleep(0.5)


def _outcome(url: str) -> tuple[int, int]:
    with connection(url) as conn:
        row: Any = conn.execute(
            "SELECT (SELECT count(*) FROM event_log WHERE event_type = 'projection_update'"
            "        AND status = 'processed'),"
            "       (SELECT count(*) FROM metric_runs WHERE status = 'succeeded')"
        ).fetchone()
    return int(row[0]), int(row[1])
