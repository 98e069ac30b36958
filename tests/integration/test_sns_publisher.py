"""SnsRunRequestPublisher against the moto server, delivered to subscribed SQS queues."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders

from metrics_orchestrator.application.ports.dispatch import RunRequestMessage
from metrics_orchestrator.infrastructure.aws.clients import create_sns_client
from metrics_orchestrator.infrastructure.aws.provisioning import Topology
from metrics_orchestrator.infrastructure.aws.sns import SnsRunRequestPublisher
from tests.aws_fixtures import AWS_REGION, TopologyFactory, receive_messages

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient


def run_request(
    metric_code: str = "ratio.a_to_b", attempt: int = 1, **extra: Any
) -> RunRequestMessage:
    run_id = uuid.uuid4()
    payload = {
        "type": "metric_run_requested",
        "schema": "1",
        "runId": str(run_id),
        "attempt": attempt,
        "metricCode": metric_code,
        "inputs": [{"datasetId": "d1", "seriesCode": "A"}],
        **extra,
    }
    return RunRequestMessage(
        run_id=run_id, attempt=attempt, metric_code=metric_code, payload=payload
    )


def test_standard_topic_raw_delivery_carries_payload_and_attributes(
    sns_client: SNSClient, sqs_client: SQSClient, topology: Topology
) -> None:
    messages = [run_request("m.one"), run_request("m.two"), run_request("m.one")]
    publisher = SnsRunRequestPublisher(sns_client, topology.topic_arn)

    outcomes = publisher.publish_batch(messages)

    assert [(o.run_id, o.ok, o.error) for o in outcomes] == [
        (m.run_id, True, None) for m in messages
    ]
    received = receive_messages(sqs_client, topology.worker_queue.url, 3)
    bodies = sorted((json.loads(r["Body"]) for r in received), key=lambda b: b["runId"])
    assert bodies == sorted((m.payload for m in messages), key=lambda p: p["runId"])
    by_run = {json.loads(r["Body"])["runId"]: r["MessageAttributes"] for r in received}
    for message in messages:
        attributes = by_run[str(message.run_id)]
        assert attributes["type"] == {"DataType": "String", "StringValue": "metric_run_requested"}
        assert attributes["metricCode"] == {
            "DataType": "String",
            "StringValue": message.metric_code,
        }


def test_enveloped_delivery_wraps_the_payload_in_an_sns_notification(
    sns_client: SNSClient, sqs_client: SQSClient, make_topology: TopologyFactory
) -> None:
    topology = make_topology(fifo=False, raw_delivery=False)
    message = run_request("m.enveloped")

    [outcome] = SnsRunRequestPublisher(sns_client, topology.topic_arn).publish_batch([message])

    assert outcome.ok
    [received] = receive_messages(sqs_client, topology.worker_queue.url, 1)
    envelope = json.loads(received["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["TopicArn"] == topology.topic_arn
    assert json.loads(envelope["Message"]) == message.payload
    assert envelope["MessageAttributes"]["type"] == {
        "Type": "String",
        "Value": "metric_run_requested",
    }
    assert envelope["MessageAttributes"]["metricCode"] == {"Type": "String", "Value": "m.enveloped"}


def test_fifo_topic_sets_group_and_deduplication_ids(
    sns_client: SNSClient, sqs_client: SQSClient, make_topology: TopologyFactory
) -> None:
    topology = make_topology(fifo=True, raw_delivery=True)
    assert topology.topic_arn.endswith(".fifo")
    messages = [run_request("m.fifo_a", attempt=1), run_request("m.fifo_b", attempt=2)]

    outcomes = SnsRunRequestPublisher(sns_client, topology.topic_arn).publish_batch(messages)

    assert all(o.ok for o in outcomes), outcomes
    received = receive_messages(sqs_client, topology.worker_queue.url, 2)
    system = {
        json.loads(r["Body"])["runId"]: (
            r["Attributes"]["MessageGroupId"],
            r["Attributes"]["MessageDeduplicationId"],
        )
        for r in received
    }
    assert system == {str(m.run_id): (m.metric_code, f"{m.run_id}:{m.attempt}") for m in messages}


def test_more_than_ten_messages_are_split_into_batches_of_ten(
    aws_endpoint_url: str, sqs_client: SQSClient, topology: Topology
) -> None:
    client = create_sns_client(AWS_REGION, aws_endpoint_url)
    batch_sizes: list[int] = []

    def count_entries(params: dict[str, Any], **_: Any) -> None:
        batch_sizes.append(len(params["PublishBatchRequestEntries"]))

    client.meta.events.register("provide-client-params.sns.PublishBatch", count_entries)
    messages = [run_request(f"m.split_{i}") for i in range(23)]

    outcomes = SnsRunRequestPublisher(client, topology.topic_arn).publish_batch(messages)

    assert [o.run_id for o in outcomes] == [m.run_id for m in messages]
    assert all(o.ok for o in outcomes)
    assert batch_sizes == [10, 10, 3]
    received = receive_messages(sqs_client, topology.worker_queue.url, 23)
    assert {json.loads(r["Body"])["runId"] for r in received} == {str(m.run_id) for m in messages}
    assert len(received) == 23


def test_a_rejected_entry_fails_alone(
    sns_client: SNSClient, sqs_client: SQSClient, topology: Topology
) -> None:
    too_long = run_request("m.too_long", blob="x" * (256 * 1024))
    fine = [run_request("m.fine_1"), run_request("m.fine_2")]

    outcomes = SnsRunRequestPublisher(sns_client, topology.topic_arn).publish_batch(
        [fine[0], too_long, fine[1]]
    )

    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].run_id == too_long.run_id
    assert outcomes[1].error is not None
    assert "too long" in outcomes[1].error
    received = receive_messages(sqs_client, topology.worker_queue.url, 2)
    assert {json.loads(r["Body"])["runId"] for r in received} == {str(m.run_id) for m in fine}


def test_a_message_without_metric_code_fails_without_sinking_the_batch(
    sns_client: SNSClient, sqs_client: SQSClient, topology: Topology
) -> None:
    good, nameless = run_request("m.good"), run_request("")

    outcomes = SnsRunRequestPublisher(sns_client, topology.topic_arn).publish_batch(
        [nameless, good]
    )

    assert [o.ok for o in outcomes] == [False, True]
    assert outcomes[0].error == "message has no metric code"
    assert len(receive_messages(sqs_client, topology.worker_queue.url, 1)) == 1


def test_unknown_topic_fails_every_message_without_retrying(
    aws_endpoint_url: str, topology: Topology
) -> None:
    client = create_sns_client(AWS_REGION, aws_endpoint_url)
    calls = CallCounter(client)
    missing_arn = topology.topic_arn + "-missing"
    messages = [run_request(), run_request()]

    outcomes = SnsRunRequestPublisher(client, missing_arn).publish_batch(messages)

    assert [o.ok for o in outcomes] == [False, False]
    assert all(o.error is not None and "NotFound" in o.error for o in outcomes)
    assert calls.count == 1


# --- retries: a botocore `before-send` hook answers some calls as AWS would under load --------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _aws_response(request: AWSPreparedRequest, status: int, body: str) -> AWSResponse:
    return AWSResponse(request.url, status, HTTPHeaders(), _Raw(body.encode()))


THROTTLED = """<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>
<RequestId>throttled</RequestId></ErrorResponse>"""

FIRST_OK_SECOND_INTERNAL_ERROR = """<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
<PublishBatchResult>
<Successful><member><Id>m0</Id><MessageId>fake-0</MessageId></member></Successful>
<Failed><member><Id>m1</Id><Code>InternalError</Code><Message>try again</Message>
<SenderFault>false</SenderFault></member></Failed>
</PublishBatchResult>
<ResponseMetadata><RequestId>partial</RequestId></ResponseMetadata></PublishBatchResponse>"""


class CallCounter:
    """Counts PublishBatch HTTP requests; answers the first `canned` of them itself."""

    def __init__(self, client: SNSClient, canned: list[tuple[int, str]] | None = None) -> None:
        self.count = 0
        self.bodies: list[str] = []
        self._canned = list(canned or [])
        # A before-send handler may return a response (the stubs say None only).
        handler = cast(Callable[..., None], self._before_send)
        client.meta.events.register("before-send.sns.PublishBatch", handler)

    def _before_send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        self.count += 1
        body = request.body
        self.bodies.append(body.decode() if isinstance(body, bytes) else str(body))
        if self._canned:
            status, text = self._canned.pop(0)
            return _aws_response(request, status, text)
        return None


@pytest.fixture
def fresh_sns_client(aws_endpoint_url: str) -> SNSClient:
    return create_sns_client(AWS_REGION, aws_endpoint_url)


def test_throttled_call_is_retried_with_backoff(
    fresh_sns_client: SNSClient, sqs_client: SQSClient, topology: Topology
) -> None:
    calls = CallCounter(fresh_sns_client, canned=[(400, THROTTLED), (503, THROTTLED)])
    sleeps: list[float] = []
    publisher = SnsRunRequestPublisher(
        fresh_sns_client, topology.topic_arn, base_delay=0.05, sleep=sleeps.append
    )
    message = run_request("m.throttled")

    [outcome] = publisher.publish_batch([message])

    assert outcome.ok
    assert calls.count == 3
    assert sleeps == [0.05, 0.1]
    assert len(receive_messages(sqs_client, topology.worker_queue.url, 1)) == 1


def test_only_failed_entries_are_retried(
    fresh_sns_client: SNSClient, sqs_client: SQSClient, topology: Topology
) -> None:
    calls = CallCounter(fresh_sns_client, canned=[(200, FIRST_OK_SECOND_INTERNAL_ERROR)])
    first, second = run_request("m.first"), run_request("m.second")
    publisher = SnsRunRequestPublisher(fresh_sns_client, topology.topic_arn, sleep=lambda _: None)

    outcomes = publisher.publish_batch([first, second])

    assert [o.ok for o in outcomes] == [True, True]
    assert calls.count == 2
    assert str(second.run_id) in calls.bodies[1]
    assert str(first.run_id) not in calls.bodies[1]
    [received] = receive_messages(sqs_client, topology.worker_queue.url, 1)
    assert json.loads(received["Body"])["runId"] == str(second.run_id)


def test_retries_are_bounded(fresh_sns_client: SNSClient, topology: Topology) -> None:
    calls = CallCounter(fresh_sns_client, canned=[(400, THROTTLED)] * 10)
    publisher = SnsRunRequestPublisher(
        fresh_sns_client, topology.topic_arn, max_retries=2, sleep=lambda _: None
    )

    [outcome] = publisher.publish_batch([run_request()])

    assert not outcome.ok
    assert outcome.error is not None
    assert "Throttling" in outcome.error
    assert calls.count == 3
