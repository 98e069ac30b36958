"""SqsConsumer against queues on the moto server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import pytest

from metrics_orchestrator.infrastructure.aws.provisioning import (
    MAX_RECEIVE_COUNT,
    Topology,
    provision,
)
from metrics_orchestrator.infrastructure.aws.sqs import (
    DELETE_ATTEMPTS,
    Delivery,
    Disposition,
    SqsConsumer,
)
from tests.aws_fixtures import receive_messages
from tests.integration.messaging_helpers import queue_depth

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient


@pytest.fixture
def queue_url(sqs_client: SQSClient, aws_prefix: str) -> str:
    return sqs_client.create_queue(QueueName=f"{aws_prefix}-consumer")["QueueUrl"]


def send(sqs: SQSClient, queue_url: str, *bodies: str) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, body: str, message_id: str) -> None:
        self.calls.append((body, message_id))


def test_messages_are_deleted_only_after_the_handler_returned(
    sqs_client: SQSClient, queue_url: str
) -> None:
    send(sqs_client, queue_url, "a", "b", "c")
    depth_during_handling: list[tuple[int, int]] = []

    def handler(body: str, message_id: str) -> None:
        depth_during_handling.append(queue_depth(sqs_client, queue_url))

    consumer = SqsConsumer(sqs_client, queue_url, handler, wait_seconds=1)

    handled = 0
    while handled < 3:
        handled += consumer.poll_once()

    assert handled == 3
    # While the first message is handled, nothing of the batch has been deleted yet.
    assert depth_during_handling[0][0] + depth_during_handling[0][1] == 3
    assert queue_depth(sqs_client, queue_url) == (0, 0)


def test_handler_receives_body_and_message_id(sqs_client: SQSClient, queue_url: str) -> None:
    sent = sqs_client.send_message(QueueUrl=queue_url, MessageBody='{"x": 1}')
    recorder = Recorder()

    assert SqsConsumer(sqs_client, queue_url, recorder, wait_seconds=1).poll_once() == 1

    assert recorder.calls == [('{"x": 1}', sent["MessageId"])]


def test_failed_message_is_not_deleted_and_comes_back_after_its_visibility_timeout(
    sqs_client: SQSClient, queue_url: str
) -> None:
    send(sqs_client, queue_url, "poison", "fine")
    attempts: list[str] = []

    def handler(body: str, message_id: str) -> None:
        attempts.append(body)
        if body == "poison":
            raise RuntimeError("database unavailable")

    consumer = SqsConsumer(sqs_client, queue_url, handler, wait_seconds=1, visibility_timeout=1)
    while len(attempts) < 2:
        consumer.poll_once()

    assert sorted(attempts) == ["fine", "poison"]
    assert queue_depth(sqs_client, queue_url) == (0, 1)
    deadline = time.monotonic() + 5
    while attempts.count("poison") < 2 and time.monotonic() < deadline:
        consumer.poll_once()
    assert attempts.count("poison") == 2
    assert attempts.count("fine") == 1


def test_a_batch_holds_at_most_batch_size_messages(sqs_client: SQSClient, queue_url: str) -> None:
    send(sqs_client, queue_url, *(f"m{i}" for i in range(7)))
    recorder = Recorder()
    consumer = SqsConsumer(sqs_client, queue_url, recorder, batch_size=3, wait_seconds=1)

    sizes = []
    while len(recorder.calls) < 7:
        sizes.append(consumer.poll_once())

    assert max(sizes) <= 3
    assert sorted(body for body, _ in recorder.calls) == [f"m{i}" for i in range(7)]
    assert consumer.poll_once() == 0


def test_ten_messages_arrive_in_one_receive(sqs_client: SQSClient, queue_url: str) -> None:
    send(sqs_client, queue_url, *(f"m{i}" for i in range(12)))
    recorder = Recorder()
    consumer = SqsConsumer(sqs_client, queue_url, recorder, wait_seconds=1)

    first = consumer.poll_once()

    assert first == 10
    assert consumer.poll_once() == 2


@pytest.mark.parametrize(("extend", "expect_redelivery"), [(True, False), (False, True)])
def test_slow_handler_keeps_its_messages_invisible(
    sqs_client: SQSClient, queue_url: str, extend: bool, expect_redelivery: bool
) -> None:
    """With extension, no other consumer sees the message; without (control), one does."""
    send(sqs_client, queue_url, "slow")
    seen_elsewhere: list[str] = []

    def slow_handler(body: str, message_id: str) -> None:
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            stolen = receive_messages(sqs_client, queue_url, 1, timeout=0.3, delete=False)
            seen_elsewhere.extend(m["Body"] for m in stolen)
            for message in stolen:
                # Give it back at once so the slow consumer's delete is what decides.
                sqs_client.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )

    consumer = SqsConsumer(
        sqs_client,
        queue_url,
        slow_handler,
        wait_seconds=1,
        visibility_timeout=2,
        extend_interval=0.5 if extend else 60,
    )

    assert consumer.poll_once() == 1

    assert bool(seen_elsewhere) is expect_redelivery
    if not expect_redelivery:
        assert queue_depth(sqs_client, queue_url) == (0, 0)


def test_run_forever_stops_when_asked(sqs_client: SQSClient, queue_url: str) -> None:
    recorder = Recorder()
    consumer = SqsConsumer(sqs_client, queue_url, recorder, wait_seconds=1)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run_forever, args=(stop,))
    thread.start()
    send(sqs_client, queue_url, "one")
    deadline = time.monotonic() + 5
    while not recorder.calls and time.monotonic() < deadline:
        time.sleep(0.05)

    stop.set()
    thread.join(timeout=3)

    assert not thread.is_alive()
    assert [body for body, _ in recorder.calls] == ["one"]


def test_run_forever_finishes_the_batch_in_flight_before_stopping(
    sqs_client: SQSClient, queue_url: str
) -> None:
    send(sqs_client, queue_url, "a", "b", "c")
    stop = threading.Event()
    handled: list[str] = []

    def handler(body: str, message_id: str) -> None:
        stop.set()
        time.sleep(0.1)
        handled.append(body)

    consumer = SqsConsumer(sqs_client, queue_url, handler, wait_seconds=1)
    thread = threading.Thread(target=consumer.run_forever, args=(stop,))
    thread.start()
    thread.join(timeout=5)

    assert not thread.is_alive()
    assert sorted(handled) == ["a", "b", "c"]
    assert queue_depth(sqs_client, queue_url) == (0, 0)


def test_run_forever_survives_receive_errors(sqs_client: SQSClient, queue_url: str) -> None:
    missing = queue_url + f"-missing-{uuid.uuid4().hex[:6]}"
    consumer = SqsConsumer(sqs_client, missing, Recorder(), wait_seconds=0, error_backoff=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run_forever, args=(stop,))
    thread.start()
    time.sleep(0.3)

    assert thread.is_alive()
    stop.set()
    thread.join(timeout=3)
    assert not thread.is_alive()


@pytest.mark.slow
def test_a_message_that_keeps_failing_ends_in_the_dead_letter_queue(
    sqs_client: SQSClient, topology: Topology
) -> None:
    queue = topology.projection_update_queue
    send(sqs_client, queue.url, "always fails")
    attempts: list[str] = []

    def failing(body: str, message_id: str) -> None:
        attempts.append(body)
        raise RuntimeError("database unavailable")

    consumer = SqsConsumer(sqs_client, queue.url, failing, wait_seconds=1, visibility_timeout=1)
    deadline = time.monotonic() + 15
    while len(attempts) < MAX_RECEIVE_COUNT and time.monotonic() < deadline:
        consumer.poll_once()
    time.sleep(1.1)  # the last receipt's visibility timeout

    assert attempts == ["always fails"] * MAX_RECEIVE_COUNT
    assert consumer.poll_once() == 0
    dead = receive_messages(sqs_client, topology.projection_update_dlq.url, 1)
    assert [m["Body"] for m in dead] == ["always fails"]


def test_provisioning_is_idempotent_and_wires_redrive_policies(
    sns_client: SNSClient, sqs_client: SQSClient, aws_prefix: str
) -> None:
    first = provision(sns_client, sqs_client, prefix=aws_prefix, fifo=False, raw_delivery=True)
    again = provision(sns_client, sqs_client, prefix=aws_prefix, fifo=False, raw_delivery=True)

    assert again == first
    pairs = [
        (first.projection_update_queue, first.projection_update_dlq),
        (first.run_feedback_queue, first.run_feedback_dlq),
        (first.worker_queue, first.worker_dlq),
    ]
    for queue, dlq in pairs:
        attributes = sqs_client.get_queue_attributes(
            QueueUrl=queue.url, AttributeNames=["RedrivePolicy"]
        )["Attributes"]
        policy = json.loads(attributes["RedrivePolicy"])
        assert policy["deadLetterTargetArn"] == dlq.arn
        assert int(policy["maxReceiveCount"]) == MAX_RECEIVE_COUNT
    subscriptions = sns_client.list_subscriptions_by_topic(TopicArn=first.topic_arn)
    assert [s["Endpoint"] for s in subscriptions["Subscriptions"]] == [first.worker_queue.arn]


# --- one receive, one handler call, one DeleteMessageBatch ------------------------------


class BatchRecorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, messages: Sequence[tuple[str, str]]) -> None:
        self.calls.append([body for body, _ in messages])
        if self.fail:
            raise RuntimeError("database unavailable")


class SpoilingDeletes:
    """A real client whose DeleteMessageBatch sends a wrong receipt handle for `body`
    (`times` times): SQS then reports that entry failed, as it may for any entry."""

    def __init__(self, client: SQSClient, body: str, times: int) -> None:
        self._client = client
        self._body = body
        self._left = times
        self._bodies: dict[str, str] = {}
        self.calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def receive_message(self, **kwargs: Any) -> Any:
        response = self._client.receive_message(**kwargs)
        for m in response.get("Messages", []):
            self._bodies[m["ReceiptHandle"]] = m["Body"]
        return response

    def delete_message_batch(self, **kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        self.calls.append(len(entries))
        if self._left > 0:
            self._left -= 1
            entries = [
                {**e, "ReceiptHandle": "spoiled"}
                if self._bodies.get(e["ReceiptHandle"]) == self._body
                else e
                for e in entries
            ]
        return self._client.delete_message_batch(QueueUrl=kwargs["QueueUrl"], Entries=entries)


def test_a_batch_handler_gets_the_whole_receive_and_it_is_deleted_in_one_call(
    sqs_client: SQSClient, queue_url: str
) -> None:
    send(sqs_client, queue_url, *(f"m{i}" for i in range(10)))
    recorder = BatchRecorder()
    client = SpoilingDeletes(sqs_client, "none", times=0)
    consumer = SqsConsumer(
        cast("SQSClient", client), queue_url, batch_handler=recorder, wait_seconds=1
    )

    assert consumer.poll_once() == 10

    assert len(recorder.calls) == 1
    assert sorted(recorder.calls[0]) == [f"m{i}" for i in range(10)]
    assert client.calls == [10]
    assert queue_depth(sqs_client, queue_url) == (0, 0)


def test_a_failed_batch_handler_leaves_every_message_for_redelivery(
    sqs_client: SQSClient, queue_url: str
) -> None:
    send(sqs_client, queue_url, "a", "b")
    recorder = BatchRecorder(fail=True)
    consumer = SqsConsumer(
        sqs_client, queue_url, batch_handler=recorder, wait_seconds=1, visibility_timeout=1
    )
    received = 0
    while received < 2:
        received += consumer.poll_once()

    assert queue_depth(sqs_client, queue_url)[0] + queue_depth(sqs_client, queue_url)[1] == 2
    deadline = time.monotonic() + 5
    while sum(len(c) for c in recorder.calls) < 4 and time.monotonic() < deadline:
        consumer.poll_once()
    assert sorted(b for c in recorder.calls for b in c) == ["a", "a", "b", "b"]


def test_entries_a_batch_delete_failed_are_retried(sqs_client: SQSClient, queue_url: str) -> None:
    send(sqs_client, queue_url, "a", "b", "c")
    client = SpoilingDeletes(sqs_client, "b", times=1)
    consumer = SqsConsumer(
        cast("SQSClient", client), queue_url, batch_handler=BatchRecorder(), wait_seconds=1
    )
    received = 0
    while received < 3:
        received += consumer.poll_once()

    assert received == 3
    # all three, then only the one that failed
    assert client.calls[-1] == 1
    assert queue_depth(sqs_client, queue_url) == (0, 0)


def test_an_entry_that_keeps_failing_to_delete_is_redelivered(
    sqs_client: SQSClient, queue_url: str
) -> None:
    send(sqs_client, queue_url, "stuck")
    recorder = BatchRecorder()
    client = SpoilingDeletes(sqs_client, "stuck", times=DELETE_ATTEMPTS)
    consumer = SqsConsumer(
        cast("SQSClient", client),
        queue_url,
        batch_handler=recorder,
        wait_seconds=1,
        visibility_timeout=1,
    )
    assert consumer.poll_once() == 1
    assert client.calls == [1] * DELETE_ATTEMPTS

    deadline = time.monotonic() + 5
    while len(recorder.calls) < 2 and time.monotonic() < deadline:
        consumer.poll_once()
    # handled again (intake finds it a duplicate), and this time deleted
    assert recorder.calls == [["stuck"], ["stuck"]]
    assert queue_depth(sqs_client, queue_url) == (0, 0)


def test_a_consumer_takes_one_kind_of_handler(sqs_client: SQSClient, queue_url: str) -> None:
    with pytest.raises(ValueError, match="either a handler or a batch_handler"):
        SqsConsumer(sqs_client, queue_url)
    with pytest.raises(ValueError, match="either a handler or a batch_handler"):
        SqsConsumer(sqs_client, queue_url, Recorder(), batch_handler=BatchRecorder())


def test_a_delivery_handler_decides_what_becomes_of_each_message(
    sqs_client: SQSClient, queue_url: str
) -> None:
    """The workers' mode of the one loop: delete, leave for redelivery, or release at once."""
    send(sqs_client, queue_url, "delete", "leave", "release")
    kept_alive: list[str] = []

    def handler(delivery: Delivery, stop: threading.Event) -> Disposition:
        delivery.keep_alive()  # as a heartbeat does: extends the message's visibility
        kept_alive.append(delivery.body)
        return Disposition(delivery.body)

    consumer = SqsConsumer(
        sqs_client, queue_url, delivery_handler=handler, wait_seconds=1, visibility_timeout=30
    )
    received = 0
    while received < 3:
        received += consumer.poll_once()

    assert sorted(kept_alive) == ["delete", "leave", "release"]
    assert queue_depth(sqs_client, queue_url) == (1, 1)  # released visible, left in flight
    again = receive_messages(sqs_client, queue_url, 10, timeout=1)
    assert [m["Body"] for m in again] == ["release"]


def test_deliveries_run_concurrently_and_a_bug_keeps_the_message(
    sqs_client: SQSClient, queue_url: str
) -> None:
    send(sqs_client, queue_url, "slow", "slow", "bug")
    running: list[str] = []
    both_running = threading.Event()

    def handler(delivery: Delivery, stop: threading.Event) -> Disposition:
        if delivery.body == "bug":
            raise RecursionError("a bug in the handler")
        running.append(delivery.body)
        if len(running) == 2:
            both_running.set()
        both_running.wait(10)  # only returns at once if the two run side by side
        return Disposition.DELETE

    consumer = SqsConsumer(
        sqs_client,
        queue_url,
        delivery_handler=handler,
        concurrency=3,
        wait_seconds=1,
        visibility_timeout=30,
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run_forever, args=(stop,))
    thread.start()
    try:
        assert both_running.wait(10)
        deadline = time.monotonic() + 10
        while queue_depth(sqs_client, queue_url) != (0, 1) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert queue_depth(sqs_client, queue_url) == (0, 1)  # the bug's message, in flight


def test_concurrency_is_for_deliveries(sqs_client: SQSClient, queue_url: str) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        SqsConsumer(sqs_client, queue_url, Recorder(), concurrency=2)
