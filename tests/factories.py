"""Seed catalog rows, dataset updates and runs in any status directly with SQL.

For tests that need a run in a given state without driving intake and dispatch to it. Rows
respect the schema's CHECK constraints: a queued-or-later run carries a request payload (built
with the real §4.3 builder), an inputs fingerprint, queued_at and its lineage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from metrics_orchestrator.domain.messages.run_requested import build_run_request
from metrics_orchestrator.domain.model import DatasetUpdate, MetricDependency, RunStatus, RunTrigger
from metrics_orchestrator.domain.orchestration import freshest

DEFAULT_NOW = datetime(2025, 11, 11, 12, 0, tzinfo=UTC)
NO_REQUEST_STATUSES = frozenset({RunStatus.PENDING_DEPENDENCIES})


def seed_metric(
    conn: Connection[Any],
    *,
    metric_id: str = "m.ratio",
    code: str = "ratio.a_to_b",
    inputs: Sequence[tuple[str, str]] = (("d1", "A"), ("d2", "B")),
    max_attempts: int = 3,
    enabled: bool = True,
    required_days: int = 7,
) -> None:
    """A series_math metric over `inputs` ((dataset_id, series_code) in expression order)."""
    for dataset_id, series_code in inputs:
        conn.execute(
            "INSERT INTO datasets (id, bucket) VALUES (%s, 'ingestor-datasets')"
            " ON CONFLICT DO NOTHING",
            (dataset_id,),
        )
        conn.execute("INSERT INTO series (code) VALUES (%s) ON CONFLICT DO NOTHING", (series_code,))
        conn.execute(
            "INSERT INTO dataset_series (dataset_id, series_code) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING",
            (dataset_id, series_code),
        )
    conn.execute(
        "INSERT INTO metrics (id, code, expression_type, expression_json, required_days,"
        " max_attempts, enabled) VALUES (%s, %s, 'series_math', %s, %s, %s, %s)",
        (metric_id, code, Jsonb(_expression(inputs)), required_days, max_attempts, enabled),
    )
    for position, (dataset_id, series_code) in enumerate(inputs):
        conn.execute(
            "INSERT INTO metric_dependencies (metric_id, series_code, dataset_id, position)"
            " VALUES (%s, %s, %s, %s)",
            (metric_id, series_code, dataset_id, position),
        )


def seed_update(
    conn: Connection[Any],
    dataset_id: str,
    *,
    version: str | None = None,
    received_at: datetime = DEFAULT_NOW,
    occurred_at: datetime | None = None,
) -> UUID:
    update_id = uuid4()
    version = version or f"v_{update_id.hex[:8]}"
    manifest = f"datasets/{dataset_id}/versions/{version}/manifest.json"
    payload = {"event": "projection_update", "dataset_id": dataset_id}
    conn.execute(
        "INSERT INTO dataset_updates (id, event_key, dataset_id, bucket, version_manifest_path,"
        " projections_path, occurred_at, received_at, effective_at, payload)"
        " VALUES (%s, %s, %s, 'ingestor-datasets', %s, %s, %s, %s, %s, %s)",
        (
            update_id,
            f"{dataset_id}:{manifest}",
            dataset_id,
            manifest,
            f"datasets/{dataset_id}/projections",
            occurred_at,
            received_at,
            occurred_at or received_at,
            Jsonb(payload),
        ),
    )
    _record_freshest(conn, dataset_id, update_id)
    return update_id


def _record_freshest(conn: Connection[Any], dataset_id: str, update_id: UUID) -> None:
    """What intake does after recording an update: the domain's `freshest` picks the winner."""
    rows = conn.execute(
        "SELECT u.id, u.event_key, u.dataset_id, u.bucket, u.version_manifest_path,"
        " u.projections_path, u.occurred_at, u.received_at, u.seq FROM dataset_updates u"
        " WHERE u.id = %s OR u.id = (SELECT freshest_update_id FROM datasets WHERE id = %s)",
        (update_id, dataset_id),
    ).fetchall()
    winner = freshest([DatasetUpdate(*r) for r in rows])
    assert winner is not None
    conn.execute(
        "UPDATE datasets SET freshest_update_id = %s WHERE id = %s", (winner.id, dataset_id)
    )


def seed_run(
    conn: Connection[Any],
    metric_id: str = "m.ratio",
    *,
    status: RunStatus,
    now: datetime = DEFAULT_NOW,
    trigger: RunTrigger = RunTrigger.AUTOMATIC,
    attempt: int = 1,
    retry_of: UUID | None = None,
    lineage: Mapping[str, UUID] | None = None,
    pending: Mapping[str, UUID | None] | None = None,
    with_request: bool | None = None,
    created_at: datetime | None = None,
    queued_at: datetime | None = None,
    dispatched_at: datetime | None = None,
    started_at: datetime | None = None,
    last_heartbeat_at: datetime | None = None,
    last_seen_at: datetime | None = None,
    completed_at: datetime | None = None,
    status_reason: str | None = None,
    error: str | None = None,
) -> UUID:
    """Insert a run in `status`; times default to `now` for every stage the status implies.

    A queued-or-later run (or `with_request=True`) gets lineage (fresh updates of each input
    unless `lineage` is given) and its request payload. `pending` seeds the
    metric_run_pending_datasets rows (None = not received yet). `last_seen_at` (our receipt of
    the latest started/heartbeat) defaults to the worker's own latest timestamp.
    """
    run_id = uuid4()
    has_request = status not in NO_REQUEST_STATUSES if with_request is None else with_request
    if status is RunStatus.CANCELED and with_request is None:
        has_request = True
    reached = _reached_stages(status)
    consumed = _consumed_updates(conn, metric_id, lineage, now) if has_request else {}
    conn.execute(
        "INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, retry_of,"
        " inputs_fingerprint, request_payload, status_reason, error, created_at, queued_at,"
        " not_before, dispatched_at, started_at, last_heartbeat_at, last_seen_at,"
        " completed_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            run_id,
            metric_id,
            status.value,
            trigger.value,
            attempt,
            retry_of,
            f"fp-{run_id.hex}" if has_request else None,
            Jsonb(_request(conn, metric_id, run_id, attempt, now, consumed))
            if has_request
            else None,
            status_reason,
            error,
            created_at or now,
            queued_at or (now if has_request else None),
            (queued_at or now) if status is RunStatus.QUEUED else None,
            dispatched_at or (now if "dispatched" in reached else None),
            started_at or (now if "started" in reached else None),
            last_heartbeat_at,
            last_seen_at
            or ((last_heartbeat_at or started_at or now) if "started" in reached else None),
            completed_at or (now if "completed" in reached else None),
            now,
        ),
    )
    if retry_of is not None:
        # a retry joins the chain of the run it retries (migration 004), as the use cases do
        conn.execute(
            "UPDATE metric_runs SET chain_root ="
            " (SELECT coalesce(chain_root, id) FROM metric_runs WHERE id = %s) WHERE id = %s",
            (retry_of, run_id),
        )
    for dataset_id, update in consumed.items():
        conn.execute(
            "INSERT INTO run_dataset_updates (run_id, dataset_id, update_id) VALUES (%s, %s, %s)",
            (run_id, dataset_id, update.id),
        )
    for dataset_id, update_id in (pending or {}).items():
        conn.execute(
            "INSERT INTO metric_run_pending_datasets (run_id, dataset_id, update_id, received_at)"
            " SELECT %s, %s, %s, (SELECT received_at FROM dataset_updates WHERE id = %s)",
            (run_id, dataset_id, update_id, update_id),
        )
    return run_id


def run_row(conn: Connection[Any], run_id: UUID) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM metric_runs WHERE id = %s", (run_id,)).fetchone()
    assert row is not None, f"no run {run_id}"
    return row


def event_rows(conn: Connection[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM event_log ORDER BY id").fetchall()


def lineage_of(conn: Connection[Any], run_id: UUID) -> dict[str, UUID]:
    rows = conn.execute(
        "SELECT dataset_id, update_id FROM run_dataset_updates WHERE run_id = %s", (run_id,)
    ).fetchall()
    return {str(dataset_id): UUID(str(update_id)) for dataset_id, update_id in rows}


def _reached_stages(status: RunStatus) -> frozenset[str]:
    stages = {
        RunStatus.DISPATCHED: {"dispatched"},
        RunStatus.RUNNING: {"dispatched", "started"},
        RunStatus.SUCCEEDED: {"dispatched", "started", "completed"},
        RunStatus.FAILED: {"dispatched", "started", "completed"},
        RunStatus.TIMED_OUT: {"dispatched", "completed"},
        RunStatus.CANCELED: {"completed"},
    }
    return frozenset(stages.get(status, set()))


def _expression(inputs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    refs: list[dict[str, Any]] = [{"series_code": code} for _, code in inputs]
    if len(refs) == 1:
        return {"op": "multiply", "left": refs[0], "right": refs[0]}
    node = {"op": "ratio", "left": refs[0], "right": refs[1]}
    for ref in refs[2:]:
        node = {"op": "add", "left": node, "right": ref}
    return node


def _dependencies(conn: Connection[Any], metric_id: str) -> list[MetricDependency]:
    rows = conn.execute(
        "SELECT series_code, dataset_id FROM metric_dependencies WHERE metric_id = %s"
        " ORDER BY position",
        (metric_id,),
    ).fetchall()
    return [MetricDependency(series_code=s, dataset_id=d) for s, d in rows]


def _consumed_updates(
    conn: Connection[Any], metric_id: str, lineage: Mapping[str, UUID] | None, now: datetime
) -> dict[str, DatasetUpdate]:
    datasets = dict.fromkeys(d.dataset_id for d in _dependencies(conn, metric_id))
    chosen = (
        dict(lineage) if lineage else {d: seed_update(conn, d, received_at=now) for d in datasets}
    )
    consumed: dict[str, DatasetUpdate] = {}
    for dataset_id, update_id in chosen.items():
        row = conn.execute(
            "SELECT event_key, bucket, version_manifest_path, projections_path, occurred_at,"
            " received_at, seq FROM dataset_updates WHERE id = %s",
            (update_id,),
        ).fetchone()
        assert row is not None, f"no dataset update {update_id}"
        consumed[dataset_id] = DatasetUpdate(update_id, row[0], dataset_id, *row[1:])
    return consumed


def _request(
    conn: Connection[Any],
    metric_id: str,
    run_id: UUID,
    attempt: int,
    now: datetime,
    consumed: Mapping[str, DatasetUpdate],
) -> dict[str, Any]:
    row = conn.execute(
        "SELECT code, expression_type, expression_json FROM metrics WHERE id = %s", (metric_id,)
    ).fetchone()
    assert row is not None, f"no metric {metric_id}"
    code, expression_type, expression_json = row
    return build_run_request(
        run_id=run_id,
        attempt=attempt,
        requested_at=now,
        metric_code=code,
        expression_type=expression_type,
        expression_json=expression_json,
        dependencies=_dependencies(conn, metric_id),
        consumed=consumed,
        output_base_path=f"s3://metrics-output/metrics/{code}/",
    )
