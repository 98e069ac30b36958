"""Publishes run requests to SNS with PublishBatch (SPEC §4.3, §5.4)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from metrics_orchestrator.application.ports.dispatch import PublishOutcome, RunRequestMessage
from metrics_orchestrator.domain.messages.run_requested import RUN_REQUESTED

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import (
        BatchResultErrorEntryTypeDef,
        MessageAttributeValueTypeDef,
        PublishBatchRequestEntryTypeDef,
    )

MAX_BATCH_ENTRIES = 10
# SNS limits the whole PublishBatch request, not only each message, to 256 KiB.
MAX_BATCH_BYTES = 256 * 1024

_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KMSThrottling",
        "KMSThrottlingException",
    }
)
_SERVER_FAULT_CODES = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable"})
_TRANSPORT_ERRORS = (BotoConnectionError, HTTPClientError)


@dataclass(frozen=True, slots=True)
class _Entry:
    entry_id: str
    message: RunRequestMessage
    request: PublishBatchRequestEntryTypeDef
    size: int


class SnsRunRequestPublisher:
    """The `RunRequestPublisher` port on an SNS topic (standard or FIFO).

    Every message gets its own outcome. Throttling, server faults and transport errors are
    retried a bounded number of times with exponential backoff, re-sending only the entries
    that failed; anything else fails its entries at once with the error text.
    """

    def __init__(
        self,
        client: SNSClient,
        topic_arn: str,
        *,
        max_retries: int = 3,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._topic_arn = topic_arn
        self._fifo = topic_arn.endswith(".fifo")
        self._max_retries = max_retries
        self._base_delay = base_delay
        self._sleep = sleep

    @property
    def topic_arn(self) -> str:
        return self._topic_arn

    def publish_batch(self, messages: Sequence[RunRequestMessage]) -> list[PublishOutcome]:
        outcomes: dict[str, PublishOutcome] = {}
        entries: list[_Entry] = []
        for index, message in enumerate(messages):
            entry_id = f"m{index}"
            if not message.metric_code:
                # SNS refuses an empty attribute value for the whole batch; fail this one alone.
                outcomes[entry_id] = _failed(message, "message has no metric code")
            else:
                entries.append(self._entry(entry_id, message))
        for chunk in _chunks(entries):
            outcomes.update(self._publish_chunk(chunk))
        return [outcomes[f"m{index}"] for index in range(len(messages))]

    def _entry(self, entry_id: str, message: RunRequestMessage) -> _Entry:
        body = json.dumps(message.payload)
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "type": {"DataType": "String", "StringValue": RUN_REQUESTED},
            "metricCode": {"DataType": "String", "StringValue": message.metric_code},
        }
        request: PublishBatchRequestEntryTypeDef = {
            "Id": entry_id,
            "Message": body,
            "MessageAttributes": attributes,
        }
        if self._fifo:
            request["MessageGroupId"] = message.metric_code
            request["MessageDeduplicationId"] = f"{message.run_id}:{message.attempt}"
        size = len(body.encode()) + sum(
            len(name) + len("String") + len(value.get("StringValue", "").encode())
            for name, value in attributes.items()
        )
        return _Entry(entry_id, message, request, size)

    def _publish_chunk(self, chunk: Sequence[_Entry]) -> dict[str, PublishOutcome]:
        outcomes: dict[str, PublishOutcome] = {}
        pending = {entry.entry_id: entry for entry in chunk}
        for attempt in range(self._max_retries + 1):
            last_try = attempt == self._max_retries
            retry = self._send(pending, outcomes, retry_allowed=not last_try)
            if not retry:
                break
            pending = retry
            self._sleep(self._base_delay * 2**attempt)
        return outcomes

    def _send(
        self,
        pending: dict[str, _Entry],
        outcomes: dict[str, PublishOutcome],
        *,
        retry_allowed: bool,
    ) -> dict[str, _Entry]:
        """One PublishBatch call: record final outcomes, return the entries to retry."""
        try:
            response = self._client.publish_batch(
                TopicArn=self._topic_arn,
                PublishBatchRequestEntries=[entry.request for entry in pending.values()],
            )
        except (ClientError, *_TRANSPORT_ERRORS) as exc:
            if retry_allowed and _is_transient(exc):
                return pending
            outcomes.update((i, _failed(e.message, str(exc))) for i, e in pending.items())
            return {}
        retry: dict[str, _Entry] = {}
        for success in response.get("Successful", []):
            entry_id = success.get("Id", "")
            if entry_id in pending:
                outcomes[entry_id] = PublishOutcome(pending[entry_id].message.run_id, ok=True)
        for failure in response.get("Failed", []):
            entry = pending.get(failure["Id"])
            if entry is None:
                continue
            if retry_allowed and _is_transient_entry(failure):
                retry[entry.entry_id] = entry
            else:
                outcomes[entry.entry_id] = _failed(entry.message, _entry_error(failure))
        for entry_id, entry in pending.items():
            if entry_id not in outcomes and entry_id not in retry:
                outcomes[entry_id] = _failed(entry.message, "SNS reported no result for this entry")
        return retry


def _chunks(entries: Sequence[_Entry]) -> Iterator[list[_Entry]]:
    """Batches of at most 10 entries and 256 KiB; an oversized entry goes alone (and fails)."""
    chunk: list[_Entry] = []
    size = 0
    for entry in entries:
        if chunk and (len(chunk) == MAX_BATCH_ENTRIES or size + entry.size > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry.size
    if chunk:
        yield chunk


def _failed(message: RunRequestMessage, error: str) -> PublishOutcome:
    return PublishOutcome(message.run_id, ok=False, error=error)


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, _TRANSPORT_ERRORS):
        return True
    if not isinstance(exc, ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in _THROTTLING_CODES or code in _SERVER_FAULT_CODES or status >= 500


def _is_transient_entry(failure: BatchResultErrorEntryTypeDef) -> bool:
    code = failure.get("Code", "")
    return code in _THROTTLING_CODES or not failure.get("SenderFault", True)


def _entry_error(failure: BatchResultErrorEntryTypeDef) -> str:
    code = failure.get("Code", "error")
    detail = failure.get("Message")
    return f"{code}: {detail}" if detail else code
