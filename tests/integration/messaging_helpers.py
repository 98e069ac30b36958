"""Helpers shared by the messaging acceptance suites: a `serve` replica's environment, the
service loops run in-process, SQS sends and queue depths, and quick SQL reads."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import yaml

from metrics_orchestrator.bootstrap import Container, bootstrap, resolve_aws
from metrics_orchestrator.infrastructure.aws.provisioning import Topology
from metrics_orchestrator.infrastructure.settings import Settings, load_settings
from metrics_orchestrator.interfaces.runtime import ServeParts, ServiceRuntime, build_runtime
from tests.aws_fixtures import AWS_REGION

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef


def service_env(
    database_url: str, endpoint_url: str, topology: Topology, **overrides: str
) -> dict[str, str]:
    """The environment of a `serve` replica on this topology, with test-sized timings."""
    env = {
        "DATABASE_URL": database_url,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": AWS_REGION,
        "SNS_RUN_REQUEST_TOPIC_ARN": topology.topic_arn,
        "SQS_PROJECTION_UPDATE_QUEUE_URL": topology.projection_update_queue.url,
        "SQS_RUN_FEEDBACK_QUEUE_URLS": topology.run_feedback_queue.url,
        "SQS_WAIT_SECONDS": "1",
        "SQS_VISIBILITY_TIMEOUT": "30",
        "DISPATCH_POLL_INTERVAL": "0.2",
        "SWEEP_INTERVAL": "0.3",
        "LOG_LEVEL": "WARNING",
    }
    return {**env, **overrides}


@contextmanager
def running_service(
    env: Mapping[str, str], parts: ServeParts | None = None
) -> Iterator[tuple[Container, ServiceRuntime]]:
    """The loops of `serve --no-http`, started in this process; stopped (cleanly) on exit."""
    settings = load_settings(env=env)
    with ExitStack() as resources:
        container = resources.enter_context(bootstrap(settings, database_url=env["DATABASE_URL"]))
        aws = resolve_aws(settings, resources)
        runtime = build_runtime(container, aws, parts or ServeParts(http=False))
        runtime.start()
        try:
            yield container, runtime
        finally:
            assert runtime.stop(timeout=30), "a service loop crashed or did not stop"


def load_catalog(settings_env: Mapping[str, str], catalog_path: Path) -> None:
    settings: Settings = load_settings(env=settings_env)
    document = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    with bootstrap(settings, database_url=settings_env["DATABASE_URL"]) as container:
        container.catalog.load_catalog(document)


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def rows(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(database_url: str, sql: str, *params: object) -> Any:
    return rows(database_url, sql, *params)[0][0]


def send_batch(sqs: SQSClient, queue_url: str, bodies: Sequence[str]) -> None:
    """SendMessageBatch in chunks of 10; fails the test if any entry is refused."""
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        response = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)],
        )
        assert not response.get("Failed"), response.get("Failed")


def queue_depth(sqs: SQSClient, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) message counts."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def run_request_of(message: MessageTypeDef) -> dict[str, Any]:
    """The §4.3 body of a worker-queue message, raw or in an SNS envelope."""
    document: dict[str, Any] = json.loads(message["Body"])
    if document.get("Type") == "Notification":
        inner: dict[str, Any] = json.loads(document["Message"])
        return inner
    return document


def count_runs(database_url: str, status: str) -> int:
    return int(scalar(database_url, "SELECT count(*) FROM metric_runs WHERE status = %s", status))
