"""Planning and writing a catalog registration (SPEC §2).

`Planner` reads what the database already knows (set-based, the datasets row-locked), checks
the document against it and asks the domain to resolve every metric's series to one dataset
(`domain/resolution.py`), collecting every problem; `Writer` writes a plan that has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from metrics_orchestrator.application.catalog_document import CatalogDocument
from metrics_orchestrator.application.catalog_spec import DatasetSpec, SeriesSpec, at_path
from metrics_orchestrator.application.ports.catalog import (
    CatalogRepository,
    DatasetSeriesPair,
    UpsertOutcome,
)
from metrics_orchestrator.domain.errors import FieldError
from metrics_orchestrator.domain.metric_graph import graph_problems
from metrics_orchestrator.domain.model import (
    Cause,
    Dataset,
    Metric,
    RunStatus,
    change_for,
)
from metrics_orchestrator.domain.resolution import CatalogFacts, resolve_dependencies
from metrics_orchestrator.domain.status_reasons import DEFINITION_CHANGED, METRIC_DISABLED

# SPEC §2: a changed or disabled metric's open pending run is canceled
CANCEL_PENDING = change_for(Cause.CANCEL, RunStatus.PENDING_DEPENDENCIES)


@dataclass(frozen=True, slots=True)
class KindCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @classmethod
    def of(cls, outcomes: Iterable[UpsertOutcome]) -> KindCounts:
        seen = list(outcomes)
        return cls(
            created=seen.count(UpsertOutcome.CREATED),
            updated=seen.count(UpsertOutcome.UPDATED),
            unchanged=seen.count(UpsertOutcome.UNCHANGED),
        )

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What a load did to one entry: its kind (series, datasets, metrics) and key."""

    kind: str
    key: str
    outcome: UpsertOutcome


@dataclass(frozen=True, slots=True)
class CatalogLoadResult:
    series: KindCounts = KindCounts()
    datasets: KindCounts = KindCounts()
    metrics: KindCounts = KindCounts()
    # ids of the metrics whose open pending run was canceled by this load
    canceled_runs: tuple[str, ...] = ()
    # the notification channels the document declared, upserted by name (SPEC §9)
    channels: tuple[str, ...] = ()
    # every entry of the document, by kind then key (what `catalog load --dry-run` names);
    # a detail of the counts above, so not part of a result's equality
    items: tuple[ItemOutcome, ...] = field(default=(), compare=False)


@dataclass
class Plan:
    """Everything a registration will write, worked out before anything is written."""

    series: list[SeriesSpec] = field(default_factory=list)
    datasets: list[DatasetSpec] = field(default_factory=list)
    added_pairs: set[DatasetSeriesPair] = field(default_factory=set)
    removed_pairs: set[DatasetSeriesPair] = field(default_factory=set)
    changed_series_sets: set[str] = field(default_factory=set)
    # each metric as it is stored: default window filled in, dependencies resolved
    metrics: list[Metric] = field(default_factory=list)
    # ids of the metrics whose spec left `enabled` out: the stored value stays (true when new)
    keeps_enabled: set[str] = field(default_factory=set)
    errors: list[FieldError] = field(default_factory=list)


class Planner:
    def __init__(self, repo: CatalogRepository, default_required_days: int) -> None:
        self.repo = repo
        self.default_required_days = default_required_days

    def plan(self, document: CatalogDocument) -> Plan:
        plan = Plan(
            series=sorted((e.item for e in document.series), key=lambda s: s.code),
            datasets=sorted((e.item for e in document.datasets), key=lambda d: d.id),
        )
        known_series = self._known_series(document)
        self._check_dataset_series(document, known_series, plan)
        current = self.repo.lock_datasets([d.id for d in plan.datasets])
        self._plan_dataset_series(plan, current)
        providers = self._providers(document, current)
        self._plan_metrics(document, known_series, providers, plan)
        self._check_removals(document, plan)
        return plan

    def _known_series(self, document: CatalogDocument) -> set[str]:
        defined = {e.item.code for e in document.series}
        referenced = {code for e in document.datasets for code in e.item.series}
        referenced |= {
            code for e in document.metrics for code in e.item.parsed_expression.series_codes()
        }
        return defined | self.repo.existing_series(referenced - defined)

    def _check_dataset_series(
        self, document: CatalogDocument, known_series: set[str], plan: Plan
    ) -> None:
        for entry in document.datasets:
            for index, code in enumerate(entry.item.series):
                if code not in known_series:
                    path = at_path(entry.path, f"series[{index}]")
                    plan.errors.append(FieldError(path, f"unknown series '{code}'"))

    def _plan_dataset_series(self, plan: Plan, current: Mapping[str, Dataset]) -> None:
        for dataset in plan.datasets:
            existing = current.get(dataset.id)
            before = set(existing.series) if existing is not None else set()
            after = set(dataset.series)
            plan.added_pairs |= {(dataset.id, code) for code in after - before}
            plan.removed_pairs |= {(dataset.id, code) for code in before - after}
            if existing is not None and before != after:
                plan.changed_series_sets.add(dataset.id)

    def _providers(
        self, document: CatalogDocument, current: Mapping[str, Dataset]
    ) -> dict[str, set[str]]:
        """Who provides each referenced series once this registration is applied."""
        codes = {code for e in document.metrics for code in e.item.parsed_expression.series_codes()}
        replaced = {e.item.id for e in document.datasets}
        providers = {
            code: {d for d in ids if d not in replaced}
            for code, ids in self.repo.providers(codes).items()
        }
        for entry in document.datasets:
            for code in entry.item.series:
                providers.setdefault(code, set()).add(entry.item.id)
        return providers

    def _plan_metrics(
        self,
        document: CatalogDocument,
        known_series: set[str],
        providers: Mapping[str, set[str]],
        plan: Plan,
    ) -> None:
        pins = {
            ref.dataset_id
            for e in document.metrics
            for ref in e.item.parsed_expression.references
            if ref.dataset_id is not None
        }
        known_datasets = {e.item.id for e in document.datasets}
        known_datasets |= self.repo.existing_datasets(pins - known_datasets)
        codes = [e.item.code for e in document.metrics]
        owners = self.repo.metric_ids_by_code(codes)
        read = {c for e in document.metrics for c in e.item.parsed_expression.metric_codes()}
        known_metrics = set(codes) | set(self.repo.metric_ids_by_code(read - set(codes)))
        facts = CatalogFacts(known_series, known_datasets, providers, known_metrics)
        for entry in sorted(document.metrics, key=lambda e: e.item.id):
            spec = entry.item
            owner = owners.get(spec.code)
            if owner is not None and owner != spec.id:
                plan.errors.append(
                    FieldError(
                        at_path(entry.path, "code"),
                        f"code '{spec.code}' is already used by metric '{owner}'",
                    )
                )
            resolution = resolve_dependencies(spec.parsed_expression.references, facts)
            plan.errors.extend(resolution.errors)
            # Unresolved, it has no dependencies; the errors make sure it is never written.
            plan.metrics.append(spec.to_metric(self.default_required_days, resolution.dependencies))
            if spec.enabled is None:
                plan.keeps_enabled.add(spec.id)
        self._check_graph(document, plan)

    def _check_graph(self, document: CatalogDocument, plan: Plan) -> None:
        """SPEC §8: the metrics of the document with the stored ones form no cycle and no
        chain longer than 16; a metric whose output another keeps reading is not renamed."""
        if not document.metrics:
            return
        ids = {e.item.id: e for e in document.metrics}
        stored = self.repo.metric_graph()
        upstream = {m.code: m.upstream for m in stored if m.id not in ids}
        upstream |= {e.item.code: e.item.parsed_expression.metric_codes() for e in ids.values()}
        paths = {e.item.code: e.path for e in document.metrics}
        for problem in graph_problems(upstream):
            located = next((m for m in problem.metrics if m in paths), problem.metrics[0])
            path = at_path(paths[located], "expression") if located in paths else "metrics"
            plan.errors.append(FieldError(path, problem.message))
        renamed = {
            m.code: ids[m.id] for m in stored if m.id in ids and m.code != ids[m.id].item.code
        }
        for reader, reads in sorted(upstream.items()):
            for old in sorted(set(reads) & renamed.keys()):
                entry = renamed[old]
                plan.errors.append(
                    FieldError(
                        at_path(entry.path, "code"),
                        f"metric '{reader}' reads the output of '{old}': "
                        "change its expression before renaming this metric",
                    )
                )

    def _check_removals(self, document: CatalogDocument, plan: Plan) -> None:
        """A dataset may stop providing a series only if no metric keeps depending on it."""
        if not plan.removed_pairs:
            return
        reresolved = {e.item.id for e in document.metrics}
        paths = {e.item.id: e.path for e in document.datasets}
        for dependent in self.repo.dependents(plan.removed_pairs):
            if dependent.metric_id in reresolved:
                continue
            plan.errors.append(
                FieldError(
                    at_path(paths[dependent.dataset_id], "series"),
                    f"cannot stop providing series '{dependent.series_code}': "
                    f"metric '{dependent.metric_id}' depends on it through this dataset",
                )
            )


class Writer:
    """Writes a checked plan. Order matters for the foreign keys: series, datasets and what
    they provide, metrics and their dependencies, and last the provisions no longer offered."""

    def __init__(self, repo: CatalogRepository, now: datetime) -> None:
        self.repo = repo
        self.now = now

    def write(self, plan: Plan) -> CatalogLoadResult:
        stored = self.repo.upsert_series(plan.series, self.now)
        series = [stored.get(s.code, UpsertOutcome.UNCHANGED) for s in plan.series]
        datasets = self._write_datasets(plan)
        metrics, canceled = self._write_metrics(plan)
        self.repo.remove_dataset_series(plan.removed_pairs)
        items = [
            *(ItemOutcome("series", s.code, o) for s, o in zip(plan.series, series, strict=True)),
            *(
                ItemOutcome("datasets", d.id, o)
                for d, o in zip(plan.datasets, datasets, strict=True)
            ),
            *(
                ItemOutcome("metrics", m.code, o)
                for m, o in zip(plan.metrics, metrics, strict=True)
            ),
        ]
        return CatalogLoadResult(
            series=KindCounts.of(series),
            datasets=KindCounts.of(datasets),
            metrics=KindCounts.of(metrics),
            canceled_runs=tuple(canceled),
            items=tuple(items),
        )

    def _write_datasets(self, plan: Plan) -> list[UpsertOutcome]:
        rows = self.repo.upsert_datasets(plan.datasets, self.now)
        self.repo.add_dataset_series(plan.added_pairs, self.now)
        outcomes = []
        for dataset in plan.datasets:
            outcome = rows.get(dataset.id, UpsertOutcome.UNCHANGED)
            if outcome is UpsertOutcome.UNCHANGED and dataset.id in plan.changed_series_sets:
                outcome = UpsertOutcome.UPDATED
            outcomes.append(outcome)
        return outcomes

    def _write_metrics(self, plan: Plan) -> tuple[list[UpsertOutcome], list[str]]:
        ids = [m.id for m in plan.metrics]
        before = self.repo.lock_metrics(ids)
        rows = self.repo.upsert_metrics(plan.metrics, self.now, keep_enabled=plan.keeps_enabled)
        stored = self.repo.dependencies(ids)
        changed_dependencies = {
            metric.id: metric.dependencies
            for metric in plan.metrics
            if stored.get(metric.id, ()) != metric.dependencies
        }
        self.repo.replace_dependencies(changed_dependencies, self.now)
        outcomes: list[UpsertOutcome] = []
        redefined: list[str] = []
        for row in plan.metrics:
            outcome = rows.get(row.id, UpsertOutcome.UNCHANGED)
            if outcome is UpsertOutcome.UNCHANGED and row.id in changed_dependencies:
                outcome = UpsertOutcome.UPDATED
            outcomes.append(outcome)
            if _definition_changed(before.get(row.id), row, outcome, changed_dependencies):
                redefined.append(row.id)
        canceled = self.repo.cancel_pending_runs(
            redefined, CANCEL_PENDING, DEFINITION_CHANGED, self.now
        )
        disabled = [m.id for m in plan.metrics if not m.enabled and m.id not in redefined]
        canceled += self.repo.cancel_pending_runs(
            disabled, CANCEL_PENDING, METRIC_DISABLED, self.now
        )
        return outcomes, sorted(canceled)


def _definition_changed(
    before: Metric | None,
    row: Metric,
    outcome: UpsertOutcome,
    changed_dependencies: Mapping[str, object],
) -> bool:
    """Did the expression or the dependencies of an existing metric change (§2)?"""
    if before is None:
        # Created now, or concurrently by another load we cannot compare with: be safe.
        return outcome is UpsertOutcome.UPDATED
    return before.expression_json != row.expression_json or row.id in changed_dependencies
