from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection, Cursor, errors
from psycopg.rows import TupleRow, dict_row
from psycopg.types.json import Jsonb

from metrics_orchestrator.application.ports import TransientDatabaseError
from metrics_orchestrator.application.ports.intake import (
    DatasetInfo,
    MetricForIntake,
    MetricInputs,
    NewDatasetUpdate,
    QueuedRun,
    RecordedUpdates,
    RecordOutcome,
    UpdateNotStorable,
    WaitingRun,
)
from metrics_orchestrator.domain.errors import DomainError
from metrics_orchestrator.domain.model import (
    Cause,
    MetricDependency,
    RunTrigger,
    StatusChange,
    TriggerPolicy,
    change_for,
    check_rows_changed,
)
from metrics_orchestrator.domain.orchestration import InputFacts, UpdateVersion
from metrics_orchestrator.domain.run_request import ConsumedUpdate
from metrics_orchestrator.infrastructure.postgres.queries import query
from metrics_orchestrator.infrastructure.postgres.rows import Row, fetch_all

_SQL = "intake.sql"
_PROMOTE = change_for(Cause.READY)
_PENDING = _PROMOTE.source
# a waiting run that stays waiting: no status change, but it must still be pending
_STILL_PENDING = StatusChange(Cause.READY, _PENDING, _PENDING)


def _position(entry: tuple[int, MetricDependency]) -> int:
    return entry[0]


def _record_outcome(
    known: bool, enabled: bool, seq: int | None
) -> tuple[RecordOutcome, int | None]:
    if not known:
        return RecordOutcome.UNKNOWN_DATASET, None
    if not enabled:
        return RecordOutcome.DISABLED_DATASET, None
    return (RecordOutcome.INSERTED, seq) if seq is not None else (RecordOutcome.DUPLICATE, None)


def _metric(row: Row) -> MetricForIntake:
    return MetricForIntake(
        id=row["id"],
        code=row["code"],
        expression_type=row["expression_type"],
        expression_json=row["expression_json"],
        required_days=row["required_days"],
        trigger_policy=TriggerPolicy(row["trigger_policy"]),
        enabled=row["enabled"],
    )


class PostgresIntakeRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def _all(self, name: str, params: dict[str, Any]) -> list[Row]:
        return fetch_all(self._conn, query(_SQL, name), params)

    def _send(self, name: str, params: dict[str, Any]) -> Cursor[Row]:
        """Execute inside a pipeline; the rows are read (by name) once fetched."""
        return self._conn.cursor(row_factory=dict_row).execute(query(_SQL, name), params)

    def _run(self, name: str, params: dict[str, Any]) -> None:
        self._conn.execute(query(_SQL, name), params)

    def dataset_for_update(self, dataset_id: str) -> DatasetInfo | None:
        rows = self._all("dataset_for_update", {"dataset_id": dataset_id})
        return DatasetInfo(bucket=rows[0]["bucket"], enabled=rows[0]["enabled"]) if rows else None

    def record_updates(self, updates: Sequence[NewDatasetUpdate]) -> RecordedUpdates:
        dataset_ids = sorted({u.dataset_id for u in updates})
        with self._conn.pipeline():
            locking = self._send("lock_datasets", {"dataset_ids": dataset_ids})
            locked = self._send("freshest_updates", {"dataset_ids": dataset_ids})
            recorded = self._send(
                "record_updates",
                {
                    "ids": [u.id for u in updates],
                    "event_keys": [u.event_key for u in updates],
                    "dataset_ids": [u.dataset_id for u in updates],
                    "buckets": [u.bucket for u in updates],
                    "manifests": [u.version_manifest_path for u in updates],
                    "projections": [u.projections_path for u in updates],
                    "occurred_ats": [u.occurred_at for u in updates],
                    "received_ats": [u.received_at for u in updates],
                    "effective_ats": [u.effective_at for u in updates],
                    "payloads": [Jsonb(u.payload) for u in updates],
                },
            )
            locking.fetchall()
            freshest: dict[str, UpdateVersion | None] = {
                row["dataset_id"]: UpdateVersion(
                    row["update_id"],
                    row["dataset_id"],
                    row["effective_at"],
                    row["received_at"],
                    row["seq"],
                )
                for row in locked.fetchall()
            }
            outcomes = [
                _record_outcome(row["known"], row["enabled"], row["seq"])
                for row in recorded.fetchall()
            ]
        return RecordedUpdates(freshest_before=freshest, outcomes=outcomes)

    def set_freshest(self, freshest: dict[str, UUID]) -> None:
        self._run(
            "set_freshest_updates",
            {"dataset_ids": list(freshest), "update_ids": list(freshest.values())},
        )

    def lock_for_batch(self, dataset_ids: Sequence[str]) -> dict[str, list[MetricForIntake]]:
        ids = sorted(dataset_ids)
        self._all("lock_datasets", {"dataset_ids": ids})
        metrics = {m.id: m for m in self.lock_dependent_metrics(ids)}
        dependents: dict[str, list[MetricForIntake]] = {ds: [] for ds in ids}
        if metrics:
            rows = self._all(
                "metrics_of_datasets", {"dataset_ids": ids, "metric_ids": list(metrics)}
            )
            for dataset_id, metric_id in sorted((r["dataset_id"], r["metric_id"]) for r in rows):
                dependents[dataset_id].append(metrics[metric_id])
        return dependents

    @contextmanager
    def isolated(self) -> Iterator[None]:
        # Plain SQL rather than conn.transaction(): the batch's transaction is always open
        # here (the locks were taken), so this is a savepoint and never a BEGIN/COMMIT.
        # Not released after success (one round trip less per update): a later
        # ROLLBACK TO goes to the newest savepoint of that name, this update's own.
        self._conn.execute("SAVEPOINT intake_update")
        try:
            yield
        except errors.UniqueViolation as exc:
            # a concurrent insert of the same row: decided again in a new transaction
            self._conn.execute("ROLLBACK TO SAVEPOINT intake_update")
            raise TransientDatabaseError(str(exc)) from exc
        except (errors.DataError, errors.IntegrityError) as exc:
            self._conn.execute("ROLLBACK TO SAVEPOINT intake_update")
            raise UpdateNotStorable(str(exc)) from exc
        except DomainError:
            self._conn.execute("ROLLBACK TO SAVEPOINT intake_update")
            raise

    def lock_dependent_metrics(self, dataset_ids: Sequence[str]) -> list[MetricForIntake]:
        rows = self._all("lock_dependent_metrics", {"dataset_ids": list(dataset_ids)})
        metrics = [_metric(r) for r in rows]
        if metrics:
            self._all("lock_pending_runs", {"metric_ids": [m.id for m in metrics]})
        return metrics

    def dependent_metrics(self, dataset_id: str) -> list[MetricForIntake]:
        rows = self._all("dependent_metrics", {"dataset_id": dataset_id})
        return [_metric(r) for r in rows]

    def lock_metric_by_code(self, code: str) -> MetricForIntake | None:
        rows = self._all("lock_metric_by_code", {"code": code})
        return _metric(rows[0]) if rows else None

    def metric_by_code(self, code: str) -> MetricForIntake | None:
        rows = self._all("metric_by_code", {"code": code})
        return _metric(rows[0]) if rows else None

    def load_inputs(self, metrics: Sequence[MetricForIntake]) -> list[MetricInputs]:
        ids = [m.id for m in metrics]
        dependencies: dict[str, list[tuple[int, MetricDependency]]] = defaultdict(list)
        facts: dict[str, list[InputFacts]] = defaultdict(list)
        pending: dict[str, UUID] = {}
        updates: dict[UUID, ConsumedUpdate] = {}
        for row in self._all("input_facts", {"metric_ids": ids}):
            metric_id, dataset_id = row["metric_id"], row["dataset_id"]
            freshest = None
            if row["freshest_id"] is not None:
                freshest = UpdateVersion(
                    row["freshest_id"],
                    dataset_id,
                    row["freshest_effective_at"],
                    row["freshest_received_at"],
                    row["freshest_seq"],
                )
                updates[row["freshest_id"]] = ConsumedUpdate(
                    row["freshest_id"],
                    dataset_id,
                    row["bucket"],
                    row["version_manifest_path"],
                    row["projections_path"],
                )
            last_used = (
                UpdateVersion(
                    row["used_id"],
                    dataset_id,
                    row["used_effective_at"],
                    row["used_received_at"],
                    row["used_seq"],
                )
                if row["used_id"] is not None
                else None
            )
            facts[metric_id].append(InputFacts(dataset_id, freshest, last_used))
            dependencies[metric_id] += [
                (position, MetricDependency(series, dataset_id))
                for series, position in zip(row["series_codes"], row["positions"], strict=True)
            ]
            if row["pending_run_id"] is not None:
                pending[metric_id] = row["pending_run_id"]
        return [
            MetricInputs(
                metric=m,
                # the order of the series in the expression: the order of the request's inputs
                dependencies=tuple(dep for _, dep in sorted(dependencies[m.id], key=_position)),
                facts=tuple(facts[m.id]),
                updates=updates,
                pending_run_id=pending.get(m.id),
            )
            for m in metrics
        ]

    def existing_automatic_fingerprints(
        self, candidates: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        if not candidates:
            return set()
        rows = self._all(
            "existing_automatic_fingerprints",
            {
                "metric_ids": [m for m, _ in candidates],
                "fingerprints": [f for _, f in candidates],
            },
        )
        return {(r["metric_id"], r["fingerprint"]) for r in rows}

    def save_waiting(self, runs: Sequence[WaitingRun], now: datetime) -> None:
        new = [r for r in runs if r.is_new_run]
        held = [r.run_id for r in runs if not r.is_new_run]
        if held:
            touched = self._all("still_pending_runs", {"run_ids": held, "status": _PENDING.value})
            check_rows_changed(len(touched), len(held), _STILL_PENDING)
        if new:
            self._run(
                "insert_pending_runs",
                {
                    "run_ids": [r.run_id for r in new],
                    "metric_ids": [r.metric_id for r in new],
                    "status": _PENDING.value,
                    "trigger": RunTrigger.AUTOMATIC.value,
                    "now": now,
                },
            )
        self._run("replace_pending_rows_delete", {"run_ids": [r.run_id for r in runs]})
        rows = [(r.run_id, ds, held) for r in runs for ds, held in r.held.items()]
        self._run(
            "replace_pending_rows_insert",
            {
                "run_ids": [run_id for run_id, _, _ in rows],
                "dataset_ids": [ds for _, ds, _ in rows],
                "update_ids": [h.update_id if h else None for _, _, h in rows],
                "received_ats": [h.received_at if h else None for _, _, h in rows],
            },
        )

    def save_queued(self, runs: Sequence[QueuedRun], now: datetime) -> None:
        for trigger in {r.trigger for r in runs if r.is_new_run}:
            new = [r for r in runs if r.is_new_run and r.trigger is trigger]
            self._run(
                "insert_queued_runs",
                {
                    "status": _PROMOTE.target.value,
                    "trigger": trigger.value,
                    "run_ids": [r.run_id for r in new],
                    "metric_ids": [r.metric_id for r in new],
                    "fingerprints": [r.fingerprint for r in new],
                    "payloads": [Jsonb(r.payload) for r in new],
                    "now": now,
                },
            )
        promoted = [r for r in runs if not r.is_new_run]
        if promoted:
            changed = self._all(
                "promote_pending_runs",
                {
                    "run_ids": [r.run_id for r in promoted],
                    "fingerprints": [r.fingerprint for r in promoted],
                    "payloads": [Jsonb(r.payload) for r in promoted],
                    "from": _PROMOTE.source.value,
                    "to": _PROMOTE.target.value,
                    "now": now,
                },
            )
            check_rows_changed(len(changed), len(promoted), _PROMOTE)
        lineage = [(r.run_id, ds, u) for r in runs for ds, u in r.lineage.items()]
        self._run(
            "insert_lineage",
            {
                "run_ids": [run_id for run_id, _, _ in lineage],
                "dataset_ids": [ds for _, ds, _ in lineage],
                "update_ids": [u for _, _, u in lineage],
            },
        )
        if promoted:
            self._run("fill_pending_rows_from_lineage", {"run_ids": [r.run_id for r in promoted]})
        automatic = [r for r in runs if r.trigger is RunTrigger.AUTOMATIC]
        if automatic:
            self._run(
                "set_last_automatic_runs",
                {
                    "metric_ids": [r.metric_id for r in automatic],
                    "run_ids": [r.run_id for r in automatic],
                },
            )

    def notify_queued(self) -> None:
        self._run("notify_queued", {})

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        # Statements are sent without waiting for each other's results; fetching a result (or
        # leaving the block) waits for everything sent before it. Errors surface there too.
        with self._conn.pipeline():
            yield
