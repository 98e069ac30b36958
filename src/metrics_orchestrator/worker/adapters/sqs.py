"""Consumes run requests from the worker's SQS queue, `concurrency` at a time.

Competing consumers: any number of these, in any number of processes on any number of
machines, share one queue; SQS hides a received message from the others for its visibility
timeout, which every heartbeat extends while the run is in hand. A message is deleted only
after its completed event was published; if publishing fails it stays, is received again after
the timeout, and the run's marker keeps it from being computed twice. An abandoned run's
message is made visible again at once, so another worker can take it without waiting.

Every body ends in exactly one of: a completed event (computed, or a FAILURE naming why it
cannot be), or, with no usable run id, a logged rejection and a delete. Nothing a message
does escapes into the thread pool unlogged.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

import structlog

from metrics_orchestrator.worker import log_events
from metrics_orchestrator.worker.compute import ComputeOutcome, RunRequestHandler
from metrics_orchestrator.worker.request import Unanswerable, read_message

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = structlog.get_logger(__name__)

MAX_BATCH = 10


class RunRequestConsumer:
    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        handler: RunRequestHandler,
        *,
        concurrency: int = 1,
        wait_seconds: int = 20,
        visibility_timeout: int = 60,
        error_backoff: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._client = client
        self._queue_url = queue_url
        self._handler = handler
        self._concurrency = concurrency
        self._wait_seconds = wait_seconds
        self._visibility_timeout = visibility_timeout
        self._error_backoff = error_backoff

    def run_forever(self, stop: threading.Event) -> None:
        """Take requests until `stop` is set; then let the runs in hand finish or abandon."""
        log.info(
            log_events.ON_STARTUP,
            message="reference worker consuming run requests",
            queue_url=self._queue_url,
            concurrency=self._concurrency,
        )
        in_flight: set[Future[None]] = set()
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="run") as pool:
            while not stop.is_set():
                in_flight = {f for f in in_flight if not f.done()}
                free = self._concurrency - len(in_flight)
                if free <= 0:
                    wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                    continue
                for message in self._receive(min(free, MAX_BATCH), stop):
                    in_flight.add(pool.submit(self._process, message, stop))
            wait(in_flight)
        log.info(log_events.ON_SHUTDOWN, message="reference worker stopped")

    def _receive(self, count: int, stop: threading.Event) -> list[MessageTypeDef]:
        try:
            response = self._client.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=self._wait_seconds,
                VisibilityTimeout=self._visibility_timeout,
            )
        except Exception as exc:
            log.error(
                log_events.ON_CONSUMER_ERROR,
                message="receiving run requests failed; backing off",
                error=str(exc),
            )
            stop.wait(self._error_backoff)
            return []
        return list(response.get("Messages", []))

    def _process(self, message: MessageTypeDef, stop: threading.Event) -> None:
        """Answer one message; a bug here is logged (a future's exception would be silent)."""
        try:
            self._answer(message, stop)
        except Exception:
            log.exception(
                log_events.ON_CONSUMER_ERROR,
                message="unexpected error handling a message; left in the queue",
                message_id=message.get("MessageId", ""),
            )

    def _answer(self, message: MessageTypeDef, stop: threading.Event) -> None:
        receipt = message["ReceiptHandle"]
        message_id = message.get("MessageId", "")
        request = read_message(message.get("Body", ""))
        if isinstance(request, Unanswerable):
            log.warning(
                log_events.ON_EVENT_REJECTED,
                message="message not answerable (no usable run id); deleted",
                reason=request.reason,
                message_id=message_id,
            )
            self._delete(receipt)
            return
        log.info(
            log_events.ON_RUN_REQUEST_RECEIVED,
            message="run request received",
            run_id=request.run_id,
            attempt=request.attempt,
        )

        def keep_alive() -> None:
            self._set_visibility(receipt, self._visibility_timeout)

        try:
            outcome = self._handler.handle(request, stop, keep_alive, message_id or None)
        except Exception as exc:
            log.error(
                log_events.ON_CONSUMER_ERROR,
                message="run request not answered (feedback could not be sent); "
                "left in the queue for redelivery",
                run_id=request.run_id,
                error=str(exc),
                exc_info=True,
            )
            return
        if outcome is ComputeOutcome.ABANDONED:
            self._release(receipt)
        elif outcome is not ComputeOutcome.DEFERRED:
            self._delete(receipt)

    def _delete(self, receipt: str) -> None:
        try:
            self._client.delete_message(QueueUrl=self._queue_url, ReceiptHandle=receipt)
        except Exception as exc:  # it comes back; the marker absorbs it
            log.warning(
                log_events.ON_CONSUMER_ERROR,
                message="delete failed; the message will be redelivered",
                error=str(exc),
            )
            return
        log.debug(log_events.ON_MESSAGE_ACKNOWLEDGED, message="run request deleted")

    def _release(self, receipt: str) -> None:
        try:
            self._set_visibility(receipt, 0)
        except Exception as exc:
            log.warning(
                log_events.ON_CONSUMER_ERROR,
                message="could not release an abandoned run request; it reappears after its "
                "visibility timeout",
                error=str(exc),
            )

    def _set_visibility(self, receipt: str, seconds: int) -> None:
        self._client.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
        )
