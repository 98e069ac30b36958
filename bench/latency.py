"""Figure 3: end-to-end latency through moto, and the moto round trip alone (the floor).

Path measured: the benchmark sends a projection update to the service's SQS queue → `serve`
(consumer, intake transaction, NOTIFY, dispatcher claim, SNS PublishBatch, mark dispatched)
→ moto delivers the run request to the worker queue subscribed to the topic → the benchmark
receives it. The catalog has fan-out 1 with single-input metrics, so each update causes
exactly one run request. Updates are offered at a fixed rate from a paced sender.

Floor: the same sender and receiver, with `python -m bench.latency relay` in place of the
service: it long-polls the same kind of queue and republishes each message through the same
SNS publisher (PublishBatch) at once. The difference is what the service adds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from bench.catalog import CatalogShape
from bench.environment import BenchDatabases, connection, percentile
from bench.service import (
    REGION,
    MotoProcess,
    ServeProcess,
    run_request_key,
    service_environment,
)
from bench.stream import live_update
from metrics_orchestrator.infrastructure.aws.provisioning import Topology

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

DATASETS = 16
TICK = 0.1
# a p99 above this means messages wait in the queue: the path does not keep up
SUSTAINED_P99_S = 1.0


@dataclass(frozen=True)
class LatencyConfig:
    rates: tuple[float, ...] = (100.0,)
    duration: float = 10.0
    warmup: float = 2.0
    # how long to wait for the last run requests once sending stopped
    drain: float = 15.0


@dataclass
class PathSamples:
    """Latencies (seconds) of one path, the rate actually offered and what never arrived."""

    latencies: list[float] = field(default_factory=list)
    offered_rate: float = 0.0
    sent: int = 0
    lost: int = 0

    def p(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000


@dataclass(frozen=True)
class Breakdown:
    """Where the service spent the time, from its own timestamps: (p50, p99) in ms."""

    # update produced (`occurred_at`, stamped by the sender) -> received by the consumer
    queue_wait: tuple[float, float]
    # received -> claimed by the dispatcher: the intake transaction, its commit, the NOTIFY
    # and the dispatcher's wake-up (its publish and the delivery by moto follow)
    to_claim: tuple[float, float]


@dataclass
class RatePoint:
    rate: float
    service: PathSamples
    floor: PathSamples
    breakdown: Breakdown | None

    def overhead_ms(self, fraction: float) -> float:
        return self.service.p(fraction) - self.floor.p(fraction)


@dataclass
class LatencyResult:
    config: LatencyConfig
    points: list[RatePoint]
    note: str = ""

    def at(self, rate: float) -> RatePoint | None:
        return next((p for p in self.points if p.rate == rate), None)

    def sustained(self, path: str) -> float | None:
        """The highest rate at which that path ("service" or "floor") lost nothing and kept
        p99 under SUSTAINED_P99_S: above it, the queue backs up."""
        ok = [
            p.rate
            for p in self.points
            for samples in [p.service if path == "service" else p.floor]
            if samples.latencies and samples.lost == 0 and samples.p(0.99) < SUSTAINED_P99_S * 1000
        ]
        return max(ok, default=None)


def run_latency(
    databases: BenchDatabases,
    config: LatencyConfig,
    progress: Callable[[str], None] = print,
) -> LatencyResult:
    with MotoProcess() as moto:
        services, breakdowns, note = _service_path(databases, moto, config)
        floors = _floor_path(moto, config)
    points = []
    for rate, service, floor, breakdown in zip(
        config.rates, services, floors, breakdowns, strict=True
    ):
        point = RatePoint(rate, service, floor, breakdown)
        points.append(point)
        progress(f"  offered {rate:.0f} updates/s:")
        _report(progress, "service (serve + PostgreSQL + moto)", service)
        _report(progress, "floor (moto relay, no service)  ", floor)
        progress(
            f"    overhead: p50 {point.overhead_ms(0.5):.1f} ms, "
            f"p95 {point.overhead_ms(0.95):.1f} ms, p99 {point.overhead_ms(0.99):.1f} ms"
        )
        if breakdown is not None:
            progress(
                "    service timestamps p50/p99 (ms): queue wait "
                f"{breakdown.queue_wait[0]:.1f}/{breakdown.queue_wait[1]:.1f}, "
                "received -> claimed by the dispatcher "
                f"{breakdown.to_claim[0]:.1f}/{breakdown.to_claim[1]:.1f}"
            )
    return LatencyResult(config, points, note)


def _report(progress: Callable[[str], None], name: str, samples: PathSamples) -> None:
    progress(
        f"    {name}: p50 {samples.p(0.5):8.1f} ms, p95 {samples.p(0.95):8.1f} ms, "
        f"p99 {samples.p(0.99):8.1f} ms ({len(samples.latencies)} samples, achieved "
        f"{samples.offered_rate:.0f}/s, {samples.lost} lost)"
    )


def _service_path(
    databases: BenchDatabases, moto: MotoProcess, config: LatencyConfig
) -> tuple[list[PathSamples], list[Breakdown | None], str]:
    samples: list[PathSamples] = []
    breakdowns: list[Breakdown | None] = []
    note = ""
    url = databases.with_catalog(CatalogShape(datasets=DATASETS, fan_out=1))
    try:
        for rate in config.rates:
            # Fresh queues and a fresh `serve` per rate: a backlog left by a rate the service
            # could not sustain must not slow down the next one.
            topology = moto.provision()
            env = service_environment(url, moto.endpoint_url, topology)
            tag = f"r{rate:.0f}-"
            with ServeProcess(env, extra_flags=("--no-sweeper",)) as serve:
                samples.append(
                    measure_path(
                        moto.sqs,
                        topology.projection_update_queue.url,
                        topology.worker_queue.url,
                        config,
                        rate,
                        tag,
                    )
                )
                if not serve.alive():
                    raise RuntimeError(f"serve died during the measurement; see {serve.log_path}")
                note = note or serve.note
            breakdowns.append(_breakdown(url, tag, config.warmup))
            _purge(moto, topology)
    finally:
        databases.drop(url)
    return samples, breakdowns, note


def _purge(moto: MotoProcess, topology: Topology) -> None:
    """Empty what a measurement left behind: moto scans every message on each receive."""
    for queue in (topology.projection_update_queue, topology.worker_queue):
        with contextlib.suppress(ClientError):  # e.g. one purge per queue per minute
            moto.sqs.purge_queue(QueueUrl=queue.url)


_BREAKDOWN_SQL = """
WITH measured AS (
    SELECT u.received_at - u.occurred_at AS queue_wait,
           r.dispatched_at - u.received_at AS to_claim
    FROM dataset_updates u
    JOIN run_dataset_updates l ON l.update_id = u.id
    JOIN metric_runs r ON r.id = l.run_id
    WHERE u.version_manifest_path LIKE %(pattern)s
      AND u.occurred_at >= (SELECT min(occurred_at) FROM dataset_updates
                            WHERE version_manifest_path LIKE %(pattern)s) + %(warmup)s
      AND r.dispatched_at IS NOT NULL
)
SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM queue_wait)),
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM to_claim))
FROM measured
"""


def _breakdown(url: str, tag: str, warmup: float) -> Breakdown | None:
    """The service's own view (clocks of one host): `occurred_at` is when the update was made."""
    with connection(url) as conn:
        row = conn.execute(
            _BREAKDOWN_SQL,
            {"pattern": f"%/{tag}%", "warmup": timedelta(seconds=warmup)},
        ).fetchone()
    if row is None or row[0] is None:
        return None

    def ms(pair: list[float]) -> tuple[float, float]:
        return (pair[0] * 1000, pair[1] * 1000)

    return Breakdown(ms(row[0]), ms(row[1]))


def _floor_path(moto: MotoProcess, config: LatencyConfig) -> list[PathSamples]:
    return [_floor_at(moto, config, rate) for rate in config.rates]


def _floor_at(moto: MotoProcess, config: LatencyConfig, rate: float) -> PathSamples:
    topology = moto.provision()
    relay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.latency",
            "relay",
            moto.endpoint_url,
            topology.projection_update_queue.url,
            topology.topic_arn,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None
        relay.stdout.readline()  # "running"
        return measure_path(
            moto.sqs,
            topology.projection_update_queue.url,
            topology.worker_queue.url,
            config,
            rate,
            f"f{rate:.0f}-",
        )
    finally:
        relay.terminate()
        relay.wait(30)
        _purge(moto, topology)


def measure_path(
    sqs: SQSClient,
    inbound_queue_url: str,
    outbound_queue_url: str,
    config: LatencyConfig,
    rate: float,
    tag: str,
) -> PathSamples:
    """Send paced updates to the inbound queue; time each one's arrival on the outbound queue.

    Updates leave in ticks of 100 ms, each tick one SendMessageBatch of `rate / 10` messages:
    moto spends ~10 ms of CPU per request, so one request per update would saturate it on a
    small machine before the service is even involved. An update's clock starts when its
    batch is sent.
    """
    sent_at: dict[str, float] = {}
    latencies: dict[str, float] = {}
    done_sending = threading.Event()
    receiver = threading.Thread(
        target=_receive,
        args=(sqs, outbound_queue_url, sent_at, latencies, done_sending, config.drain),
        daemon=True,
    )
    receiver.start()
    per_tick = max(1, min(10, round(rate * TICK)))
    started = time.monotonic()
    deadline = started + config.duration
    sent = 0
    # Bounded by time, not by count: when moto cannot take the offered rate, the achieved
    # rate says so instead of the measurement running on for minutes.
    while (now := time.monotonic()) < deadline:
        delay = started + sent / rate - now
        if delay > 0:
            time.sleep(delay)
        bodies = [live_update((sent + n) % DATASETS, sent + n, tag=tag) for n in range(per_tick)]
        stamp = time.monotonic()
        for body in bodies:
            sent_at[run_request_key(body)] = stamp
        sqs.send_message_batch(
            QueueUrl=inbound_queue_url,
            Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)],
        )
        sent += per_tick
    elapsed = time.monotonic() - started
    done_sending.set()
    receiver.join(config.drain + 5)
    total = sent
    warm = started + config.warmup
    kept = [lat for key, lat in latencies.items() if sent_at[key] >= warm]
    return PathSamples(
        latencies=kept,
        offered_rate=total / elapsed if elapsed > 0 else 0.0,
        sent=total,
        lost=total - len(latencies),
    )


def _receive(
    sqs: SQSClient,
    queue_url: str,
    sent_at: dict[str, float],
    latencies: dict[str, float],
    done_sending: threading.Event,
    drain: float,
) -> None:
    deadline: float | None = None
    while True:
        if done_sending.is_set():
            deadline = deadline or time.monotonic() + drain
            if len(latencies) >= len(sent_at) or time.monotonic() > deadline:
                return
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        arrived = time.monotonic()
        messages = response.get("Messages", [])
        for message in messages:
            key = run_request_key(message["Body"])
            if key in sent_at and key not in latencies:
                latencies[key] = arrived - sent_at[key]
        if messages:
            # moto scans a queue's every message on each receive: keep the queue short
            _delete(sqs, queue_url, messages)


def _delete(sqs: SQSClient, queue_url: str, messages: list[MessageTypeDef]) -> None:
    sqs.delete_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
        ],
    )


# -- the relay (the floor's stand-in for the service) -------------------------------------------


def relay(endpoint_url: str, queue_url: str, topic_arn: str) -> None:
    """Receive from the queue and republish at once, through the service's own SNS publisher."""
    from metrics_orchestrator.application.ports.dispatch import RunRequestMessage
    from metrics_orchestrator.infrastructure.aws.clients import create_sns_client, create_sqs_client
    from metrics_orchestrator.infrastructure.aws.sns import SnsRunRequestPublisher

    sqs = create_sqs_client(REGION, endpoint_url)
    publisher = SnsRunRequestPublisher(create_sns_client(REGION, endpoint_url), topic_arn)
    print("running", flush=True)
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20
        ).get("Messages", [])
        if not messages:
            continue
        publisher.publish_batch(
            [
                RunRequestMessage(uuid.uuid4(), 1, "bench.relay", json.loads(m["Body"]))
                for m in messages
            ]
        )
        _delete(sqs, queue_url, messages)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency")
    commands = parser.add_subparsers(dest="command", required=True)
    relay_command = commands.add_parser("relay", help="republish a queue's messages to a topic")
    relay_command.add_argument("endpoint_url")
    relay_command.add_argument("queue_url")
    relay_command.add_argument("topic_arn")
    args = parser.parse_args(argv)
    relay(args.endpoint_url, args.queue_url, args.topic_arn)


if __name__ == "__main__":
    main(sys.argv[1:])
