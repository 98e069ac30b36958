"""The notifier (SPEC §9): delivers the notification outbox after commit, in every replica.

Due rows are claimed with FOR UPDATE SKIP LOCKED and leased (their next attempt moved past
this try) in one short transaction; posted with no transaction open, several at a time, each
within NOTIFY_TIMEOUT; then the outcome is stored in another short transaction. So a receiver
that is slow, down or answering 500 holds no lock and no connection that intake, feedback or
the sweeper need. A notifier that dies mid-post leaves its rows due again when the lease ends:
delivery is at least once, with the delivery id stable across tries.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from uuid import uuid4

import structlog

from metrics_orchestrator.application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from metrics_orchestrator.application.ports.incidents import (
    ChannelSettings,
    ChannelView,
    ClaimedDelivery,
    DeliveryView,
    NewDelivery,
    NotificationSender,
    PostResult,
)
from metrics_orchestrator.application.transactions import transact
from metrics_orchestrator.application.wakeups import (
    ListenerFactory,
    NoListener,
    run_until_stopped,
)
from metrics_orchestrator.domain import log_events
from metrics_orchestrator.domain.errors import NotFound
from metrics_orchestrator.domain.incidents import (
    Change,
    body_for_test,
    next_delivery_attempt,
    signature,
)

log = structlog.get_logger(__name__)

DELIVERED = "delivered"
PENDING = "pending"
UNDELIVERABLE = "undeliverable"


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    undeliverable: int = 0

    @property
    def claimed(self) -> int:
        return self.delivered + self.failed + self.undeliverable


def delivery_headers(delivery_id: str, body: str, secret: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "metrics-orchestrator",
        "X-Delivery-Id": delivery_id,
    }
    if secret:
        headers["X-Signature-256"] = signature(body, secret)
    return headers


class Notifier:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        sender: NotificationSender,
        *,
        timeout: timedelta,
        retry_base_delay: timedelta,
        poll_interval: timedelta,
        batch_size: int = 16,
        concurrency: int = 4,
        listener_factory: ListenerFactory | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._sender = sender
        self._timeout = timeout
        self._retry_base_delay = retry_base_delay
        self._poll_interval = poll_interval.total_seconds()
        self._batch_size = batch_size
        self._concurrency = concurrency
        # every post of a batch ends within this (they run `concurrency` at a time), so the
        # lease outlives the batch with a margin
        rounds = -(-batch_size // concurrency)
        self._lease = timeout * rounds + timedelta(seconds=30)
        self._listener_factory = listener_factory or NoListener
        self.idle = threading.Event()

    def deliver_once(self) -> DeliveryReport:
        now = self._clock.now()
        claimed = transact(
            self._uow_factory,
            lambda uow: uow.notifications.claim_due(now, now + self._lease, self._batch_size),
        )
        if not claimed:
            return DeliveryReport()
        results = self._post_all(claimed)
        return transact(self._uow_factory, lambda uow: self._finish(uow, claimed, results))

    def _post_all(self, claimed: Sequence[ClaimedDelivery]) -> list[PostResult]:
        timeout = self._timeout.total_seconds()

        def post(delivery: ClaimedDelivery) -> PostResult:
            headers = delivery_headers(str(delivery.id), delivery.body, delivery.secret)
            try:
                return self._sender.post(delivery.url, delivery.body, headers, timeout)
            except Exception as exc:  # a sender bug must not lose the outcome of the others
                return PostResult(False, f"{type(exc).__name__}: {exc}")

        if len(claimed) == 1:
            return [post(claimed[0])]
        with ThreadPoolExecutor(min(self._concurrency, len(claimed))) as pool:
            return list(pool.map(post, claimed))

    def _finish(
        self, uow: UnitOfWork, claimed: Sequence[ClaimedDelivery], results: Sequence[PostResult]
    ) -> DeliveryReport:
        now = self._clock.now()
        counts = {DELIVERED: 0, PENDING: 0, UNDELIVERABLE: 0}
        for delivery, result in zip(claimed, results, strict=True):
            retry_at = None
            if not result.ok:
                retry_at = next_delivery_attempt(
                    delivery.attempts, delivery.created_at, now, self._retry_base_delay
                )
            state = DELIVERED if result.ok else PENDING if retry_at else UNDELIVERABLE
            # 0 rows: the lease ended and another notifier claimed it again; its word stands
            if uow.notifications.finish(
                delivery, state=state, result=result.detail, at=now, next_attempt_at=retry_at or now
            ):
                counts[state] += 1
                _log_delivery(delivery, result, state)
        return DeliveryReport(counts[DELIVERED], counts[PENDING], counts[UNDELIVERABLE])

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set: eagerly while work is found, else on NOTIFY or poll."""
        run_until_stopped(
            stop,
            lambda: self.deliver_once().claimed,
            listener_factory=self._listener_factory,
            what="queued notifications",
            poll_interval=self._poll_interval,
            idle=self.idle,
            on_error=_log_notifier_error,
        )


def _log_notifier_error(exc: Exception) -> None:
    log.error(
        log_events.ON_NOTIFIER_ERROR,
        message="delivering notifications failed; backing off",
        error=str(exc),
    )


def _log_delivery(delivery: ClaimedDelivery, result: PostResult, state: str) -> None:
    context = {
        "delivery_id": str(delivery.id),
        "channel": delivery.channel,
        "change": str(delivery.change),
        "attempt": delivery.attempts,
        "result": result.detail,
    }
    if result.ok:
        log.info(log_events.ON_NOTIFICATION_DELIVERED, message="notification delivered", **context)
    else:
        log.warning(
            log_events.ON_NOTIFICATION_FAILED,
            message="notification undeliverable"
            if state == UNDELIVERABLE
            else "notification failed; will retry",
            **context,
        )


class NotificationService:
    """Channels (declared, listed, disabled, tested) and the deliveries people look at."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        sender: NotificationSender,
        *,
        timeout: timedelta,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._sender = sender
        self._timeout = timeout

    def configure(self, channels: Sequence[ChannelSettings]) -> None:
        now = self._clock.now()
        transact(self._uow_factory, lambda uow: uow.notifications.upsert_channels(channels, now))

    def disable(self, name: str) -> None:
        now = self._clock.now()
        changed = transact(
            self._uow_factory, lambda uow: uow.notifications.disable_channel(name, now)
        )
        if not changed:
            raise NotFound(f"no notification channel named {name!r}")

    def channels(self) -> list[ChannelView]:
        return transact(self._uow_factory, lambda uow: uow.notifications.channels())

    def deliveries(
        self, *, incident_id: int | None = None, state: str | None = None, limit: int = 100
    ) -> list[DeliveryView]:
        return transact(
            self._uow_factory,
            lambda uow: uow.notifications.deliveries(
                incident_id=incident_id, state=state, limit=limit
            ),
        )

    def test(self, name: str) -> PostResult:
        """Post a test notification to channel `name` now and record how it went."""
        channel = transact(self._uow_factory, lambda uow: uow.notifications.target(name))
        if channel is None:
            raise NotFound(f"no notification channel named {name!r}")
        now = self._clock.now()
        delivery_id = uuid4()
        body = body_for_test(str(delivery_id), name, now, fmt=channel.format)
        headers = delivery_headers(str(delivery_id), body, channel.secret)
        result = self._sender.post(channel.url, body, headers, self._timeout.total_seconds())
        delivery = NewDelivery(delivery_id, name, None, Change.TEST, body, now)
        state = DELIVERED if result.ok else UNDELIVERABLE
        transact(
            self._uow_factory,
            lambda uow: uow.notifications.record_sent(
                delivery, state=state, result=result.detail, at=self._clock.now()
            ),
        )
        return result
