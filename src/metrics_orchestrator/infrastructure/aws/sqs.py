"""A long-polling SQS consumer that acknowledges a message only after its handler succeeded.

A handler that returns has committed its transaction, so the message is deleted. A handler
that raises leaves the message in the queue: SQS makes it visible again after its visibility
timeout, and after `maxReceiveCount` receipts the queue's redrive policy moves it to the DLQ
(SPEC §5.8). While a batch is slow, a background timer keeps extending the visibility of the
messages not yet handled, so no other consumer receives them meanwhile.

With a batch handler, a whole receive (≤ 10 messages) is handed over at once (one
transaction for its projection updates) and, once it has returned, every message is deleted
with one DeleteMessageBatch; entries that fail are retried, and one that still fails is
redelivered later and recorded as a duplicate (docs/messaging.md).

With a delivery handler (the workers' long runs), each message is handed to one of
`concurrency` threads with a `keep_alive` that extends its visibility (the handler calls it on
every heartbeat), and the handler says what becomes of it: deleted, left for redelivery, or
released (visible again at once). The one loop of every consumer in the package, control plane
and workers alike: receive up to `MAX_BATCH`, hand over, acknowledge, back off on a failed
receive, and stop when asked, finishing what it has in hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import structlog

from metrics_orchestrator.domain.log_events import (
    ON_CONSUMER_ERROR,
    ON_MESSAGE_ACKNOWLEDGED,
    ON_MESSAGE_RECEIVED,
)
from metrics_orchestrator.domain.messaging import MAX_BATCH

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageTypeDef,
    )

log = structlog.get_logger()

MessageHandler = Callable[[str, str], None]
"""`handler(body, message_id)`: returns when the message is processed; raises to retry it."""

BatchHandler = Callable[[Sequence[tuple[str, str]]], None]
"""`handler([(body, message_id), ...])`: returns when all are processed; raises to retry all."""


class Disposition(StrEnum):
    """What becomes of a delivered message once its handler has returned."""

    DELETE = "delete"  # handled: acknowledged
    LEAVE = "leave"  # not answered: received again after its visibility timeout
    RELEASE = "release"  # given back: visible to every consumer again at once


@dataclass(frozen=True, slots=True)
class Delivery:
    body: str
    message_id: str
    keep_alive: Callable[[], None]
    """Extends the message's visibility by the consumer's visibility timeout."""


DeliveryHandler = Callable[[Delivery, threading.Event], Disposition]
"""`handler(delivery, stop)`: one message on one of `concurrency` threads; says its fate."""

# DeleteMessageBatch calls per receive: the first, then retries of the entries that failed
DELETE_ATTEMPTS = 3
MAX_WAIT_SECONDS = 20


class SqsConsumer:
    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        handler: MessageHandler | None = None,
        *,
        batch_handler: BatchHandler | None = None,
        delivery_handler: DeliveryHandler | None = None,
        concurrency: int = 1,
        batch_size: int = MAX_BATCH,
        wait_seconds: int = 20,
        visibility_timeout: int = 30,
        name: str = "sqs-consumer",
        extend_interval: float | None = None,
        error_backoff: float = 1.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait_seconds must be between 0 and {MAX_WAIT_SECONDS}")
        if visibility_timeout < 1:
            raise ValueError("visibility_timeout must be at least 1 second")
        if [handler, batch_handler, delivery_handler].count(None) != 2:
            raise ValueError("give either a handler or a batch_handler (or a delivery_handler)")
        if concurrency < 1 or (concurrency > 1 and delivery_handler is None):
            raise ValueError("concurrency must be >= 1, and above 1 only for a delivery_handler")
        self._client = client
        self._queue_url = queue_url
        self._handler = handler
        self._batch_handler = batch_handler
        self._delivery_handler = delivery_handler
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._wait_seconds = wait_seconds
        self._visibility_timeout = visibility_timeout
        self._name = name
        # Extending at half the timeout leaves the other half as margin for a slow AWS call.
        self._extend_interval = extend_interval or visibility_timeout / 2
        self._error_backoff = error_backoff

    @property
    def name(self) -> str:
        return self._name

    def run_forever(self, stop: threading.Event) -> None:
        """Poll until `stop` is set; what was received is finished (or given back) first."""
        in_flight: set[Future[None]] = set()
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix=self._name) as pool:
            while not stop.is_set():
                in_flight = {future for future in in_flight if not future.done()}
                free = self._concurrency - len(in_flight)
                if free <= 0:
                    wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                    continue
                # A batch is handled here and now; deliveries take one free thread each.
                count = self._batch_size if self._delivery_handler is None else free
                try:
                    messages = self._receive(min(count, self._batch_size))
                    in_flight |= self._hand_over(messages, stop, pool)
                except Exception as exc:
                    log.error(
                        ON_CONSUMER_ERROR,
                        message="receiving from the queue failed; backing off",
                        consumer=self._name,
                        error=str(exc),
                        exc_info=True,
                    )
                    stop.wait(self._error_backoff)
            wait(in_flight)

    def poll_once(self) -> int:
        """Receive one batch (long polling) and handle it; the number of messages received."""
        messages = self._receive(self._batch_size)
        if self._delivery_handler is None:
            if messages:
                self._handle_batch(messages)
        else:
            for message in messages:
                self._deliver(message, threading.Event())
        return len(messages)

    def _receive(self, count: int) -> list[MessageTypeDef]:
        response = self._client.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=self._wait_seconds,
            VisibilityTimeout=self._visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return list(response.get("Messages", []))

    def _hand_over(
        self, messages: list[MessageTypeDef], stop: threading.Event, pool: ThreadPoolExecutor
    ) -> set[Future[None]]:
        """Deliveries go to the pool (their futures returned); a batch is handled right here."""
        if self._delivery_handler is not None:
            return {pool.submit(self._deliver, message, stop) for message in messages}
        if messages:
            self._handle_batch(messages)
        return set()

    def _deliver(self, message: MessageTypeDef, stop: threading.Event) -> None:
        """Run the delivery handler and apply its disposition; a bug is logged, never lost
        (a future's exception would be silent) and leaves the message in the queue."""
        assert self._delivery_handler is not None
        receipt = message["ReceiptHandle"]
        delivery = Delivery(
            body=message.get("Body", ""),
            message_id=message.get("MessageId", ""),
            keep_alive=lambda: self._set_visibility(receipt, self._visibility_timeout),
        )
        try:
            disposition = self._delivery_handler(delivery, stop)
        except Exception:
            log.exception(
                ON_CONSUMER_ERROR,
                message="unexpected error handling a message; left in the queue",
                consumer=self._name,
                message_id=delivery.message_id,
            )
            return
        if disposition is Disposition.DELETE:
            self._acknowledge(message)
        elif disposition is Disposition.RELEASE:
            self._release(message)

    def _release(self, message: MessageTypeDef) -> None:
        try:
            self._set_visibility(message["ReceiptHandle"], 0)
        except Exception as exc:
            log.warning(
                ON_CONSUMER_ERROR,
                message="could not release a message; it reappears after its visibility timeout",
                consumer=self._name,
                message_id=message.get("MessageId", ""),
                error=str(exc),
            )

    def _set_visibility(self, receipt_handle: str, seconds: int) -> None:
        self._client.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    def _handle_batch(self, messages: list[MessageTypeDef]) -> None:
        in_flight = _InFlight(messages)
        extender = _VisibilityExtender(
            self._client,
            self._queue_url,
            in_flight,
            timeout=self._visibility_timeout,
            interval=self._extend_interval,
            consumer=self._name,
        )
        extender.start()
        if self._batch_handler is not None:
            try:
                handled = self._handle_together(self._batch_handler, messages)
            finally:
                # Stopped before the delete, so the extender never touches a deleted message.
                extender.stop()
            if handled:
                self._acknowledge_together(messages)
            return
        try:
            for message in messages:
                handled = self._handle(message)
                # Done before the delete, so the extender never touches a deleted message.
                in_flight.done(message["ReceiptHandle"])
                if handled:
                    self._acknowledge(message)
        finally:
            extender.stop()

    def _handle_together(self, handler: BatchHandler, messages: list[MessageTypeDef]) -> bool:
        """Run the batch handler; True when it succeeded and the messages may be deleted."""
        log.debug(
            ON_MESSAGE_RECEIVED,
            message="messages received",
            consumer=self._name,
            message_ids=[m.get("MessageId", "") for m in messages],
        )
        try:
            handler([(m.get("Body", ""), m.get("MessageId", "")) for m in messages])
        except Exception as exc:
            log.error(
                ON_CONSUMER_ERROR,
                message="handler failed; the messages stay in the queue for redelivery",
                consumer=self._name,
                message_ids=[m.get("MessageId", "") for m in messages],
                error=str(exc),
                exc_info=True,
            )
            return False
        return True

    def _acknowledge_together(self, messages: list[MessageTypeDef]) -> None:
        """One DeleteMessageBatch; the entries that failed are retried (bounded)."""
        unacknowledged = {str(index): message for index, message in enumerate(messages)}
        for attempt in range(1, DELETE_ATTEMPTS + 1):
            unacknowledged, error = self._delete_batch(unacknowledged)
            if not unacknowledged:
                log.debug(
                    ON_MESSAGE_ACKNOWLEDGED,
                    message="messages deleted",
                    consumer=self._name,
                    messages=len(messages),
                )
                return
            if attempt < DELETE_ATTEMPTS:
                time.sleep(0.05 * attempt)
        # The work is committed; a redelivered copy is recognised as a duplicate.
        for message in unacknowledged.values():
            log.warning(
                ON_CONSUMER_ERROR,
                message="deleting a processed message failed; it may be redelivered",
                consumer=self._name,
                message_id=message.get("MessageId", ""),
                error=error,
            )

    def _delete_batch(
        self, messages: dict[str, MessageTypeDef]
    ) -> tuple[dict[str, MessageTypeDef], str]:
        """Delete the messages; those that failed (all, if the call did) and why."""
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": entry_id, "ReceiptHandle": message["ReceiptHandle"]}
            for entry_id, message in messages.items()
        ]
        try:
            response = self._client.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except Exception as exc:
            return messages, str(exc)
        failed = response.get("Failed", [])
        reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed)
        return {f["Id"]: messages[f["Id"]] for f in failed}, reasons

    def _handle(self, message: MessageTypeDef) -> bool:
        """Run the handler; True when it succeeded and the message may be deleted."""
        message_id = message.get("MessageId", "")
        body = message.get("Body", "")
        receive_count = message.get("Attributes", {}).get("ApproximateReceiveCount", "1")
        log.debug(
            ON_MESSAGE_RECEIVED,
            message="message received",
            consumer=self._name,
            message_id=message_id,
            receive_count=receive_count,
            size=len(body.encode()),
        )
        try:
            assert self._handler is not None
            self._handler(body, message_id)
        except Exception as exc:
            log.error(
                ON_CONSUMER_ERROR,
                message="handler failed; the message stays in the queue for redelivery",
                consumer=self._name,
                message_id=message_id,
                receive_count=receive_count,
                error=str(exc),
                exc_info=True,
            )
            return False
        return True

    def _acknowledge(self, message: MessageTypeDef) -> None:
        message_id = message.get("MessageId", "")
        try:
            self._client.delete_message(
                QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        except Exception as exc:
            # The work is committed; a redelivered copy is recognised as a duplicate.
            log.warning(
                ON_CONSUMER_ERROR,
                message="deleting a processed message failed; it may be redelivered",
                consumer=self._name,
                message_id=message_id,
                error=str(exc),
            )
            return
        log.debug(
            ON_MESSAGE_ACKNOWLEDGED,
            message="message deleted",
            consumer=self._name,
            message_id=message_id,
        )


class _InFlight:
    """Receipt handles of the batch's messages not yet handled, shared with the extender."""

    def __init__(self, messages: list[MessageTypeDef]) -> None:
        self._lock = threading.Lock()
        self._handles = {m["ReceiptHandle"]: m.get("MessageId", "") for m in messages}

    def done(self, receipt_handle: str) -> None:
        with self._lock:
            self._handles.pop(receipt_handle, None)

    @contextmanager
    def pending(self) -> Iterator[dict[str, str]]:
        """The pending handles, held steady (no `done`) until the block ends."""
        with self._lock:
            yield dict(self._handles)


class _VisibilityExtender:
    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        in_flight: _InFlight,
        *,
        timeout: int,
        interval: float,
        consumer: str,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._in_flight = in_flight
        self._timeout = timeout
        self._interval = interval
        self._consumer = consumer
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"{consumer}-visibility", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._extend()

    def _extend(self) -> None:
        with self._in_flight.pending() as pending:
            if pending:
                self._change_visibility(list(pending.items()))

    def _change_visibility(self, handles: list[tuple[str, str]]) -> None:
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": self._timeout}
            for index, (handle, _) in enumerate(handles)
        ]
        try:
            response = self._client.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=entries,
            )
        except Exception as exc:
            log.warning(
                ON_CONSUMER_ERROR,
                message="extending message visibility failed",
                consumer=self._consumer,
                error=str(exc),
            )
            return
        for failure in response.get("Failed", []):
            log.warning(
                ON_CONSUMER_ERROR,
                message="extending message visibility failed",
                consumer=self._consumer,
                message_id=handles[int(failure["Id"])][1],
                error=f"{failure.get('Code')}: {failure.get('Message')}",
            )
