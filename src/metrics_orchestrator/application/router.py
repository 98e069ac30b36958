"""One entry for every received message, whatever its queue (SPEC §4, §5.8).

Decodes the body (raw or SNS-enveloped), rejects what cannot be an event, and hands the event
to the use case for its type. Consumers, the `ingest` command and the HTTP API all come here,
so every path applies the same rules and records the same `event_log` rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from metrics_orchestrator.application.incidents import IncidentBook
from metrics_orchestrator.application.intake import IntakeResult, IntakeService
from metrics_orchestrator.application.ports import (
    Clock,
    UnitOfWork,
    UnitOfWorkFactory,
    in_transaction,
)
from metrics_orchestrator.application.ports.events import EventRecord, EventStatus, LoggedEvent
from metrics_orchestrator.application.telemetry import NullTelemetry, Telemetry
from metrics_orchestrator.domain import log_events
from metrics_orchestrator.domain.errors import Conflict, NotFound
from metrics_orchestrator.domain.events import (
    DEFAULT_MAX_CLOCK_SKEW,
    PROJECTION_UPDATE,
    DecodedEvent,
    UndecodableEvent,
    body_digest_key,
    decode_event,
    event_text,
)
from metrics_orchestrator.domain.inbox import dismiss_reason
from metrics_orchestrator.domain.incidents import IncidentKind

logger = structlog.get_logger(__name__)


class FeedbackResult(Protocol):
    @property
    def status(self) -> EventStatus: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def event_key(self) -> str: ...


class FeedbackHandler(Protocol):
    def handle(
        self,
        decoded: DecodedEvent,
        *,
        source: str,
        received_at: datetime,
        replay_of: int | None = None,
    ) -> FeedbackResult: ...


@dataclass(frozen=True, slots=True)
class RoutedEvent:
    event_type: str
    status: EventStatus
    error: str | None
    intake: IntakeResult | None = None
    event_key: str | None = None


class EventRouter:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        intake: IntakeService,
        feedback: FeedbackHandler,
        *,
        telemetry: Telemetry | None = None,
        max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
        incidents: IncidentBook | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        # a rejection opens an incident; a replay that works or a dismissal resolves it (§9)
        self._incidents = incidents or IncidentBook()
        self._max_clock_skew = max_clock_skew
        self._clock = clock
        self._intake = intake
        self._feedback = feedback
        self._telemetry = telemetry or NullTelemetry()

    def handle(self, raw_body: bytes | str, *, source: str, only: str | None = None) -> RoutedEvent:
        """Decode, apply and record one body: bytes (HTTP, `ingest`) or text (SQS).

        Whatever the body, it ends as exactly one event_log row; only an unavailable
        database raises (SPEC §5.8). With `only`, an event of another type is rejected
        (and recorded) instead of applied: the HTTP intake takes projection updates only.
        """
        return self._measured(raw_body, source, only, None)

    def _measured(
        self, raw_body: bytes | str, source: str, only: str | None, replay_of: int | None
    ) -> RoutedEvent:
        started = time.perf_counter()
        routed = self._route(raw_body, source, only, replay_of)
        self._telemetry.event_processed(
            routed.event_type, routed.status.value, time.perf_counter() - started
        )
        return routed

    def handle_batch(self, raw_bodies: Sequence[bytes | str], *, source: str) -> list[RoutedEvent]:
        """Decode, apply and record ≤ 10 bodies (an SQS receive); one result per body.

        The projection updates among them are processed in ONE transaction, in arrival
        order, with the one-by-one outcome (`IntakeService.ingest_many`, SPEC §7). Bodies
        that are no event, and feedback events, are recorded in a transaction each, after
        the updates. Only an unavailable database raises.
        """
        started = time.perf_counter()
        received_at = self._clock.now()
        decoded = [self._decode(body, source, received_at, None) for body in raw_bodies]
        routed: list[RoutedEvent | None] = [
            item if isinstance(item, RoutedEvent) else None for item in decoded
        ]
        updates = [
            (index, item)
            for index, item in enumerate(decoded)
            if isinstance(item, DecodedEvent) and item.event_type == PROJECTION_UPDATE
        ]
        if updates:
            results = self._intake.ingest_many(
                [event for _, event in updates], source=source, received_at=received_at
            )
            for (index, _), result in zip(updates, results, strict=True):
                routed[index] = _routed_update(result)
        for index, item in enumerate(decoded):
            if routed[index] is None and isinstance(item, DecodedEvent):
                routed[index] = self._apply(item, source, received_at)
        elapsed = time.perf_counter() - started
        done = [r for r in routed if r is not None]
        for event in done:
            self._telemetry.event_processed(event.event_type, event.status.value, elapsed)
        return done

    def _route(
        self, raw_body: bytes | str, source: str, only: str | None, replay_of: int | None = None
    ) -> RoutedEvent:
        received_at = self._clock.now()
        decoded = self._decode(raw_body, source, received_at, only, replay_of)
        if isinstance(decoded, RoutedEvent):
            return decoded
        return self._apply(decoded, source, received_at, replay_of)

    def _decode(
        self,
        raw_body: bytes | str,
        source: str,
        received_at: datetime,
        only: str | None,
        replay_of: int | None = None,
    ) -> DecodedEvent | RoutedEvent:
        """The event, or the recorded rejection of a body that is none (or not `only`)."""
        try:
            decoded = decode_event(
                raw_body, received_at=received_at, max_clock_skew=self._max_clock_skew
            )
            if only is not None and decoded.event_type != only:
                raise UndecodableEvent(_not_accepted(decoded.event_type, only), decoded.event_type)
        except UndecodableEvent as exc:
            key = self._record_undecodable(
                event_text(raw_body), exc, source, received_at, replay_of
            )
            return RoutedEvent(exc.event_type, EventStatus.REJECTED, exc.reason, event_key=key)
        return decoded

    def _apply(
        self,
        decoded: DecodedEvent,
        source: str,
        received_at: datetime,
        replay_of: int | None = None,
    ) -> RoutedEvent:
        if decoded.event_type == PROJECTION_UPDATE:
            result = self._intake.ingest(
                decoded, source=source, received_at=received_at, replay_of=replay_of
            )
            return _routed_update(result)
        outcome = self._feedback.handle(
            decoded, source=source, received_at=received_at, replay_of=replay_of
        )
        return RoutedEvent(
            decoded.event_type, outcome.status, outcome.reason, event_key=outcome.event_key
        )

    def replay(self, event_key: str) -> RoutedEvent:
        """Re-run a rejected event through intake, e.g. once the catalog knows its dataset.

        Rejected again, the inbox entry it came from is updated (reason, time, attempts):
        the inbox keeps one entry per event, however often it is replayed.
        """
        with self._uow_factory() as uow:
            logged = _inbox_entry(uow, event_key, "replay")
        if logged.raw_body is None:
            raise Conflict(f"event {event_key!r} has no stored body to replay")
        routed = self._measured(logged.raw_body, f"replay:{logged.id}", None, logged.id)
        if routed.status is not EventStatus.REJECTED:
            in_transaction(self._uow_factory, lambda uow: self._replayed(uow, logged, event_key))
        logger.info(
            log_events.ON_EVENT_REPLAYED,
            message="rejected event replayed",
            event_key=event_key,
            outcome=routed.status.value,
            error=routed.error,
        )
        return routed

    def dismiss(self, event_key: str, reason: str) -> LoggedEvent:
        """Take a rejected event that can never be valid out of the inbox, saying why.

        The entry stays in the event log (status `dismissed`, its reason, error and body);
        `events list --status dismissed` lists it. ValidationError for a missing or too long
        reason, NotFound for an unknown key, Conflict when it is not awaiting replay.
        """
        text = dismiss_reason(reason)

        def work(uow: UnitOfWork) -> LoggedEvent:
            logged = _inbox_entry(uow, event_key, "dismiss")
            now = self._clock.now()
            changed = uow.events.dismiss(logged.id, text, now)
            if changed != 1:
                raise Conflict(f"event {event_key!r} changed meanwhile; look again")
            self._incidents.resolve(
                uow, [IncidentKind.EVENT_REJECTED], [event_key], f"dismissed: {text}", now
            )
            dismissed = uow.events.get(logged.id)
            assert dismissed is not None
            return dismissed

        dismissed = in_transaction(self._uow_factory, work)
        logger.info(
            log_events.ON_EVENT_DISMISSED,
            message="rejected event dismissed",
            event_key=event_key,
            reason=text,
        )
        return dismissed

    def _replayed(self, uow: UnitOfWork, logged: LoggedEvent, event_key: str) -> None:
        now = self._clock.now()
        uow.events.mark_replayed(logged.id, now)
        self._incidents.resolve(
            uow, [IncidentKind.EVENT_REJECTED], [event_key], "replayed successfully", now
        )

    def _record_undecodable(
        self,
        raw_body: str,
        error: UndecodableEvent,
        source: str,
        received_at: datetime,
        replay_of: int | None = None,
    ) -> str:
        record = EventRecord(
            event_key=body_digest_key(error.event_type, raw_body),
            event_type=error.event_type,
            status=EventStatus.REJECTED,
            source=source,
            received_at=received_at,
            raw_body=raw_body,
            error=error.reason,
            replaces=replay_of,
        )
        in_transaction(self._uow_factory, lambda uow: self._record_rejection(uow, record))
        logger.warning(
            log_events.ON_EVENT_REJECTED,
            message="message rejected",
            event_key=record.event_key,
            error=error.reason,
            source=source,
        )
        return record.event_key

    def _record_rejection(self, uow: UnitOfWork, record: EventRecord) -> None:
        now = self._clock.now()
        uow.events.record(record, now)
        self._incidents.events_recorded(uow, [record], now)


def _inbox_entry(uow: UnitOfWork, event_key: str, action: str) -> LoggedEvent:
    """The event's newest log entry, if it awaits replay (rejected, not replayed)."""
    logged = uow.events.latest_with_key(event_key)
    if logged is None:
        raise NotFound(f"unknown event {event_key!r}")
    if logged.status is not EventStatus.REJECTED:
        raise Conflict(f"event {event_key!r} is {logged.status}, only rejected events {action}")
    if logged.replayed_at is not None:
        raise Conflict(f"event {event_key!r} was replayed already")
    return logged


def _routed_update(result: IntakeResult) -> RoutedEvent:
    return RoutedEvent(PROJECTION_UPDATE, result.status, result.error, result, result.event_key)


def _not_accepted(event_type: str, only: str) -> str:
    return (
        f"this endpoint receives {only} events, not {event_type}; "
        "worker events go to the run-feedback queue"
    )
