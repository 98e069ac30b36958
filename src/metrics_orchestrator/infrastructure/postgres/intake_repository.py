from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

from psycopg import Connection, Cursor
from psycopg.rows import TupleRow, dict_row

from metrics_orchestrator.application.ports.intake import (
    Announced,
    BatchFacts,
    DatasetInfo,
    IntakeWrites,
    MetricInputs,
    RecordedUpdate,
    RecordedUpdates,
    RecordOutcome,
)
from metrics_orchestrator.domain.metric_outputs import InputBehind, OutputFacts
from metrics_orchestrator.domain.model import (
    Cause,
    DatasetUpdate,
    Metric,
    MetricDependency,
    RunTrigger,
    StatusChange,
    TriggerPolicy,
    change_for,
    check_rows_changed,
)
from metrics_orchestrator.domain.orchestration import InputFacts
from metrics_orchestrator.infrastructure.postgres.jsonb import jsonb
from metrics_orchestrator.infrastructure.postgres.named_queries import query
from metrics_orchestrator.infrastructure.postgres.params import columns
from metrics_orchestrator.infrastructure.postgres.rows import Row, fetch_all, record

_SQL = "intake.sql"
_PROMOTE = change_for(Cause.READY)
_PENDING = _PROMOTE.source
# a waiting run that stays waiting: no status change, but it must still be pending
_STILL_PENDING = change_for(Cause.READY, _PENDING, _PENDING)


def _position(entry: tuple[int, MetricDependency]) -> int:
    return entry[0]


def _recorded(row: Row, update: DatasetUpdate) -> RecordedUpdate:
    if not row["known"]:
        return RecordedUpdate(RecordOutcome.UNKNOWN_DATASET)
    if not row["enabled"]:
        return RecordedUpdate(RecordOutcome.DISABLED_DATASET)
    if row["seq"] is None:
        return RecordedUpdate(RecordOutcome.DUPLICATE)
    return RecordedUpdate(RecordOutcome.INSERTED, update.recorded(row["seq"], row["bucket"]))


def _metric(row: Row) -> Metric:
    """A metric as intake locks it; its dependencies come with its inputs (`load_inputs`)."""
    return record(Metric, row, trigger_policy=TriggerPolicy(row["trigger_policy"]), dependencies=())


def _update(row: Row, prefix: str) -> DatasetUpdate | None:
    """The update whose columns carry this prefix (none if its id is NULL)."""
    if row[f"{prefix}id"] is None:
        return None
    return record(DatasetUpdate, row, prefix=prefix, dataset_id=row["dataset_id"])


class _Updates:
    """The updates of one load, each built once: the freshest update of a dataset, and the
    one a last run used, repeat on the row of every metric that reads the dataset (a hundred
    rows at fan-out 100, all naming the same few updates)."""

    def __init__(self) -> None:
        self._built: dict[UUID | None, DatasetUpdate | None] = {}

    def of(self, row: Row, prefix: str) -> DatasetUpdate | None:
        update_id = row[f"{prefix}id"]
        if update_id not in self._built:
            self._built[update_id] = _update(row, prefix)
        return self._built[update_id]


def _metric_inputs(metrics: Sequence[Metric], rows: Sequence[Row]) -> list[MetricInputs]:
    dependencies: dict[str, list[tuple[int, MetricDependency]]] = defaultdict(list)
    facts: dict[str, list[InputFacts]] = defaultdict(list)
    pending: dict[str, UUID] = {}
    updates = _Updates()
    for row in rows:
        metric_id, dataset_id = row["metric_id"], row["dataset_id"]
        facts[metric_id].append(
            InputFacts(dataset_id, updates.of(row, "freshest_"), updates.of(row, "used_"))
        )
        dependencies[metric_id] += [
            (position, MetricDependency(series, dataset_id))
            for series, position in zip(row["series_codes"], row["positions"], strict=True)
        ]
        if row["pending_run_id"] is not None:
            pending[metric_id] = row["pending_run_id"]
    return [
        MetricInputs(
            # the order of the series in the expression: the order of the request's inputs
            metric=replace(
                m, dependencies=tuple(dep for _, dep in sorted(dependencies[m.id], key=_position))
            ),
            facts=tuple(facts[m.id]),
            pending_run_id=pending.get(m.id),
        )
        for m in metrics
    ]


def _update_columns(updates: Sequence[Announced]) -> dict[str, Any]:
    records = [u for u, _ in updates]
    return {
        **columns(
            records,
            ids="id",
            event_keys="event_key",
            dataset_ids="dataset_id",
            buckets="bucket",
            manifests="version_manifest_path",
            projections="projections_path",
            occurred_ats="occurred_at",
            received_ats="received_at",
            effective_ats="effective_at",
            run_ids="run_id",
            formed_ats="formed_at",
        ),
        "payloads": [jsonb(payload) for _, payload in updates],
    }


class PostgresIntakeRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def _all(self, name: str, params: dict[str, Any]) -> list[Row]:
        return fetch_all(self._conn, query(_SQL, name), params)

    def _send(self, name: str, params: dict[str, Any]) -> Cursor[Row]:
        """Execute inside a pipeline; the rows are read (by name) once fetched."""
        return self._conn.cursor(row_factory=dict_row, binary=True).execute(
            query(_SQL, name), params
        )

    def _run(self, name: str, params: dict[str, Any]) -> None:
        self._conn.execute(query(_SQL, name), params)

    def dataset_for_update(self, dataset_id: str) -> DatasetInfo | None:
        rows = self._all("dataset_for_update", {"dataset_id": dataset_id})
        return DatasetInfo(bucket=rows[0]["bucket"], enabled=rows[0]["enabled"]) if rows else None

    def lock_for_batch(self, dataset_ids: Sequence[str]) -> None:
        with self._conn.pipeline():
            for cursor in self._send_locks(sorted(dataset_ids)):
                cursor.fetchall()

    def record_and_load(self, updates: Sequence[Announced]) -> BatchFacts:
        # One round trip: the statements run one after another, each with its own snapshot
        # (the ones after the locks see what was committed before the locks were granted).
        dataset_ids = sorted({u.dataset_id for u, _ in updates})
        with self._conn.pipeline():
            # The intake's statements run as prepared statements; with custom plans,
            # PostgreSQL plans input_facts anew on every execution (about a millisecond).
            # Their generic plans reach run history through index conditions only
            # (tests/integration/test_intake_generic_plans.py), so this transaction uses them.
            self._conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            locking, metrics, pending = self._send_locks(dataset_ids)
            freshest = self._send("freshest_updates", {"dataset_ids": dataset_ids})
            recorded = self._send("record_updates", _update_columns(updates))
            facts = self._send("input_facts", {"metric_ids": [], "dataset_ids": dataset_ids})
            locking.fetchall()
            pending.fetchall()
            locked = [_metric(row) for row in metrics.fetchall()]
            fact_rows = facts.fetchall()
            # the locked metrics (in id order) that read each dataset of the batch
            dependents: dict[str, list[str]] = {ds: [] for ds in dataset_ids}
            for row in fact_rows:  # ordered by metric
                if row["dataset_id"] in dependents:
                    dependents[row["dataset_id"]].append(row["metric_id"])
            freshest_before = {
                row["dataset_id"]: _update(row, "freshest_") for row in freshest.fetchall()
            }
            outcomes = [
                _recorded(row, update)
                for row, (update, _) in zip(recorded.fetchall(), updates, strict=True)
            ]
            inputs = _metric_inputs(locked, fact_rows)
        return BatchFacts(
            dependents=dependents,
            recorded=RecordedUpdates(freshest_before=freshest_before, outcomes=outcomes),
            inputs=inputs,
        )

    def _send_locks(self, dataset_ids: list[str]) -> tuple[Cursor[Row], ...]:
        """The batch's locks in the global intake order (datasets, metrics, pending runs)."""
        params = {"dataset_ids": dataset_ids}
        return (
            self._send("lock_datasets", params),
            self._send("lock_dependent_metrics", params),
            self._send("lock_pending_runs", params),
        )

    def dependent_metrics(self, dataset_id: str) -> list[Metric]:
        rows = self._all("dependent_metrics", {"dataset_id": dataset_id})
        return [_metric(r) for r in rows]

    def lock_metric_by_code(self, code: str) -> Metric | None:
        rows = self._all("lock_metric_by_code", {"code": code})
        return _metric(rows[0]) if rows else None

    def metric_by_code(self, code: str) -> Metric | None:
        rows = self._all("metric_by_code", {"code": code})
        return _metric(rows[0]) if rows else None

    def load_inputs(self, metrics: Sequence[Metric]) -> list[MetricInputs]:
        rows = self._all("input_facts", {"metric_ids": [m.id for m in metrics], "dataset_ids": []})
        return _metric_inputs(metrics, rows)

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

    def save(self, writes: IntakeWrites) -> None:
        # One pipeline: the statements go out together and the two checks of rows changed
        # are read at the end (a failed one rolls the whole transaction back anyway).
        with self._conn.pipeline():
            if writes.freshest:
                self._run(
                    "set_freshest_updates",
                    {
                        "dataset_ids": list(writes.freshest),
                        "update_ids": list(writes.freshest.values()),
                    },
                )
            # promotions first: a metric's run promoted by one update of the batch and its
            # new pending run from a later one would otherwise be two pending runs at once
            checks = self._send_pending_checks(writes)
            self._insert_runs(writes)
            self._write_holds(writes)
            self._write_lineage(writes)
            if writes.last_automatic:
                self._run(
                    "set_last_automatic_runs",
                    {
                        "metric_ids": list(writes.last_automatic),
                        "run_ids": list(writes.last_automatic.values()),
                    },
                )
            for changed, expected, change in checks:
                check_rows_changed(len(changed.fetchall()), expected, change)

    def _insert_runs(self, writes: IntakeWrites) -> None:
        new_pending = [w for w in writes.waiting if w.created_at is not None]
        if new_pending:
            self._run(
                "insert_pending_runs",
                {
                    **columns(
                        new_pending,
                        run_ids="run_id",
                        metric_ids="metric_id",
                        created_ats="created_at",
                    ),
                    "status": _PENDING.value,
                    "trigger": RunTrigger.AUTOMATIC.value,
                },
            )
        new_queued = [q for q in writes.queued if q.created_at is not None]
        if new_queued:
            self._run(
                "insert_queued_runs",
                {
                    "status": _PROMOTE.target.value,
                    **columns(
                        new_queued,
                        run_ids="run.run_id",
                        metric_ids="run.metric_id",
                        triggers="run.trigger.value",
                        fingerprints="run.fingerprint",
                        payloads=lambda q: jsonb(q.run.payload),
                        created_ats="created_at",
                        queued_ats="queued_at",
                        definition_versions="run.definition_version",
                    ),
                },
            )

    def _send_pending_checks(
        self, writes: IntakeWrites
    ) -> list[tuple[Cursor[Row], int, StatusChange]]:
        """Sent, not read: the runs that must still be pending and the runs promoted from
        pending, each with how many rows it must return and the change it checks."""
        checks = []
        held = [w.run_id for w in writes.waiting if w.existed_before_transaction]
        if held:
            cursor = self._send("still_pending_runs", {"run_ids": held, "status": _PENDING.value})
            checks.append((cursor, len(held), _STILL_PENDING))
        promoted = [q for q in writes.queued if q.existed_before_transaction]
        if promoted:
            cursor = self._send(
                "promote_pending_runs",
                {
                    **columns(
                        promoted,
                        run_ids="run.run_id",
                        fingerprints="run.fingerprint",
                        payloads=lambda q: jsonb(q.run.payload),
                        queued_ats="queued_at",
                        definition_versions="run.definition_version",
                    ),
                    "from": _PROMOTE.source.value,
                    "to": _PROMOTE.target.value,
                },
            )
            checks.append((cursor, len(promoted), _PROMOTE))
        return checks

    def _write_holds(self, writes: IntakeWrites) -> None:
        holds = {w.run_id: w.held for w in writes.waiting}
        holds.update({q.run.run_id: q.held for q in writes.queued if q.held is not None})
        if not holds:
            return
        self._run("replace_pending_rows_delete", {"run_ids": list(holds)})
        rows = [(run_id, ds, h) for run_id, held in holds.items() for ds, h in held.items()]
        self._run(
            "replace_pending_rows_insert",
            {
                "run_ids": [run_id for run_id, _, _ in rows],
                "dataset_ids": [ds for _, ds, _ in rows],
                "update_ids": [h.id if h else None for _, _, h in rows],
                "received_ats": [h.received_at if h else None for _, _, h in rows],
            },
        )

    def _write_lineage(self, writes: IntakeWrites) -> None:
        if not writes.queued:
            return
        lineage = [(q.run.run_id, ds, u) for q in writes.queued for ds, u in q.run.lineage.items()]
        self._run(
            "insert_lineage",
            {
                "run_ids": [run_id for run_id, _, _ in lineage],
                "dataset_ids": [ds for _, ds, _ in lineage],
                "update_ids": [u for _, _, u in lineage],
            },
        )
        # The one home of "a queued run that waited keeps its rows as the record of what it
        # waited for, filled now with the updates it consumed": a run pending before this
        # transaction, or one that waited earlier in it (its rows were just written).
        waited = [
            q.run.run_id
            for q in writes.queued
            if q.existed_before_transaction or q.held is not None
        ]
        if waited:
            self._run("fill_pending_rows_from_lineage", {"run_ids": waited})

    def run_output(self, run_id: UUID, manifest: str | None) -> OutputFacts | None:
        rows = self._all("run_output", {"run_id": run_id})
        if not rows:
            return None
        row = rows[0]
        return OutputFacts(run_id, row["dataset_id"], row["base_path"], row["formed_at"], manifest)

    def inputs_behind(self, run_id: UUID) -> list[InputBehind]:
        rows = self._all("inputs_behind", {"run_id": run_id})
        return [InputBehind(r["effective_at"], r["data_time"], r["from_metric"]) for r in rows]
