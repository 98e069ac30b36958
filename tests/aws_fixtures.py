"""AWS fixtures: one in-process moto server per session, spoken to over real HTTP.

Tests use real boto3 clients pointed at the server, never patched clients or `mock_aws`, so
what they exercise is what production sends over the wire. moto's state is shared by the
whole session: every test provisions its own resources under a unique prefix.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from metrics_orchestrator.infrastructure.aws.clients import (
    create_s3_client,
    create_sns_client,
    create_sqs_client,
)
from metrics_orchestrator.infrastructure.aws.moto_server import MotoServer, start_moto_server
from metrics_orchestrator.infrastructure.aws.provisioning import Topology, provision

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

AWS_REGION = "us-east-1"

TopologyFactory = Callable[..., Topology]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def aws_endpoint_url(moto_server: MotoServer) -> str:
    return moto_server.endpoint_url


@pytest.fixture(scope="session")
def sns_client(aws_endpoint_url: str) -> SNSClient:
    return create_sns_client(AWS_REGION, aws_endpoint_url)


@pytest.fixture(scope="session")
def sqs_client(aws_endpoint_url: str) -> SQSClient:
    return create_sqs_client(AWS_REGION, aws_endpoint_url)


@pytest.fixture(scope="session")
def s3_client(aws_endpoint_url: str) -> S3Client:
    return create_s3_client(AWS_REGION, aws_endpoint_url)


@pytest.fixture
def aws_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_topology(sns_client: SNSClient, sqs_client: SQSClient, aws_prefix: str) -> TopologyFactory:
    """`make_topology(fifo=False, raw_delivery=True)`: a fresh topic and queues for this test."""
    counter = iter(range(1000))

    def make(*, fifo: bool = False, raw_delivery: bool = True) -> Topology:
        prefix = f"{aws_prefix}-{next(counter)}"
        return provision(
            sns_client, sqs_client, prefix=prefix, fifo=fifo, raw_delivery=raw_delivery
        )

    return make


@pytest.fixture
def topology(make_topology: TopologyFactory) -> Topology:
    """A standard topic with a raw-delivery worker queue."""
    return make_topology(fifo=False, raw_delivery=True)


def receive_messages(
    sqs: SQSClient,
    queue_url: str,
    count: int,
    *,
    timeout: float = 5.0,
    delete: bool = True,
) -> list[MessageTypeDef]:
    """Receive until `count` messages arrived (or `timeout`), then wait briefly for extras."""
    received: list[MessageTypeDef] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(received) >= count:
            # One short extra poll: tests that expect exactly `count` must see any surplus.
            deadline = min(deadline, time.monotonic() + 0.3)
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        batch = response.get("Messages", [])
        for message in batch:
            received.append(message)
            if delete:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not batch:
            time.sleep(0.05)
    return received
