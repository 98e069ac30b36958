"""Publishes the worker's feedback events (SPEC §4.2) to the run-feedback SNS topic."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class SnsFeedbackPublisher:
    """One Publish per event, with a `type` message attribute (subscriptions may filter on it).

    On a FIFO topic the run id is the message group (a run's events stay in order) and the
    body's hash the deduplication id (a retried publish of the same event is absorbed).
    """

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn
        self._fifo = topic_arn.endswith(".fifo")

    def publish(self, event: Mapping[str, Any]) -> None:
        body = json.dumps(event, separators=(",", ":"))
        attributes = {"type": {"DataType": "String", "StringValue": str(event.get("type"))}}
        if self._fifo:
            self._client.publish(
                TopicArn=self._topic_arn,
                Message=body,
                MessageAttributes=attributes,  # type: ignore[arg-type]
                MessageGroupId=str(event.get("runId")),
                MessageDeduplicationId=hashlib.sha256(body.encode()).hexdigest(),
            )
        else:
            self._client.publish(
                TopicArn=self._topic_arn,
                Message=body,
                MessageAttributes=attributes,  # type: ignore[arg-type]
            )
