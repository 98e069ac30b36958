"""Failure injection (SPEC §5.4, §5.8): SNS down, a crash between publish and mark, database down.

Everything runs against the session's moto server and a real PostgreSQL database. Failures are
injected without patching any client: a topic that does not exist yet, botocore event hooks on a
real client (`before-send` to fail calls, `after-call` to "die" once SNS accepted a batch), and
`ALTER DATABASE ... ALLOW_CONNECTIONS false` plus `pg_terminate_backend` for an outage.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from botocore.exceptions import EndpointConnectionError
from psycopg.conninfo import conninfo_to_dict

from metrics_orchestrator.application.dispatch import Dispatcher
from metrics_orchestrator.bootstrap import Container
from metrics_orchestrator.infrastructure.aws.clients import create_sns_client
from metrics_orchestrator.infrastructure.aws.provisioning import Topology
from metrics_orchestrator.infrastructure.aws.sns import SnsRunRequestPublisher
from metrics_orchestrator.interfaces.runtime import Loop, ServeParts, ServiceRuntime
from tests.aws_fixtures import AWS_REGION, TopologyFactory, receive_messages
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
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

NO_DISPATCHER = ServeParts(dispatcher=False, sweeper=False, http=False)


def run_state(database_url: str) -> list[tuple[Any, ...]]:
    """(id, attempt, status, dispatch_attempts) of every run that got past waiting for inputs."""
    return rows(
        database_url,
        "SELECT id, attempt, status, dispatch_attempts FROM metric_runs"
        " WHERE status <> 'pending_dependencies' ORDER BY created_at",
    )


def published_keys(sqs: SQSClient, queue_url: str, expected: int) -> Counter[tuple[str, int]]:
    """How many times each (runId, attempt) reached the worker queue."""
    messages = receive_messages(sqs, queue_url, expected, timeout=10)
    requests = [run_request_of(m) for m in messages]
    return Counter((r["runId"], r["attempt"]) for r in requests)


def dispatcher_on(container: Container, sns: SNSClient, topic_arn: str) -> Dispatcher:
    """What `build_dispatcher` builds, on a client of our own (which the test may hook)."""
    return Dispatcher(
        container.uow_factory,
        SnsRunRequestPublisher(sns, topic_arn, base_delay=0.01),
        container.clock,
        max_attempts=10,
        backoff_base=timedelta(milliseconds=300),
        poll_interval=timedelta(milliseconds=200),
    )


def queue_one_run(container: Container, database_url: str) -> None:
    """reserves_daily v1 queues exactly one run (reserves.sma_20), the way a consumer would."""
    container.router.handle(update_body("reserves_daily", "v1"), source="test")
    assert [status for _, _, status, _ in run_state(database_url)] == ["queued"]


# --- SNS unavailable -------------------------------------------------------------------------


def test_runs_stay_queued_while_the_topic_is_missing_and_are_published_once_it_exists(
    database_url: str,
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
    make_topology: TopologyFactory,
    catalog_path: Path,
) -> None:
    topology = make_topology(fifo=False, raw_delivery=True)
    # Same account and region as the real topic, but a name nobody created (yet).
    topic_name = f"late-{uuid.uuid4().hex[:10]}"
    late_topic_arn = topology.topic_arn.rsplit(":", 1)[0] + f":{topic_name}"
    env = service_env(
        database_url,
        aws_endpoint_url,
        topology,
        SNS_RUN_REQUEST_TOPIC_ARN=late_topic_arn,
        DISPATCH_MAX_ATTEMPTS="10",
    )
    load_catalog(env, catalog_path)

    with running_service(env):
        send_batch(
            sqs_client,
            topology.projection_update_queue.url,
            [update_body("reserves_daily", "v1"), update_body("fx_daily", "v1")],
        )
        # sma_20 (reserves), fx.gap (fx) and at_parallel (both) are queued and cannot be published.
        wait_until(
            lambda: queued_after_failed_publishes(database_url, failures=2) == 3,
            timeout=15,
            what="three runs that failed to publish twice",
        )
        errors = rows(
            database_url,
            "SELECT DISTINCT last_dispatch_error FROM metric_runs WHERE status = 'queued'",
        )
        assert len(errors) == 1
        assert "Topic does not exist" in errors[0][0]

        created = sns_client.create_topic(Name=topic_name)["TopicArn"]
        assert created == late_topic_arn
        sns_client.subscribe(
            TopicArn=created,
            Protocol="sqs",
            Endpoint=topology.worker_queue.arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        wait_until(
            lambda: count_runs(database_url, "dispatched") == 3,
            timeout=20,
            what="the runs to be published after SNS recovered",
        )

    published = published_keys(sqs_client, topology.worker_queue.url, 3)
    runs = run_state(database_url)
    assert published == Counter({(str(run_id), 1): 1 for run_id, _, _, _ in runs})
    assert all(status == "dispatched" and tries >= 3 for _, _, status, tries in runs)


def queued_after_failed_publishes(database_url: str, *, failures: int) -> int:
    return int(
        scalar(
            database_url,
            "SELECT count(*) FROM metric_runs WHERE status = 'queued' AND dispatch_attempts >= %s",
            failures,
        )
    )


class FailingCalls:
    """A `before-send` hook: the first `failures` matching calls never reach the server."""

    def __init__(self, failures: int) -> None:
        self.remaining = failures
        self.calls = 0

    def __call__(self, request: Any, **_: Any) -> None:
        self.calls += 1
        if self.remaining > 0:
            self.remaining -= 1
            raise EndpointConnectionError(endpoint_url=str(request.url))


def test_a_flaky_sns_connection_keeps_the_run_queued_until_a_publish_gets_through(
    database_url: str,
    aws_endpoint_url: str,
    sqs_client: SQSClient,
    topology: Topology,
    catalog_path: Path,
) -> None:
    env = service_env(database_url, aws_endpoint_url, topology)
    load_catalog(env, catalog_path)
    sns = create_sns_client(AWS_REGION, aws_endpoint_url)
    # One dispatch attempt makes 1 + 3 publisher retries: five failures outlast the first.
    outage = FailingCalls(failures=5)
    sns.meta.events.register("before-send.sns.PublishBatch", outage)

    with running_service(env, NO_DISPATCHER) as (container, _):
        queue_one_run(container, database_url)
        dispatcher = dispatcher_on(container, sns, topology.topic_arn)
        first = dispatcher.dispatch_once()
        assert (first.published, first.failed) == (0, 1)
        ((run_id, _, status, tries),) = run_state(database_url)
        assert (status, tries) == ("queued", 1)

        loop = ServiceRuntime([Loop("dispatcher", dispatcher.run)])
        loop.start()
        try:
            wait_until(
                lambda: count_runs(database_url, "dispatched") == 1,
                timeout=10,
                what="the run to be published once the connection works",
            )
        finally:
            assert loop.stop(timeout=10)

    assert outage.remaining == 0
    assert outage.calls == 6
    assert run_state(database_url) == [(run_id, 1, "dispatched", 2)]
    assert published_keys(sqs_client, topology.worker_queue.url, 1) == {(str(run_id), 1): 1}


# --- a crash between publish and mark -------------------------------------------------------


class SimulatedCrash(BaseException):
    """Not an Exception: nothing in the service catches it, as nothing survives a SIGKILL."""


class DieAfterPublish:
    """An `after-call` hook: SNS accepted the batch, then the process "dies" before marking."""

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, **_: Any) -> None:
        if not self.fired:
            self.fired = True
            raise SimulatedCrash


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_crash_after_publishing_republishes_the_same_run_and_attempt_and_nothing_else(
    fifo: bool,
    database_url: str,
    aws_endpoint_url: str,
    sqs_client: SQSClient,
    make_topology: TopologyFactory,
    catalog_path: Path,
) -> None:
    topology = make_topology(fifo=fifo, raw_delivery=True)
    env = service_env(database_url, aws_endpoint_url, topology)
    load_catalog(env, catalog_path)
    doomed_client = create_sns_client(AWS_REGION, aws_endpoint_url)
    crash = DieAfterPublish()
    doomed_client.meta.events.register("after-call.sns.PublishBatch", crash)

    with running_service(env, NO_DISPATCHER) as (container, _):
        queue_one_run(container, database_url)
        before = run_state(database_url)
        doomed = dispatcher_on(container, doomed_client, topology.topic_arn)
        with pytest.raises(SimulatedCrash):
            doomed.dispatch_once()
        assert crash.fired
        # The claim rolled back with the "process": the run is queued as if never touched.
        assert run_state(database_url) == before

        restarted = dispatcher_on(
            container, create_sns_client(AWS_REGION, aws_endpoint_url), topology.topic_arn
        )
        assert restarted.dispatch_once().published == 1
        assert restarted.dispatch_once().claimed == 0

    ((run_id, attempt, status, tries),) = run_state(database_url)
    assert (attempt, status, tries) == (1, "dispatched", 1)
    messages = receive_messages(sqs_client, topology.worker_queue.url, 2, timeout=1.5)
    bodies = {m["Body"] for m in messages}
    # The same stored payload both times: same runId, same attempt, byte for byte.
    assert len(bodies) == 1
    assert {(r["runId"], r["attempt"]) for r in map(run_request_of, messages)} == {(str(run_id), 1)}
    # Standard SNS delivers the duplicate (workers absorb it); FIFO deduplicates on runId:attempt.
    assert len(messages) == (1 if fifo else 2)


# --- database unavailable -------------------------------------------------------------------


@contextmanager
def database_outage(server_url: str, database_url: str) -> Iterator[None]:
    """Refuse new connections to the test database and cut the open ones; restore on exit."""
    name = conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_messages_consumed_while_the_database_is_down_are_kept_and_processed_after(
    database_url: str,
    postgres_server_url: str,
    aws_endpoint_url: str,
    sqs_client: SQSClient,
    topology: Topology,
    catalog_path: Path,
) -> None:
    # A short visibility timeout: a message whose handler failed is redelivered within seconds.
    env = service_env(database_url, aws_endpoint_url, topology, SQS_VISIBILITY_TIMEOUT="2")
    load_catalog(env, catalog_path)
    queue = topology.projection_update_queue.url
    versions = [f"v{n:02d}" for n in range(12)]

    with running_service(env):
        send_batch(sqs_client, queue, [update_body("reserves_daily", "v-before")])
        wait_until(
            lambda: count_runs(database_url, "dispatched") == 1,
            timeout=10,
            what="the service to work before the outage",
        )
        with database_outage(postgres_server_url, database_url):
            send_batch(sqs_client, queue, [update_body("reserves_daily", v) for v in versions])
            depths = sample_queue_depth(sqs_client, queue, seconds=3.0)
            assert {visible + in_flight for visible, in_flight in depths} == {len(versions)}
            assert any(in_flight > 0 for _, in_flight in depths), "nothing was even received"
        wait_until(
            lambda: (
                queue_depth(sqs_client, queue) == (0, 0)
                and count_runs(database_url, "dispatched") == 1 + len(versions)
            ),
            timeout=30,
            what="every kept message to be processed once the database is back",
        )

    manifests = {
        path.split("/")[-2]
        for (path,) in rows(database_url, "SELECT version_manifest_path FROM dataset_updates")
    }
    assert manifests == {"v-before", *versions}
    assert rows(database_url, "SELECT status, count(*) FROM event_log GROUP BY 1") == [
        ("processed", 1 + len(versions))
    ]
    assert queue_depth(sqs_client, topology.projection_update_dlq.url) == (0, 0)
    published = published_keys(sqs_client, topology.worker_queue.url, 1 + len(versions))
    assert sorted(published.values()) == [1] * (1 + len(versions))


def sample_queue_depth(sqs: SQSClient, queue_url: str, *, seconds: float) -> list[tuple[int, int]]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(queue_depth(sqs, queue_url))
        time.sleep(0.2)
    return samples
