"""Read-only queries of the API and the metrics endpoint (application/queries.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.ports.queries import (
    GridQuery,
    GridRow,
    GridRun,
    HourlyRunCount,
    LastRun,
    MetricDataFacts,
    MetricRunSummary,
    RunData,
    RunGauges,
    RunMatch,
    RunWaits,
    SearchHits,
    VersionConsumer,
    VersionFacts,
    VersionProducer,
)
from metrics_orchestrator.domain.metric_state import InputFact, MetricFacts, RunFact
from metrics_orchestrator.domain.model import DatasetUpdate, RunStatus, RunTrigger
from metrics_orchestrator.domain.staleness import StalenessFacts
from metrics_orchestrator.infrastructure.postgres.named_queries import query
from metrics_orchestrator.infrastructure.postgres.rows import Row, fetch_all, fetch_one, record

_SQL = "queries.sql"


class PostgresQueryRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def _rows(self, name: str, params: Mapping[str, object] | None = None) -> list[Row]:
        return fetch_all(self._conn, query(_SQL, name), params or {})

    def _row(self, name: str, params: Mapping[str, object]) -> Row:
        row = fetch_one(self._conn, query(_SQL, name), params)
        assert row is not None  # an aggregate always returns its one row
        return row

    def recent_dataset_updates(self, dataset_id: str, limit: int) -> list[DatasetUpdate]:
        rows = self._rows("recent_dataset_updates", {"dataset_id": dataset_id, "limit": limit})
        return [record(DatasetUpdate, row) for row in rows]

    def freshest_update_by_dataset(self) -> dict[str, DatasetUpdate]:
        rows = self._rows("freshest_update_by_dataset")
        return {row["dataset_id"]: record(DatasetUpdate, row) for row in rows}

    def last_run_by_metric(self) -> dict[str, LastRun]:
        return {
            row["code"]: LastRun(RunStatus(row["status"]), row["created_at"], row["completed_at"])
            for row in self._rows("last_run_by_metric")
        }

    def run_gauges(self, now: datetime) -> RunGauges:
        row = self._row("run_gauges", {"now": now})
        return RunGauges(
            pending_runs=int(row["pending_runs"]),
            dispatcher_backlog=int(row["dispatcher_backlog"]),
        )

    def runs_by_status(self) -> dict[RunStatus, int]:
        return {RunStatus(row["status"]): int(row["count"]) for row in self._rows("runs_by_status")}

    def runs_by_hour_and_status(self, since: datetime) -> list[HourlyRunCount]:
        rows = self._rows("runs_by_hour_and_status", {"since": since})
        return [
            HourlyRunCount(row["hour"], RunStatus(row["status"]), int(row["count"])) for row in rows
        ]

    def run_waits(self, now: datetime) -> RunWaits:
        row = self._row("run_waits", {"now": now})
        return RunWaits(
            oldest_pending_since=row["oldest_pending"],
            dispatcher_backlog=int(row["dispatcher_backlog"]),
            rejected_events=int(row["rejected_events"]),
        )

    def metric_state_facts(self, codes: list[str] | None, recent_runs: int) -> list[MetricFacts]:
        rows = self._rows("metric_state_facts", {"codes": codes, "recent": recent_runs})
        return [
            record(
                MetricFacts,
                row,
                runs=tuple(_run_fact(run) for run in row["runs"]),
                inputs=tuple(_input_fact(i) for i in row["inputs"]),
            )
            for row in rows
        ]

    def metric_data_facts(self) -> list[MetricDataFacts]:
        return [
            MetricDataFacts(
                staleness=record(
                    StalenessFacts,
                    row,
                    newer_inputs=tuple(row["newer_inputs"]),
                    upstream=tuple(row["upstream"]),
                ),
                data_time=row["data_time"],
            )
            for row in self._rows("metric_data_facts")
        ]

    def metric_upstream(self) -> dict[str, tuple[str, ...]]:
        return {row["code"]: tuple(row["upstream"]) for row in self._rows("metric_upstream")}

    def metric_run_summaries(self, codes: list[str], recent: int) -> dict[str, MetricRunSummary]:
        rows = self._rows("metric_run_summaries", {"codes": codes, "recent": recent})
        return {
            row["code"]: record(
                MetricRunSummary,
                row,
                last_status=_status(row["last_status"]),
                p50_duration_seconds=_seconds(row["p50_duration_seconds"]),
            )
            for row in rows
        }

    def run_grid(self, grid: GridQuery) -> list[GridRow]:
        params = {
            "code_like": grid.code_like,
            "after": grid.after_code,
            "since": grid.since,
            "runs": grid.runs,
            "status": str(grid.newest_status) if grid.newest_status else None,
            "failing": grid.failing_only,
            "metrics": grid.metrics,
        }
        cells: dict[str, list[GridRun]] = {}
        for row in self._rows("run_grid", params):
            runs = cells.setdefault(row["code"], [])
            if row["id"] is not None:  # a metric with no run in view: its row, no cell
                runs.append(record(GridRun, row, status=RunStatus(row["status"])))
        # rows come in code order, runs newest first, one past the limit saying "more"
        return [
            GridRow(code, tuple(runs[: grid.runs]), more=len(runs) > grid.runs)
            for code, runs in cells.items()
        ]

    def run_data(self, run_id: UUID) -> RunData | None:
        row = fetch_one(self._conn, query(_SQL, "run_data"), {"id": run_id})
        return record(RunData, row) if row is not None else None

    def runs_in_id_range(self, lowest: UUID, highest: UUID, limit: int) -> list[RunMatch]:
        rows = self._rows(
            "runs_in_id_range", {"lowest": lowest, "highest": highest, "limit": limit}
        )
        return [record(RunMatch, row, status=RunStatus(row["status"])) for row in rows]

    def dataset_version(self, dataset_id: str, update_id: UUID) -> VersionFacts | None:
        params = {"dataset_id": dataset_id, "update_id": update_id}
        row = fetch_one(self._conn, query(_SQL, "dataset_version"), params)
        if row is None:
            return None
        producer = (
            VersionProducer(
                row["run_id"], row["producer_metric_code"], RunStatus(row["producer_status"])
            )
            if row["producer_metric_code"] is not None
            else None
        )
        return VersionFacts(record(DatasetUpdate, row), bool(row["is_freshest"]), producer)

    def version_consumers(self, update_id: UUID, limit: int) -> list[VersionConsumer]:
        rows = self._rows("version_consumers", {"update_id": update_id, "limit": limit})
        return [
            record(
                VersionConsumer,
                row,
                status=RunStatus(row["status"]),
                trigger=RunTrigger(row["trigger"]),
            )
            for row in rows
        ]

    def search(self, text: str, run_range: tuple[UUID, UUID] | None, limit: int) -> SearchHits:
        lowest, highest = run_range if run_range is not None else (None, None)
        row = self._row(
            "search", {"text": text, "lowest": lowest, "highest": highest, "limit": limit}
        )
        return SearchHits(
            text=text,
            metric_code=row["metric_code"],
            dataset_id=row["dataset_id"],
            event_id=row["event_id"],
            runs=tuple(_run_match(run) for run in row["runs"]),
        )


def _status(value: str | None) -> RunStatus | None:
    return RunStatus(value) if value is not None else None


def _seconds(value: float | None) -> float | None:
    return float(value) if value is not None else None


# jsonb_build_object renders timestamptz as ISO 8601, which fromisoformat reads back exactly.
def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _run_fact(run: dict[str, Any]) -> RunFact:
    created_at = _moment(run["created_at"])
    assert created_at is not None  # NOT NULL column
    return RunFact(
        id=UUID(run["id"]),
        retry_of=UUID(run["retry_of"]) if run["retry_of"] else None,
        status=RunStatus(run["status"]),
        attempt=int(run["attempt"]),
        created_at=created_at,
        not_before=_moment(run["not_before"]),
        completed_at=_moment(run["completed_at"]),
        message=run["message"],
        retry_decided=bool(run["retry_decided"]),
    )


def _input_fact(value: dict[str, Any]) -> InputFact:
    return InputFact(
        dataset_id=value["dataset_id"],
        freshest_effective_at=_moment(value["freshest_effective_at"]),
        held=bool(value["held"]),
    )


def _run_match(run: dict[str, Any]) -> RunMatch:
    created_at = _moment(run["created_at"])
    assert created_at is not None  # NOT NULL column
    return RunMatch(
        id=UUID(run["id"]),
        metric_code=run["metric_code"],
        status=RunStatus(run["status"]),
        attempt=int(run["attempt"]),
        created_at=created_at,
    )
