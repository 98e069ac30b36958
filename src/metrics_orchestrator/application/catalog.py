"""Catalog registration (SPEC §2): series, datasets, metrics and their dependencies.

Every write goes through one plan: read what the database already knows, validate the
input against it (collecting every problem, each located by its JSON path), and only
when nothing is wrong write it all in the same transaction. A catalog file, a single
metric from the API and a single dataset are all the same operation on different inputs:
`catalog_document` reads them, `catalog_plan` checks and writes them, this module is the
service that sequences the two in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from metrics_orchestrator.application.catalog_document import (
    CatalogDocument,
    check_dataset,
    check_metric,
    check_series,
    in_document_order,
    read_catalog_document,
)
from metrics_orchestrator.application.catalog_plan import (
    CANCEL_PENDING,
    CatalogLoadResult,
    Planner,
    Writer,
)
from metrics_orchestrator.application.catalog_spec import (
    GRACE_NEEDS_OBJECTIVE,
    DatasetSettings,
    DatasetSpec,
    MetricSettings,
    MetricSpec,
    SeriesSpec,
)
from metrics_orchestrator.application.incidents import IncidentBook
from metrics_orchestrator.application.ports import (
    Clock,
    UnitOfWork,
    UnitOfWorkFactory,
    in_transaction,
)
from metrics_orchestrator.application.ports.catalog import CatalogRepository
from metrics_orchestrator.application.telemetry import NullTelemetry, Telemetry
from metrics_orchestrator.domain.errors import Conflict, FieldError, NotFound, ValidationError
from metrics_orchestrator.domain.model import Dataset, Metric, Series
from metrics_orchestrator.domain.status_reasons import METRIC_DISABLED

T = TypeVar("T")


class _RolledBack(Exception):
    """Ends a preview's transaction by rolling it back, carrying what it would have done."""

    def __init__(self, result: CatalogLoadResult) -> None:
        super().__init__("preview rolled back")
        self.result = result


class CatalogService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        default_required_days: int,
        telemetry: Telemetry | None = None,
        incidents: IncidentBook | None = None,
    ) -> None:
        self._incidents = incidents or IncidentBook()
        # In range by the one rule (`RequiredDays`): the settings validate it where it is read.
        self._uow_factory = uow_factory
        self._telemetry = telemetry or NullTelemetry()
        self._clock = clock
        self._default_required_days = default_required_days

    # registration

    def load_catalog(self, document: object) -> CatalogLoadResult:
        """Apply a whole catalog file in one transaction; ValidationError lists every problem."""
        parsed, errors = read_catalog_document(document)
        return self._transaction(lambda uow: self._apply(uow, parsed, errors))

    def preview_catalog(self, document: object) -> CatalogLoadResult:
        """What `load_catalog` would do, written nothing: the same plan and writes, in a
        transaction that is rolled back (so the answer is exact, pending-run cancels included)."""
        parsed, errors = read_catalog_document(document)

        def work(uow: UnitOfWork) -> CatalogLoadResult:
            raise _RolledBack(self._apply(uow, parsed, errors))

        try:
            in_transaction(self._uow_factory, work)
        except _RolledBack as done:
            return done.result
        raise AssertionError("unreachable")  # pragma: no cover

    def register_series(self, spec: SeriesSpec) -> Series:
        located = check_series(spec)
        result = self._transaction(
            lambda uow: self._apply_then(
                uow, CatalogDocument(series=(located,)), lambda repo: repo.get_series(spec.code)
            )
        )
        assert result is not None
        return result

    def register_dataset(self, spec: DatasetSpec) -> Dataset:
        """Create or update a dataset; its series list replaces the stored one."""
        located = check_dataset(spec)
        result = self._transaction(
            lambda uow: self._apply_then(
                uow, CatalogDocument(datasets=(located,)), lambda repo: repo.get_dataset(spec.id)
            )
        )
        assert result is not None
        return result

    def register_metric(self, spec: MetricSpec) -> Metric:
        """Create or update (by id) a metric, resolving its dependencies (§2).

        Raises ValidationError (every problem, with JSON paths) or Conflict (code taken).
        """
        located = check_metric(spec)

        def work(uow: UnitOfWork) -> Metric | None:
            owner = uow.catalog.metric_ids_by_code([spec.code]).get(spec.code)
            if owner is not None and owner != spec.id:
                raise Conflict(f"metric code '{spec.code}' is already used by metric '{owner}'")
            document = CatalogDocument(metrics=(located,))
            return self._apply_then(uow, document, lambda repo: repo.get_metric_by_id(spec.id))

        result = self._transaction(work)
        assert result is not None
        return result

    # reading

    def get_metric(self, code: str) -> Metric:
        metric = self._transaction(lambda uow: uow.catalog.get_metric(code))
        if metric is None:
            raise NotFound(f"unknown metric '{code}'")
        return metric

    def list_metrics(self) -> list[Metric]:
        return self._transaction(lambda uow: uow.catalog.list_metrics())

    def get_dataset(self, dataset_id: str) -> Dataset:
        dataset = self._transaction(lambda uow: uow.catalog.get_dataset(dataset_id))
        if dataset is None:
            raise NotFound(f"unknown dataset '{dataset_id}'")
        return dataset

    def list_datasets(self) -> list[Dataset]:
        return self._transaction(lambda uow: uow.catalog.list_datasets())

    def get_series(self, code: str) -> Series:
        series = self._transaction(lambda uow: uow.catalog.get_series(code))
        if series is None:
            raise NotFound(f"unknown series '{code}'")
        return series

    def list_series(self) -> list[Series]:
        return self._transaction(lambda uow: uow.catalog.list_series())

    # operational changes

    def update_metric(self, code: str, settings: MetricSettings) -> Metric:
        """Change a metric's settings (not its expression). Disabling cancels its pending run.

        `settings` was validated where it was built (the PATCH body, or `MetricSettings(...)`
        in Python); it is written as it is."""

        def work(uow: UnitOfWork) -> Metric | None:
            now = self._clock.now()
            metric_id = uow.catalog.update_metric_settings(code, settings, now)
            if metric_id is None:
                return None
            if settings.enabled is False:
                canceled = uow.catalog.cancel_pending_runs(
                    [metric_id], CANCEL_PENDING, METRIC_DISABLED, now
                )
                uow.changes.moved(CANCEL_PENDING, len(canceled))
            metric = uow.catalog.get_metric_by_id(metric_id)
            if metric is not None:
                self._incidents.evaluate_freshness(uow, datasets=(), metrics=[metric.code], now=now)
            return metric

        metric = self._transaction(work)
        if metric is None:
            raise NotFound(f"unknown metric '{code}'")
        return metric

    def update_dataset(self, dataset_id: str, settings: DatasetSettings) -> Dataset:
        """Enable or disable a dataset, set or remove its freshness objective (SPEC §9)."""

        def work(uow: UnitOfWork) -> Dataset | None:
            now = self._clock.now()
            dataset = uow.catalog.update_dataset_settings(dataset_id, settings, now)
            if dataset is None:
                return None
            if dataset.expected_every is None and dataset.grace:
                raise ValidationError([FieldError("grace", GRACE_NEEDS_OBJECTIVE)])
            self._incidents.evaluate_freshness(uow, datasets=[dataset_id], metrics=(), now=now)
            return dataset

        dataset = self._transaction(work)
        if dataset is None:
            raise NotFound(f"unknown dataset '{dataset_id}'")
        return dataset

    def set_dataset_enabled(self, dataset_id: str, enabled: bool) -> Dataset:
        def work(uow: UnitOfWork) -> Dataset | None:
            if not uow.catalog.set_dataset_enabled(dataset_id, enabled, self._clock.now()):
                return None
            return uow.catalog.get_dataset(dataset_id)

        dataset = self._transaction(work)
        if dataset is None:
            raise NotFound(f"unknown dataset '{dataset_id}'")
        return dataset

    # internals

    def _transaction(self, work: Callable[[UnitOfWork], T]) -> T:
        return in_transaction(self._uow_factory, work, telemetry=self._telemetry)

    def _apply_then(
        self,
        uow: UnitOfWork,
        document: CatalogDocument,
        read_back: Callable[[CatalogRepository], T],
    ) -> T:
        self._apply(uow, document, ())
        return read_back(uow.catalog)

    def _apply(
        self, uow: UnitOfWork, document: CatalogDocument, read_errors: Sequence[FieldError]
    ) -> CatalogLoadResult:
        plan = Planner(uow.catalog, self._default_required_days).plan(document)
        errors = [*read_errors, *plan.errors]
        if errors:
            raise ValidationError(in_document_order(errors))
        now = self._clock.now()
        result = Writer(uow.catalog, now).write(plan)
        uow.changes.moved(CANCEL_PENDING, len(result.canceled_runs))
        if document.channels:
            channels = [located.item.to_settings() for located in document.channels]
            uow.notifications.upsert_channels(channels, now)
            result = replace(result, channels=tuple(c.name for c in channels))
        # an objective added, changed or removed may start or end lateness at once (SPEC §9)
        self._incidents.evaluate_freshness(uow, datasets=None, metrics=None, now=now)
        return result
