"""The catalog's repository port (SPEC §2).

It writes metrics as the domain's `Metric`, and series, datasets and a metric's settings as
the input specs of catalog_spec, re-exported here (`X as X`) so that an adapter imports only
ports and the domain: the specs are the port's vocabulary (data validated once, at the
boundary), and an adapter never needs catalog_spec itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from metrics_orchestrator.application.catalog_spec import DatasetSettings as DatasetSettings
from metrics_orchestrator.application.catalog_spec import DatasetSpec as DatasetSpec
from metrics_orchestrator.application.catalog_spec import MetricSettings as MetricSettings
from metrics_orchestrator.application.catalog_spec import SeriesSpec as SeriesSpec
from metrics_orchestrator.domain.model import (
    Dataset,
    Metric,
    MetricDependency,
    Series,
    StatusChange,
)

DatasetSeriesPair = tuple[str, str]  # (dataset_id, series_code)


class UpsertOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class MetricDependent:
    metric_id: str
    dataset_id: str
    series_code: str


@dataclass(frozen=True, slots=True)
class StoredMetricInputs:
    """A stored metric and the metrics whose outputs it reads (SPEC §8)."""

    id: str
    code: str
    upstream: tuple[str, ...]


class CatalogRepository(Protocol):
    """Persistence of datasets, series, metrics and their dependencies (one transaction)."""

    def existing_series(self, codes: Collection[str]) -> set[str]: ...

    def existing_datasets(self, ids: Collection[str]) -> set[str]: ...

    def providers(self, series_codes: Collection[str]) -> dict[str, set[str]]:
        """series code -> ids of the datasets that provide it."""
        ...

    def lock_datasets(self, ids: Collection[str]) -> dict[str, Dataset]:
        """The existing datasets among `ids`, row-locked in id order."""
        ...

    def dependents(self, pairs: Collection[DatasetSeriesPair]) -> list[MetricDependent]:
        """Metric dependencies that use any of the (dataset, series) pairs."""
        ...

    def metric_ids_by_code(self, codes: Collection[str]) -> dict[str, str]: ...

    def lock_metrics(self, ids: Collection[str]) -> dict[str, Metric]:
        """The existing metrics among `ids`, row-locked in id order (as intake locks them)."""
        ...

    def upsert_series(
        self, series: Sequence[SeriesSpec], now: datetime
    ) -> dict[str, UpsertOutcome]: ...

    def upsert_datasets(
        self, datasets: Sequence[DatasetSpec], now: datetime
    ) -> dict[str, UpsertOutcome]: ...

    def add_dataset_series(self, pairs: Collection[DatasetSeriesPair], now: datetime) -> None: ...

    def remove_dataset_series(self, pairs: Collection[DatasetSeriesPair]) -> None: ...

    def upsert_metrics(
        self, metrics: Sequence[Metric], now: datetime, *, keep_enabled: Collection[str] = ()
    ) -> dict[str, UpsertOutcome]:
        """Each metric as given (not its dependencies); for the ids in `keep_enabled` the
        stored `enabled` stays, and the metric's own applies only when it is new."""
        ...

    def metric_graph(self) -> list[StoredMetricInputs]:
        """Every stored metric with the metrics it reads (the graph of §8)."""
        ...

    def dependencies(self, metric_ids: Collection[str]) -> dict[str, tuple[MetricDependency, ...]]:
        """metric id -> its dependency rows in position order (absent: none)."""
        ...

    def replace_dependencies(
        self, dependencies: Mapping[str, Sequence[MetricDependency]], now: datetime
    ) -> None: ...

    def cancel_pending_runs(
        self, metric_ids: Collection[str], change: StatusChange, reason: str, now: datetime
    ) -> list[str]:
        """Cancel the open pending run of each metric; returns the metric ids that had one."""
        ...

    def get_metric(self, code: str) -> Metric | None: ...

    def get_metric_by_id(self, metric_id: str) -> Metric | None: ...

    def list_metrics(self) -> list[Metric]: ...

    def get_dataset(self, dataset_id: str) -> Dataset | None: ...

    def list_datasets(self) -> list[Dataset]: ...

    def get_series(self, code: str) -> Series | None: ...

    def list_series(self) -> list[Series]: ...

    def update_metric_settings(
        self, code: str, settings: MetricSettings, now: datetime
    ) -> str | None:
        """Change the settings given (None: keep); returns the metric id, None if unknown."""
        ...

    def set_dataset_enabled(self, dataset_id: str, enabled: bool, now: datetime) -> bool: ...

    def update_dataset_settings(
        self, dataset_id: str, settings: DatasetSettings, now: datetime
    ) -> Dataset | None:
        """Change the settings given (None: keep); the dataset after, None if unknown."""
        ...
