"""PostgreSQL adapters of the incident and notification ports (SPEC §9): sql/incidents.sql."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.ports.incidents import (
    ChannelSettings,
    ChannelTarget,
    ChannelView,
    ClaimedDelivery,
    DeliveryView,
    IncidentPage,
    ListeningChannel,
    NewDelivery,
    RecordedOccurrence,
)
from metrics_orchestrator.domain.freshness import DatasetObjective, MetricObjective
from metrics_orchestrator.domain.incidents import (
    Change,
    ChannelFilter,
    ChannelFormat,
    Incident,
    IncidentKind,
    Occurrence,
    shown_url,
)
from metrics_orchestrator.infrastructure.postgres.event_log_repository import storable_text
from metrics_orchestrator.infrastructure.postgres.named_queries import query
from metrics_orchestrator.infrastructure.postgres.rows import Row, fetch_all, fetch_one, record


def _sql(name: str) -> Any:
    return query("incidents.sql", name)


def _incident(row: Row) -> Incident:
    return record(Incident, row, kind=IncidentKind(row["kind"]))


def _kinds(values: list[str] | None) -> tuple[IncidentKind, ...] | None:
    return None if values is None else tuple(IncidentKind(v) for v in values)


class PostgresIncidentRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def record_occurrence(self, occurrence: Occurrence, *, counted: bool) -> tuple[Incident, bool]:
        # a rejection's reason can quote a body's NUL or lone surrogate (as the event log does)
        params = {
            "kind": str(occurrence.kind),
            "subject": storable_text(occurrence.subject),
            "summary": storable_text(occurrence.summary),
            "at": occurrence.at,
            "increment": 1 if counted else 0,
        }
        row = fetch_one(self._conn, _sql("record_occurrence"), params)
        assert row is not None
        incident, opened = _incident(row), bool(row["opened"])
        if opened or counted:
            self._conn.execute(
                _sql("add_occurrence"),
                {
                    "incident_id": incident.id,
                    "seq": incident.count,
                    "at": occurrence.at,
                    "run_id": occurrence.run_id,
                    "event_key": storable_text(occurrence.event_key),
                    "detail": storable_text(occurrence.summary),
                },
            )
        return incident, opened

    def resolve(
        self,
        kinds: Sequence[IncidentKind],
        subjects: Sequence[str],
        resolution: str,
        at: datetime,
    ) -> list[Incident]:
        if not subjects or not kinds:
            return []
        params = {
            "kinds": [str(kind) for kind in kinds],
            "subjects": [storable_text(s) for s in subjects],
            "resolution": storable_text(resolution),
            "at": at,
        }
        return [_incident(row) for row in fetch_all(self._conn, _sql("resolve_incidents"), params)]

    def open_subjects(self, kind: IncidentKind, subjects: Sequence[str] | None) -> list[str]:
        params = {"kind": str(kind), "subjects": None if subjects is None else list(subjects)}
        return [row["subject"] for row in fetch_all(self._conn, _sql("open_subjects"), params)]

    def dataset_objectives(self, dataset_ids: Sequence[str] | None) -> list[DatasetObjective]:
        params = {"ids": None if dataset_ids is None else list(dataset_ids)}
        rows = fetch_all(self._conn, _sql("dataset_objectives"), params)
        return [record(DatasetObjective, row) for row in rows]

    def metric_objectives(self, metric_codes: Sequence[str] | None) -> list[MetricObjective]:
        params = {"codes": None if metric_codes is None else list(metric_codes)}
        rows = fetch_all(self._conn, _sql("metric_objectives"), params)
        return [record(MetricObjective, row) for row in rows]

    def open_counts(self) -> dict[IncidentKind, int]:
        rows = fetch_all(self._conn, _sql("open_counts"), {})
        return {IncidentKind(row["kind"]): int(row["open"]) for row in rows}

    def try_lock_freshness(self) -> bool:
        row = fetch_one(self._conn, _sql("try_lock_freshness"), {})
        return bool(row and row["locked"])

    def page(
        self,
        *,
        open_only: bool,
        kind: IncidentKind | None,
        subject: str | None,
        before: int | None,
        limit: int,
    ) -> IncidentPage:
        params = {
            "open_only": open_only,
            "kind": str(kind) if kind else None,
            "subject": subject,
            "before": before,
            "limit": limit + 1,
        }
        rows = fetch_all(self._conn, _sql("list_incidents"), params)
        incidents = tuple(_incident(row) for row in rows[:limit])
        more = len(rows) > limit
        return IncidentPage(incidents, incidents[-1].id if more and incidents else None)

    def get(self, incident_id: int) -> Incident | None:
        row = fetch_one(self._conn, _sql("get_incident"), {"id": incident_id})
        return _incident(row) if row else None

    def occurrences(self, incident_id: int, limit: int) -> list[RecordedOccurrence]:
        params = {"id": incident_id, "limit": limit}
        rows = fetch_all(self._conn, _sql("incident_occurrences"), params)
        return [record(RecordedOccurrence, row) for row in rows]


class PostgresNotificationRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def upsert_channels(self, channels: Sequence[ChannelSettings], at: datetime) -> None:
        for channel in channels:
            self._conn.execute(
                _sql("upsert_channel"),
                {
                    "name": channel.name,
                    "url": channel.url,
                    "format": str(channel.format),
                    "secret": channel.secret,
                    "kinds": None if channel.kinds is None else [str(k) for k in channel.kinds],
                    "metrics": None if channel.metrics is None else list(channel.metrics),
                    "enabled": channel.enabled,
                    "at": at,
                },
            )

    def disable_channel(self, name: str, at: datetime) -> int:
        return self._conn.execute(_sql("disable_channel"), {"name": name, "at": at}).rowcount

    def channels(self) -> list[ChannelView]:
        return [
            record(
                ChannelView,
                row,
                url=shown_url(row["url"]),
                format=ChannelFormat(row["format"]),
                kinds=_kinds(row["kinds"]),
                metrics=None if row["metrics"] is None else tuple(row["metrics"]),
            )
            for row in fetch_all(self._conn, _sql("channels"), {})
        ]

    def target(self, name: str) -> ChannelTarget | None:
        row = fetch_one(self._conn, _sql("channel_target"), {"name": name})
        return record(ChannelTarget, row, format=ChannelFormat(row["format"])) if row else None

    def listening(self) -> list[ListeningChannel]:
        rows = fetch_all(self._conn, _sql("listening_channels"), {})
        return [
            ListeningChannel(
                name=row["name"],
                format=ChannelFormat(row["format"]),
                wants=ChannelFilter(
                    kinds=None if row["kinds"] is None else frozenset(_kinds(row["kinds"]) or ()),
                    metrics=None if row["metrics"] is None else tuple(row["metrics"]),
                ),
            )
            for row in rows
        ]

    def enqueue(self, deliveries: Sequence[NewDelivery]) -> None:
        if not deliveries:
            return
        self._conn.execute(
            _sql("enqueue_deliveries"),
            {
                "ids": [d.id for d in deliveries],
                "channels": [d.channel for d in deliveries],
                "incidents": [d.incident_id for d in deliveries],
                "changes": [str(d.change) for d in deliveries],
                "bodies": [d.body for d in deliveries],
                "created": [d.created_at for d in deliveries],
            },
        )

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedDelivery]:
        params = {"now": now, "lease_until": lease_until, "limit": limit}
        rows = fetch_all(self._conn, _sql("claim_due_deliveries"), params)
        return [record(ClaimedDelivery, row, change=Change(row["change"])) for row in rows]

    def finish(
        self,
        delivery: ClaimedDelivery,
        *,
        state: str,
        result: str,
        at: datetime,
        next_attempt_at: datetime,
    ) -> int:
        params = {
            "id": delivery.id,
            "attempts": delivery.attempts,
            "state": state,
            "result": result,
            "at": at,
            "next_attempt_at": next_attempt_at,
        }
        return self._conn.execute(_sql("finish_delivery"), params).rowcount

    def record_sent(self, delivery: NewDelivery, *, state: str, result: str, at: datetime) -> None:
        self._conn.execute(
            _sql("record_sent_delivery"),
            {
                "id": delivery.id,
                "channel": delivery.channel,
                "incident_id": delivery.incident_id,
                "change": str(delivery.change),
                "body": delivery.body,
                "created_at": delivery.created_at,
                "state": state,
                "result": result,
                "at": at,
            },
        )

    def deliveries(
        self, *, incident_id: int | None, state: str | None, limit: int
    ) -> list[DeliveryView]:
        params = {"incident_id": incident_id, "state": state, "limit": limit}
        rows = fetch_all(self._conn, _sql("deliveries"), params)
        return [record(DeliveryView, row, change=Change(row["change"])) for row in rows]

    def delivery_counts(self) -> dict[str, int]:
        rows = fetch_all(self._conn, _sql("delivery_counts"), {})
        return {row["state"]: int(row["deliveries"]) for row in rows}
