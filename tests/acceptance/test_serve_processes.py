"""`metrics-orchestrator serve --no-http` as real processes: replicas side by side, and SIGTERM.

Each replica is a subprocess of the installed entry point with its environment pointing at one
test database and one set of queues on the session's moto server (SPEC §7: any number of
replicas share one database and one set of queues).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from metrics_orchestrator.infrastructure.aws.provisioning import Topology
from metrics_orchestrator.interfaces.runtime import ServeParts
from tests.aws_fixtures import receive_messages
from tests.integration.intake_helpers import update_body
from tests.integration.messaging_helpers import (
    count_runs,
    load_catalog,
    queue_depth,
    rows,
    run_request_of,
    running_service,
    scalar,
    send_batch,
    service_env,
    wait_until,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

CLI = Path(sys.executable).with_name("metrics-orchestrator")
# Variables of the test runner's own environment that must not leak into a replica.
_SERVICE_PREFIXES = ("DATABASE_", "AWS_", "SNS_", "SQS_", "HTTP_", "API_TOKEN", "LOG_", "RUN_")
STREAM_DATASETS = ("reserves_daily", "fx_daily", "prices_monthly", "fx_mirror")


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def log_events(self) -> Counter[str]:
        """How many JSON log lines of each `event` this replica wrote."""
        counts: Counter[str] = Counter()
        for line in self.stderr.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                counts[json.loads(line).get("event", "")] += 1
        return counts

    def is_running(self) -> bool:
        return "running; Ctrl-C to stop" in self.stdout.read_text(encoding="utf-8")

    def describe(self) -> str:
        tail = self.stderr.read_text(encoding="utf-8", errors="replace")[-3000:]
        return f"exit={self.process.poll()} stdout={self.stdout.read_text()!r}\nstderr:\n{tail}"

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            pytest.fail(f"serve did not stop within {timeout} s of SIGTERM\n{self.describe()}")


def replica_environment(service: Mapping[str, str]) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    return {**inherited, **service, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """Started replicas are listed here; any still alive at teardown is killed."""
    started: list[ServeProcess] = []
    yield started
    for replica in started:
        if replica.process.poll() is None:
            replica.process.kill()
            replica.process.wait(10)


def spawn(
    started: list[ServeProcess], tmp_path: Path, name: str, env: Mapping[str, str]
) -> ServeProcess:
    stdout, stderr = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        # cwd: a directory without a `.env`, so only `env` configures the replica.
        process = subprocess.Popen(
            [str(CLI), "serve", "--no-http"],
            env=replica_environment(env),
            cwd=tmp_path,
            stdout=out,
            stderr=err,
        )
    replica = ServeProcess(process, stdout, stderr)
    started.append(replica)
    return replica


def wait_running(replicas: list[ServeProcess]) -> None:
    deadline = time.monotonic() + 30
    for replica in replicas:
        while not replica.is_running():
            if replica.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve did not start\n{replica.describe()}")
            time.sleep(0.1)


def stream(count: int) -> list[str]:
    """`count` distinct projection updates over four datasets, newest last."""
    base = datetime.now(UTC) - timedelta(hours=1)
    return [
        update_body(
            STREAM_DATASETS[n % len(STREAM_DATASETS)],
            f"s{n:04d}",
            occurred_at=base + timedelta(seconds=n),
        )
        for n in range(count)
    ]


def event_key(body: str) -> str:
    event = json.loads(body)
    return f"{event['dataset_id']}:{event['version_manifest_path']}"


# --- two replicas --------------------------------------------------------------------------

# moto 5.2's ReceiveMessage costs O(queue length) per message received (and SNS delivery
# O(length of the target queue)), so a queue holding 1,000 messages takes minutes to drain. The
# producer therefore streams (it keeps the backlog short, as a live upstream would) and a worker
# drains the worker queue as it fills. Neither changes what is being checked.
MAX_BACKLOG = 20
# The same holds for the worker queue: when the replicas queue and publish runs faster than the
# test's worker drains them (as they do since they acknowledge a receive with one
# DeleteMessageBatch), its backlog grows, each ReceiveMessage on it gets slower, and the drain
# rate collapses (docs/messaging.md, "Why batched acknowledgement was once reverted"). So the
# producer also waits while the worker queue is long: nothing is lost either way.
MAX_WORKER_BACKLOG = 100


def stream_to_queue(
    sqs: SQSClient, queue_url: str, bodies: list[str], *, downstream: str | None = None
) -> None:
    """SendMessageBatch in chunks of 10, waiting whenever a backlog is long."""
    for start in range(0, len(bodies), 10):
        deadline = time.monotonic() + 30
        while queue_depth(sqs, queue_url)[0] > MAX_BACKLOG or (
            downstream is not None and queue_depth(sqs, downstream)[0] > MAX_WORKER_BACKLOG
        ):
            if time.monotonic() > deadline:
                pytest.fail("the replicas or the worker stopped consuming their queue")
            time.sleep(0.02)
        send_batch(sqs, queue_url, bodies[start : start + 10])


class WorkerQueueTally:
    """Plays the worker: drains the worker queue, counting deliveries per (runId, attempt)."""

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self.published: Counter[tuple[str, int]] = Counter()
        self._sqs = sqs
        self._queue_url = queue_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="worker-tally", daemon=True)

    def __enter__(self) -> WorkerQueueTally:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def total(self) -> int:
        return sum(self.published.values())

    def _drain(self) -> None:
        while not self._stop.is_set():
            response = self._sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            messages = response.get("Messages", [])
            for request in map(run_request_of, messages):
                self.published[(request["runId"], request["attempt"])] += 1
            if messages:
                self._sqs.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                        for n, m in enumerate(messages)
                    ],
                )


@pytest.mark.slow
def test_two_replicas_process_a_stream_of_1000_updates_without_loss_or_double_publish(
    database_url: str,
    aws_endpoint_url: str,
    sqs_client: SQSClient,
    topology: Topology,
    catalog_path: Path,
    tmp_path: Path,
    start_serve: list[ServeProcess],
) -> None:
    env = service_env(database_url, aws_endpoint_url, topology)
    load_catalog(env, catalog_path)
    replicas = [spawn(start_serve, tmp_path, f"replica{n}", env) for n in (1, 2)]
    wait_running(replicas)
    bodies = stream(1000)

    with WorkerQueueTally(sqs_client, topology.worker_queue.url) as tally:
        stream_to_queue(
            sqs_client,
            topology.projection_update_queue.url,
            bodies,
            downstream=topology.worker_queue.url,
        )
        wait_until(
            lambda: processed_updates(database_url) == 1000,
            timeout=75,
            what="all 1,000 updates to be processed",
            interval=0.5,
        )
        wait_until(
            lambda: (
                count_runs(database_url, "queued") == 0
                and tally.total() == count_runs(database_url, "dispatched")
            ),
            timeout=30,
            what="every queued run to be published and delivered",
            interval=0.5,
        )
    exit_codes = [replica.terminate() for replica in replicas]

    assert exit_codes == [0, 0], [r.describe() for r in replicas]
    # No event lost, none processed twice. SQS delivers at least once (and moto's ReceiveMessage
    # can hand one message to two replicas polling at the same instant): a second copy must be
    # recorded as a duplicate of a processed event, with no effect of its own.
    statuses = dict(rows(database_url, "SELECT status, count(*) FROM event_log GROUP BY 1"))
    assert statuses.pop("processed") == 1000
    assert set(statuses) <= {"duplicate"}
    unexplained = scalar(
        database_url,
        "SELECT count(*) FROM event_log d WHERE d.status = 'duplicate' AND NOT EXISTS"
        " (SELECT 1 FROM event_log p WHERE p.event_key = d.event_key AND p.status = 'processed')",
    )
    assert unexplained == 0
    keys = {k for (k,) in rows(database_url, "SELECT event_key FROM dataset_updates")}
    assert keys == {event_key(body) for body in bodies}
    assert queue_depth(sqs_client, topology.projection_update_queue.url) == (0, 0)
    assert queue_depth(sqs_client, topology.projection_update_dlq.url) == (0, 0)
    # No run published twice: one worker-queue message per (runId, attempt) of a dispatched run.
    dispatched = {
        (str(run_id), attempt)
        for run_id, attempt in rows(
            database_url, "SELECT id, attempt FROM metric_runs WHERE status = 'dispatched'"
        )
    }
    assert len(dispatched) > 250
    assert set(tally.published) == dispatched
    assert max(tally.published.values()) == 1
    # Both replicas took part, and their dispatch logs add up to the published runs.
    logs = [replica.log_events() for replica in replicas]
    assert all(log["ON_PROJECTION_UPDATE"] > 0 for log in logs), logs
    assert sum(log["ON_RUN_DISPATCHED"] for log in logs) == len(dispatched)
    assert lineage_matches_payloads(database_url)


def processed_updates(database_url: str) -> int:
    return int(scalar(database_url, "SELECT count(*) FROM event_log WHERE status = 'processed'"))


def lineage_matches_payloads(database_url: str) -> bool:
    """Every published run's `catalog` names exactly the updates recorded as its lineage."""
    mismatched = scalar(
        database_url,
        """
        SELECT count(*) FROM metric_runs r
        WHERE r.status <> 'pending_dependencies'
          AND (SELECT coalesce(array_agg(l.update_id::text ORDER BY l.update_id::text), '{}')
                 FROM run_dataset_updates l WHERE l.run_id = r.id)
           <> (SELECT coalesce(array_agg(d.value ->> 'updateId' ORDER BY d.value ->> 'updateId'),
                               '{}')
                 FROM jsonb_each(r.request_payload -> 'catalog' -> 'datasets') d)
        """,
    )
    return int(mismatched) == 0


# --- SIGTERM -------------------------------------------------------------------------------


def test_sigterm_during_a_batch_finishes_in_flight_messages_loses_nothing_and_exits_0(
    database_url: str,
    aws_endpoint_url: str,
    sqs_client: SQSClient,
    topology: Topology,
    catalog_path: Path,
    tmp_path: Path,
    start_serve: list[ServeProcess],
) -> None:
    # A long visibility timeout: a message abandoned mid-batch would stay "in flight" for it.
    env = service_env(database_url, aws_endpoint_url, topology, SQS_VISIBILITY_TIMEOUT="300")
    load_catalog(env, catalog_path)
    (replica,) = [spawn(start_serve, tmp_path, "replica", env)]
    wait_running([replica])
    bodies = stream(60)
    queue = topology.projection_update_queue.url

    send_batch(sqs_client, queue, bodies)
    wait_until(
        lambda: scalar(database_url, "SELECT count(*) FROM event_log") >= 10,
        timeout=20,
        what="processing to be under way",
        interval=0.02,
    )
    exit_code = replica.terminate()

    assert exit_code == 0, replica.describe()
    events = replica.log_events()
    assert events["ON_CONSUMER_ERROR"] == 0, replica.describe()
    processed = {k for (k,) in rows(database_url, "SELECT event_key FROM event_log")}
    assert 10 <= len(processed) < len(bodies), "SIGTERM came after the whole batch was done"
    # Nothing was left half-handled: no message is hidden in flight, none went to the DLQ.
    assert queue_depth(sqs_client, queue)[1] == 0
    assert queue_depth(sqs_client, topology.projection_update_dlq.url) == (0, 0)
    left = len(bodies) - len(processed)
    remaining = receive_messages(sqs_client, queue, left, timeout=10, delete=False)
    remaining_keys = {event_key(m["Body"]) for m in remaining}
    assert len(remaining) == len(remaining_keys)
    assert processed.isdisjoint(remaining_keys)
    assert processed | remaining_keys == {event_key(body) for body in bodies}

    # The messages left are the originals, and simply processed by the next replica.
    make_visible_again(sqs_client, queue, remaining)
    with running_service(env, ServeParts(dispatcher=False, sweeper=False, http=False)):
        wait_until(
            lambda: scalar(database_url, "SELECT count(*) FROM event_log") == len(bodies),
            timeout=30,
            what="the remaining updates to be processed after restart",
        )
    assert rows(database_url, "SELECT status, count(*) FROM event_log GROUP BY 1") == [
        ("processed", len(bodies))
    ]


def make_visible_again(sqs: SQSClient, queue_url: str, messages: list[MessageTypeDef]) -> None:
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        response = sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for n, m in enumerate(chunk)
            ],
        )
        assert not response.get("Failed"), response.get("Failed")
