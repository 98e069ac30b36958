"""PostgreSQL implementation of the catalog port (SPEC §2)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, LiteralString

from psycopg import Connection
from psycopg.rows import TupleRow

from metrics_orchestrator.application.ports.catalog import (
    DatasetSeriesPair,
    DatasetSettings,
    DatasetSpec,
    MetricDependent,
    MetricSettings,
    SeriesSpec,
    StoredMetricInputs,
    UpsertOutcome,
)
from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.expressions import parse_expression
from metrics_orchestrator.domain.model import (
    Dataset,
    Metric,
    MetricDependency,
    Series,
    StatusChange,
    TriggerPolicy,
)
from metrics_orchestrator.infrastructure.postgres.jsonb import jsonb
from metrics_orchestrator.infrastructure.postgres.named_queries import query
from metrics_orchestrator.infrastructure.postgres.params import columns
from metrics_orchestrator.infrastructure.postgres.rows import Row, fetch_all, fetch_one

_FILE = "catalog.sql"


def _sql(name: str) -> LiteralString:
    return query(_FILE, name)


def _outcomes(rows: Sequence[Row], key: str) -> dict[str, UpsertOutcome]:
    return {
        row[key]: UpsertOutcome.CREATED if row["created"] else UpsertOutcome.UPDATED for row in rows
    }


def _pairs(pairs: Collection[DatasetSeriesPair]) -> dict[str, list[str]]:
    ordered = sorted(pairs)
    return {
        "dataset_ids": [dataset_id for dataset_id, _ in ordered],
        "series_codes": [series_code for _, series_code in ordered],
    }


def _canonical(expression_type: str, stored: dict[str, Any]) -> dict[str, Any]:
    """The stored expression in canonical key order (jsonb keeps its own key order)."""
    try:
        return parse_expression(expression_type, stored).canonical
    except ValidationError:  # stored before a rule tightened: show it as stored
        return stored


def _metric(row: Row, dependencies: Sequence[MetricDependency]) -> Metric:
    return Metric(
        id=row["id"],
        code=row["code"],
        expression_type=row["expression_type"],
        expression_json=_canonical(row["expression_type"], row["expression_json"]),
        required_days=row["required_days"],
        frequency=row["frequency"],
        unit=row["unit"],
        description=row["description"],
        trigger_policy=TriggerPolicy(row["trigger_policy"]),
        max_attempts=row["max_attempts"],
        enabled=row["enabled"],
        dependencies=tuple(dependencies),
        definition_version=row["definition_version"],
        max_data_age=row["max_data_age"],
    )


def _dataset(row: Row, series: Sequence[str]) -> Dataset:
    return Dataset(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        bucket=row["bucket"],
        enabled=row["enabled"],
        series=tuple(series),
        expected_every=row["expected_every"],
        grace=row["grace"],
    )


def _series(row: Row) -> Series:
    return Series(
        code=row["code"],
        name=row["name"],
        description=row["description"],
        unit=row["unit"],
        frequency=row["frequency"],
    )


def _group_dependencies(rows: Sequence[Row]) -> dict[str, list[MetricDependency]]:
    grouped: dict[str, list[MetricDependency]] = defaultdict(list)
    for row in rows:
        grouped[row["metric_id"]].append(MetricDependency(row["series_code"], row["dataset_id"]))
    return grouped


def _group_series(rows: Sequence[Row]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        grouped[row["dataset_id"]].append(row["series_code"])
    return grouped


class PostgresCatalogRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn

    def _rows(self, name: str, params: Mapping[str, object]) -> list[Row]:
        return fetch_all(self._conn, _sql(name), params)

    def _row(self, name: str, params: Mapping[str, object]) -> Row | None:
        return fetch_one(self._conn, _sql(name), params)

    # reads used while planning

    def existing_series(self, codes: Collection[str]) -> set[str]:
        if not codes:
            return set()
        return {row["code"] for row in self._rows("existing_series", {"codes": list(codes)})}

    def existing_datasets(self, ids: Collection[str]) -> set[str]:
        if not ids:
            return set()
        return {row["id"] for row in self._rows("existing_datasets", {"ids": list(ids)})}

    def providers(self, series_codes: Collection[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        if series_codes:
            for row in self._rows("providers", {"codes": list(series_codes)}):
                found[row["series_code"]].add(row["dataset_id"])
        return dict(found)

    def lock_datasets(self, ids: Collection[str]) -> dict[str, Dataset]:
        if not ids:
            return {}
        rows = self._rows("lock_datasets", {"ids": sorted(ids)})
        series = _group_series(self._rows("dataset_series_of", {"ids": sorted(ids)}))
        return {row["id"]: _dataset(row, series.get(row["id"], [])) for row in rows}

    def dependents(self, pairs: Collection[DatasetSeriesPair]) -> list[MetricDependent]:
        if not pairs:
            return []
        return [
            MetricDependent(row["metric_id"], row["dataset_id"], row["series_code"])
            for row in self._rows("dependents", _pairs(pairs))
        ]

    def metric_ids_by_code(self, codes: Collection[str]) -> dict[str, str]:
        if not codes:
            return {}
        rows = self._rows("metric_ids_by_code", {"codes": list(codes)})
        return {row["code"]: row["id"] for row in rows}

    def lock_metrics(self, ids: Collection[str]) -> dict[str, Metric]:
        if not ids:
            return {}
        rows = self._rows("lock_metrics", {"ids": sorted(ids)})
        dependencies = self.dependencies([row["id"] for row in rows])
        return {row["id"]: _metric(row, dependencies.get(row["id"], ())) for row in rows}

    def metric_graph(self) -> list[StoredMetricInputs]:
        return [
            StoredMetricInputs(r["id"], r["code"], tuple(r["upstream"]))
            for r in self._rows("metric_graph", {})
        ]

    def dependencies(self, metric_ids: Collection[str]) -> dict[str, tuple[MetricDependency, ...]]:
        if not metric_ids:
            return {}
        grouped = _group_dependencies(self._rows("dependencies", {"ids": list(metric_ids)}))
        return {metric_id: tuple(deps) for metric_id, deps in grouped.items()}

    # writes

    def upsert_series(
        self, series: Sequence[SeriesSpec], now: datetime
    ) -> dict[str, UpsertOutcome]:
        if not series:
            return {}
        params = {
            "now": now,
            **columns(
                series,
                codes="code",
                names="name",
                descriptions="description",
                units="unit",
                frequencies="frequency",
            ),
        }
        return _outcomes(self._rows("upsert_series", params), "code")

    def upsert_datasets(
        self, datasets: Sequence[DatasetSpec], now: datetime
    ) -> dict[str, UpsertOutcome]:
        if not datasets:
            return {}
        params = {
            "now": now,
            **columns(
                datasets,
                ids="id",
                names="name",
                descriptions="description",
                buckets="bucket",
                enabled="enabled",
                expected_every="expected_every",
                graces="grace",
            ),
        }
        return _outcomes(self._rows("upsert_datasets", params), "id")

    def add_dataset_series(self, pairs: Collection[DatasetSeriesPair], now: datetime) -> None:
        if pairs:
            self._conn.execute(_sql("add_dataset_series"), {"now": now, **_pairs(pairs)})

    def remove_dataset_series(self, pairs: Collection[DatasetSeriesPair]) -> None:
        if pairs:
            self._conn.execute(_sql("remove_dataset_series"), _pairs(pairs))

    def upsert_metrics(
        self, metrics: Sequence[Metric], now: datetime, *, keep_enabled: Collection[str] = ()
    ) -> dict[str, UpsertOutcome]:
        if not metrics:
            return {}
        params = {
            "now": now,
            **columns(
                metrics,
                ids="id",
                codes="code",
                expression_types="expression_type",
                expressions=lambda m: jsonb(m.expression_json),
                frequencies="frequency",
                units="unit",
                descriptions="description",
                required_days="required_days",
                trigger_policies=lambda m: m.trigger_policy.value,
                max_attempts="max_attempts",
                definition_versions="definition_version",
                max_data_ages="max_data_age",
                # NULL keeps the stored value (the statement's coalesce), true when new
                enabled=lambda m: None if m.id in keep_enabled else m.enabled,
            ),
        }
        return _outcomes(self._rows("upsert_metrics", params), "id")

    def replace_dependencies(
        self, dependencies: Mapping[str, Sequence[MetricDependency]], now: datetime
    ) -> None:
        if not dependencies:
            return
        ids = sorted(dependencies)
        self._conn.execute(_sql("delete_dependencies"), {"ids": ids})
        rows = [
            (metric_id, position, dep)
            for metric_id in ids
            for position, dep in enumerate(dependencies[metric_id])
        ]
        if not rows:
            return
        self._conn.execute(
            _sql("insert_dependencies"),
            {
                "now": now,
                "metric_ids": [metric_id for metric_id, _, _ in rows],
                "series_codes": [dep.series_code for _, _, dep in rows],
                "dataset_ids": [dep.dataset_id for _, _, dep in rows],
                "positions": [position for _, position, _ in rows],
            },
        )

    def cancel_pending_runs(
        self, metric_ids: Collection[str], change: StatusChange, reason: str, now: datetime
    ) -> list[str]:
        if not metric_ids:
            return []
        params = {
            "ids": sorted(metric_ids),
            "from": change.source.value,
            "to": change.target.value,
            "reason": reason,
            "now": now,
        }
        return [row["metric_id"] for row in self._rows("cancel_pending_runs", params)]

    def update_metric_settings(
        self, code: str, settings: MetricSettings, now: datetime
    ) -> str | None:
        # None keeps the stored value (the statement's coalesce)
        params = {
            "code": code,
            "enabled": settings.enabled,
            "required_days": settings.required_days,
            "max_attempts": settings.max_attempts,
            "trigger_policy": settings.trigger_policy,
            "max_data_age": settings.max_data_age,
            "remove_max_data_age": settings.removes_max_data_age,
            "now": now,
        }
        row = self._row("update_metric_settings", params)
        return None if row is None else str(row["id"])

    def update_dataset_settings(
        self, dataset_id: str, settings: DatasetSettings, now: datetime
    ) -> Dataset | None:
        params = {
            "id": dataset_id,
            "enabled": settings.enabled,
            "expected_every": settings.expected_every,
            "grace": settings.grace,
            "remove_objective": settings.removes_objective,
            "reset_grace": settings.resets_grace,
            "now": now,
        }
        if self._row("update_dataset_settings", params) is None:
            return None
        return self.get_dataset(dataset_id)

    def set_dataset_enabled(self, dataset_id: str, enabled: bool, now: datetime) -> bool:
        params = {"id": dataset_id, "enabled": enabled, "now": now}
        return self._row("set_dataset_enabled", params) is not None

    # reads for callers

    def get_metric(self, code: str) -> Metric | None:
        return self._one_metric("metric_by_code", {"code": code})

    def get_metric_by_id(self, metric_id: str) -> Metric | None:
        return self._one_metric("metric_by_id", {"id": metric_id})

    def _one_metric(self, name: str, params: Mapping[str, object]) -> Metric | None:
        row = self._row(name, params)
        if row is None:
            return None
        return _metric(row, self.dependencies([row["id"]]).get(row["id"], ()))

    def list_metrics(self) -> list[Metric]:
        rows = self._rows("all_metrics", {})
        dependencies = _group_dependencies(self._rows("all_dependencies", {}))
        return [_metric(row, dependencies.get(row["id"], [])) for row in rows]

    def get_dataset(self, dataset_id: str) -> Dataset | None:
        row = self._row("dataset_by_id", {"id": dataset_id})
        if row is None:
            return None
        series = _group_series(self._rows("dataset_series_of", {"ids": [dataset_id]}))
        return _dataset(row, series.get(dataset_id, []))

    def list_datasets(self) -> list[Dataset]:
        rows = self._rows("all_datasets", {})
        series = _group_series(self._rows("all_dataset_series", {}))
        return [_dataset(row, series.get(row["id"], [])) for row in rows]

    def get_series(self, code: str) -> Series | None:
        row = self._row("series_by_code", {"code": code})
        return None if row is None else _series(row)

    def list_series(self) -> list[Series]:
        return [_series(row) for row in self._rows("all_series", {})]
