"""Consumes run requests from the worker's SQS queue, `concurrency` at a time.

Competing consumers: any number of these, in any number of processes on any number of
machines, share one queue; SQS hides a received message from the others for its visibility
timeout, which every heartbeat extends while the run is in hand. A message is deleted only
after its completed event was published; if publishing fails it stays, is received again after
the timeout, and the run's marker keeps it from being computed twice. An abandoned run's
message is made visible again at once, so another worker can take it without waiting.

Every body ends in exactly one of: a completed event (computed, or a FAILURE naming why it
cannot be), or, with no usable run id, a logged rejection and a delete. Nothing a message
does escapes into the thread pool unlogged: the package's one consumer loop
(`infrastructure/aws/sqs.py`) logs any exception this adapter lets through and keeps the
message.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import structlog

from metrics_orchestrator.domain import log_events
from metrics_orchestrator.domain.messages.run_requested import Unanswerable, read_message
from metrics_orchestrator.infrastructure.aws.sqs import Delivery, Disposition, SqsConsumer
from metrics_orchestrator.worker.compute import ComputeOutcome, RunRequestHandler

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = structlog.get_logger(__name__)


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
        self._queue_url = queue_url
        self._handler = handler
        self._concurrency = concurrency
        self._consumer = SqsConsumer(
            client,
            queue_url,
            delivery_handler=self._answer,
            concurrency=concurrency,
            wait_seconds=wait_seconds,
            visibility_timeout=visibility_timeout,
            name="reference-worker",
            error_backoff=error_backoff,
        )

    def run_forever(self, stop: threading.Event) -> None:
        """Take requests until `stop` is set; then let the runs in hand finish or abandon."""
        log.info(
            log_events.ON_STARTUP,
            message="reference worker consuming run requests",
            queue_url=self._queue_url,
            concurrency=self._concurrency,
        )
        self._consumer.run_forever(stop)
        log.info(log_events.ON_SHUTDOWN, message="reference worker stopped")

    def _answer(self, delivery: Delivery, stop: threading.Event) -> Disposition:
        request = read_message(delivery.body)
        if isinstance(request, Unanswerable):
            log.warning(
                log_events.ON_EVENT_REJECTED,
                message="message not answerable (no usable run id); deleted",
                reason=request.reason,
                message_id=delivery.message_id,
            )
            return Disposition.DELETE
        log.info(
            log_events.ON_RUN_REQUEST_RECEIVED,
            message="run request received",
            run_id=request.run_id,
            attempt=request.attempt,
        )
        try:
            outcome = self._handler.handle(
                request, stop, delivery.keep_alive, delivery.message_id or None
            )
        except Exception as exc:
            log.error(
                log_events.ON_CONSUMER_ERROR,
                message="run request not answered (feedback could not be sent); "
                "left in the queue for redelivery",
                run_id=request.run_id,
                error=str(exc),
                exc_info=True,
            )
            return Disposition.LEAVE
        if outcome is ComputeOutcome.ABANDONED:
            return Disposition.RELEASE
        if outcome is ComputeOutcome.DEFERRED:
            return Disposition.LEAVE
        return Disposition.DELETE
