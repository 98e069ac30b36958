"""Creates the topic and queues the service talks to (embedded mode, demo, tests).

Idempotent: creating an existing topic, queue or subscription with the same attributes
returns the existing one, so the embedded `serve` may call it on every start.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from metrics_orchestrator.domain.log_events import ON_AWS_PROVISIONED

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

log = structlog.get_logger()

MAX_RECEIVE_COUNT = 5
VISIBILITY_TIMEOUT_SECONDS = 30
# Dead letters are kept for the longest period SQS allows, so nothing is lost quietly.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True, slots=True)
class QueueRef:
    url: str
    arn: str


@dataclass(frozen=True, slots=True)
class Topology:
    topic_arn: str
    projection_update_queue: QueueRef
    projection_update_dlq: QueueRef
    run_feedback_queue: QueueRef
    run_feedback_dlq: QueueRef
    # What a worker consumes: subscribed to the run-request topic.
    worker_queue: QueueRef
    worker_dlq: QueueRef
    subscription_arn: str
    fifo: bool
    raw_delivery: bool


def provision(
    sns: SNSClient, sqs: SQSClient, *, prefix: str, fifo: bool, raw_delivery: bool
) -> Topology:
    """Create the run-request topic, the service's queues and a worker queue subscribed to it.

    `fifo` applies to the run-request topic and the worker queue (a FIFO topic only delivers
    to FIFO queues); the projection-update and run-feedback queues stay standard so that
    upstream producers and workers need no message group ids.
    """
    topic_arn = _create_topic(sns, f"{prefix}-run-requests", fifo=fifo)
    projection_dlq = _create_queue(sqs, f"{prefix}-projection-updates-dlq", fifo=False)
    projection = _create_queue(
        sqs, f"{prefix}-projection-updates", fifo=False, dead_letter=projection_dlq
    )
    feedback_dlq = _create_queue(sqs, f"{prefix}-run-feedback-dlq", fifo=False)
    feedback = _create_queue(sqs, f"{prefix}-run-feedback", fifo=False, dead_letter=feedback_dlq)
    worker_dlq = _create_queue(sqs, f"{prefix}-worker-dlq", fifo=fifo)
    worker = _create_queue(sqs, f"{prefix}-worker", fifo=fifo, dead_letter=worker_dlq)
    _allow_topic_to_send(sqs, worker, topic_arn)
    subscription_arn = _subscribe(sns, topic_arn, worker, raw_delivery=raw_delivery)
    log.info(
        ON_AWS_PROVISIONED,
        message="topic and queues ready",
        topic_arn=topic_arn,
        projection_update_queue_url=projection.url,
        run_feedback_queue_url=feedback.url,
        worker_queue_url=worker.url,
    )
    return Topology(
        topic_arn=topic_arn,
        projection_update_queue=projection,
        projection_update_dlq=projection_dlq,
        run_feedback_queue=feedback,
        run_feedback_dlq=feedback_dlq,
        worker_queue=worker,
        worker_dlq=worker_dlq,
        subscription_arn=subscription_arn,
        fifo=fifo,
        raw_delivery=raw_delivery,
    )


def _create_topic(sns: SNSClient, name: str, *, fifo: bool) -> str:
    if not fifo:
        return sns.create_topic(Name=name)["TopicArn"]
    attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"}
    return sns.create_topic(Name=f"{name}.fifo", Attributes=attributes)["TopicArn"]


def _create_queue(
    sqs: SQSClient, name: str, *, fifo: bool, dead_letter: QueueRef | None = None
) -> QueueRef:
    attributes = {"VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS)}
    if dead_letter is None:
        attributes["MessageRetentionPeriod"] = str(DLQ_RETENTION_SECONDS)
    else:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dead_letter.arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
        )
    if fifo:
        name = f"{name}.fifo"
        attributes["FifoQueue"] = "true"
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return QueueRef(url=url, arn=arn)


def _allow_topic_to_send(sqs: SQSClient, queue: QueueRef, topic_arn: str) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowRunRequestTopic",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue.arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue.url, Attributes={"Policy": json.dumps(policy)})


def _subscribe(sns: SNSClient, topic_arn: str, queue: QueueRef, *, raw_delivery: bool) -> str:
    response = sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue.arn,
        Attributes={"RawMessageDelivery": "true" if raw_delivery else "false"},
        ReturnSubscriptionArn=True,
    )
    return response["SubscriptionArn"]


@dataclass(frozen=True, slots=True)
class WorkerTopology:
    """What the reference worker needs beside the control plane's topology (embedded mode)."""

    feedback_topic_arn: str
    feedback_subscription_arn: str
    output_bucket: str


def provision_worker(
    sns: SNSClient, s3: S3Client, sqs: SQSClient, topology: Topology, *, output_bucket: str
) -> WorkerTopology:
    """The output bucket, and a run-feedback topic delivering (raw) to the feedback queue.

    Workers publish feedback to the topic (SPEC §6.2 `SNS_RUN_FEEDBACK_TOPIC_ARN`); the control
    plane keeps consuming its feedback queue. Idempotent like `provision`.
    """
    _create_bucket(s3, output_bucket)
    prefix = (
        topology.topic_arn.rsplit(":", 1)[-1].removesuffix(".fifo").removesuffix("-run-requests")
    )
    feedback_topic = _create_topic(sns, f"{prefix}-run-feedback", fifo=False)
    _allow_topic_to_send(sqs, topology.run_feedback_queue, feedback_topic)
    subscription = _subscribe(sns, feedback_topic, topology.run_feedback_queue, raw_delivery=True)
    log.info(
        ON_AWS_PROVISIONED,
        message="worker resources ready",
        feedback_topic_arn=feedback_topic,
        output_bucket=output_bucket,
    )
    return WorkerTopology(feedback_topic, subscription, output_bucket)


def create_bucket(s3: S3Client, name: str) -> None:
    """Create `name` if it does not exist yet (ours already: fine)."""
    _create_bucket(s3, name)


def _create_bucket(s3: S3Client, name: str) -> None:
    region = s3.meta.region_name
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        if region in (None, "us-east-1"):
            s3.create_bucket(Bucket=name)
        else:  # outside us-east-1 S3 wants the region spelled out
            s3.create_bucket(
                Bucket=name,
                CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
            )
