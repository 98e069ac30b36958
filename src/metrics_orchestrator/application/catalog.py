"""Catalog registration (SPEC §2): series, datasets, metrics and their dependencies.

Every write goes through one plan: read what the database already knows, validate the
input against it (collecting every problem, each located by its JSON path), and only
when nothing is wrong write it all in the same transaction. A catalog file, a single
metric from the API and a single dataset are all the same operation on different inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

from metrics_orchestrator.application.ports import (
    Clock,
    UnitOfWork,
    UnitOfWorkFactory,
    in_transaction,
)
from metrics_orchestrator.application.ports.catalog import (
    CatalogRepository,
    DatasetSeriesPair,
    DatasetSpec,
    MetricRow,
    Outcome,
    SeriesSpec,
)
from metrics_orchestrator.domain.errors import (
    Conflict,
    FieldError,
    NotFound,
    ValidationError,
)
from metrics_orchestrator.domain.expressions import Expression, SeriesReference, parse_expression
from metrics_orchestrator.domain.identifiers import identifier_problem
from metrics_orchestrator.domain.json_values import json_type
from metrics_orchestrator.domain.model import (
    MAX_ATTEMPTS,
    MAX_REQUIRED_DAYS,
    Cause,
    Dataset,
    Metric,
    MetricDependency,
    RunStatus,
    Series,
    TriggerPolicy,
    change_for,
)

DEFINITION_CHANGED = "metric definition changed"
METRIC_DISABLED = "metric disabled"
# SPEC §2: a changed or disabled metric's open pending run is canceled
_CANCEL_PENDING = change_for(Cause.CANCEL, RunStatus.PENDING_DEPENDENCIES)

TOP_LEVEL_KEYS = ("series", "datasets", "metrics")
SERIES_KEYS = ("code", "name", "description", "unit", "frequency")
DATASET_KEYS = ("id", "name", "description", "bucket", "enabled", "series")
METRIC_KEYS = (
    "id",
    "code",
    "expression_type",
    "expression",
    "frequency",
    "unit",
    "description",
    "required_days",
    "trigger_policy",
    "max_attempts",
    "enabled",
)

T = TypeVar("T")


# --- input specs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric as submitted; `expression` is raw JSON, validated on registration (§3)."""

    id: str
    code: str
    expression_type: str
    expression: Any
    frequency: str = ""
    unit: str = ""
    description: str = ""
    required_days: int | None = None  # None: the configured default
    trigger_policy: TriggerPolicy | str = TriggerPolicy.ALL_NEW
    max_attempts: int = 3
    enabled: bool | None = None  # None: keep the current value (true for a new metric)


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """A metric whose fields and expression passed validation."""

    id: str
    code: str
    expression: Expression
    frequency: str = ""
    unit: str = ""
    description: str = ""
    required_days: int | None = None
    trigger_policy: TriggerPolicy = TriggerPolicy.ALL_NEW
    max_attempts: int = 3
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class Located(Generic[T]):
    """An input item and the JSON path it came from ("" for a single item from the API)."""

    path: str
    item: T


@dataclass(frozen=True, slots=True)
class CatalogDocument:
    series: tuple[Located[SeriesSpec], ...] = ()
    datasets: tuple[Located[DatasetSpec], ...] = ()
    metrics: tuple[Located[MetricDefinition], ...] = ()


# --- what the repository writes and reports --------------------------------------------------


@dataclass(frozen=True, slots=True)
class KindCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> KindCounts:
        seen = list(outcomes)
        return cls(
            created=seen.count(Outcome.CREATED),
            updated=seen.count(Outcome.UPDATED),
            unchanged=seen.count(Outcome.UNCHANGED),
        )

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass(frozen=True, slots=True)
class CatalogLoadResult:
    series: KindCounts = KindCounts()
    datasets: KindCounts = KindCounts()
    metrics: KindCounts = KindCounts()
    # ids of the metrics whose open pending run was canceled by this load
    canceled_runs: tuple[str, ...] = ()


# --- reading a catalog document (pure) -----------------------------------------------------


def _at(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _json_type(value: object) -> str:
    return json_type(value, array="a list")


class _Fields:
    """Typed access to one input object's fields, recording every problem in `errors`."""

    def __init__(
        self,
        raw: Mapping[Any, object],
        path: str,
        allowed: tuple[str, ...],
        errors: list[FieldError],
    ) -> None:
        self.raw = raw
        self.path = path
        self.errors = errors
        for key in raw:
            if key not in allowed:
                shown = key if isinstance(key, str) else repr(key)
                self.error(_at(path, shown), f"unknown key; expected {', '.join(allowed)}")

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def present(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def required_text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            self.error(_at(self.path, key), "is required")
            return None
        if not isinstance(value, str):
            self.error(_at(self.path, key), f"must be a string, got {_json_type(value)}")
            return None
        if not value.strip():
            self.error(_at(self.path, key), "must not be empty")
            return None
        return value

    def identifier(self, key: str) -> str | None:
        """A required identifier (SPEC §2): the rule is domain.identifiers'."""
        value = self.required_text(key)
        problem = identifier_problem(value) if value is not None else None
        if problem is not None:
            self.error(_at(self.path, key), problem)
            return None
        return value

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        self.error(_at(self.path, key), f"must be a string, got {_json_type(value)}")
        return ""

    def positive_int(self, key: str, maximum: int) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= maximum:
            return value
        self.error(_at(self.path, key), f"must be an integer between 1 and {maximum}")
        return None

    def boolean(self, key: str) -> bool | None:
        value = self.raw.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.error(_at(self.path, key), f"must be true or false, got {_json_type(value)}")
        return None

    def trigger_policy(self, key: str) -> TriggerPolicy:
        value = self.raw.get(key)
        if value is None:
            return TriggerPolicy.ALL_NEW
        if isinstance(value, str) and value in {policy.value for policy in TriggerPolicy}:
            return TriggerPolicy(value)
        shown = repr(value) if isinstance(value, str) else _json_type(value)
        choices = ", ".join(TriggerPolicy)
        self.error(
            _at(self.path, key), f"unknown trigger policy {shown}; expected one of {choices}"
        )
        return TriggerPolicy.ALL_NEW

    def code_list(self, key: str) -> tuple[str, ...] | None:
        path = _at(self.path, key)
        value = self.raw.get(key)
        if value is None:
            self.error(path, "is required (a list of series codes)")
            return None
        if not isinstance(value, list | tuple):
            self.error(path, f"must be a list of series codes, got {_json_type(value)}")
            return None
        codes: list[str] = []
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if not isinstance(item, str) or not item.strip():
                self.error(item_path, f"must be a series code, got {_json_type(item)}")
            elif item in codes:
                self.error(item_path, f"duplicate series '{item}'")
            else:
                codes.append(item)
        return tuple(codes)


def _read_object(raw: object, path: str, errors: list[FieldError]) -> Mapping[Any, object] | None:
    if isinstance(raw, Mapping):
        return raw
    errors.append(FieldError(path, f"must be an object, got {_json_type(raw)}"))
    return None


def read_series(raw: object, path: str, errors: list[FieldError]) -> SeriesSpec | None:
    obj = _read_object(raw, path, errors)
    if obj is None:
        return None
    reader = _Fields(obj, path, SERIES_KEYS, errors)
    code = reader.identifier("code")
    name, description = reader.text("name"), reader.text("description")
    unit, frequency = reader.text("unit"), reader.text("frequency")
    if code is None:
        return None
    return SeriesSpec(code, name, description, unit, frequency)


def read_dataset(raw: object, path: str, errors: list[FieldError]) -> DatasetSpec | None:
    obj = _read_object(raw, path, errors)
    if obj is None:
        return None
    reader = _Fields(obj, path, DATASET_KEYS, errors)
    dataset_id = reader.identifier("id")
    name, description, bucket = (
        reader.text("name"),
        reader.text("description"),
        reader.text("bucket"),
    )
    enabled = reader.boolean("enabled")
    series = reader.code_list("series")
    if dataset_id is None or series is None:
        return None
    return DatasetSpec(dataset_id, name, description, bucket, series, enabled)


def read_metric(raw: object, path: str, errors: list[FieldError]) -> MetricDefinition | None:
    """Validate one metric, its expression included (§3); None when it cannot be used."""
    obj = _read_object(raw, path, errors)
    if obj is None:
        return None
    reader = _Fields(obj, path, METRIC_KEYS, errors)
    metric_id = reader.identifier("id")
    code = reader.identifier("code")
    expression = _read_expression(obj, path, errors)
    frequency, unit = reader.text("frequency"), reader.text("unit")
    description = reader.text("description")
    required_days = reader.positive_int("required_days", MAX_REQUIRED_DAYS)
    trigger_policy = reader.trigger_policy("trigger_policy")
    max_attempts = reader.positive_int("max_attempts", MAX_ATTEMPTS) or 3
    enabled = reader.boolean("enabled")
    if metric_id is None or code is None or expression is None:
        return None
    return MetricDefinition(
        id=metric_id,
        code=code,
        expression=expression,
        frequency=frequency,
        unit=unit,
        description=description,
        required_days=required_days,
        trigger_policy=trigger_policy,
        max_attempts=max_attempts,
        enabled=enabled,
    )


def _read_expression(
    obj: Mapping[Any, object], path: str, errors: list[FieldError]
) -> Expression | None:
    try:
        return parse_expression(
            obj.get("expression_type"), obj.get("expression"), path=_at(path, "expression")
        )
    except ValidationError as exc:
        errors.extend(exc.errors)
        return None


def read_catalog_document(raw: object) -> tuple[CatalogDocument, tuple[FieldError, ...]]:
    """Read a whole catalog file, keeping every usable entry and every problem found.

    An entry with a bad optional field is still kept (with a default in that field) so that
    checks against the rest of the catalog run too; the errors make sure it is never written.
    """
    errors: list[FieldError] = []
    if not isinstance(raw, Mapping):
        errors.append(
            FieldError(
                "",
                f"a catalog must be an object with keys {', '.join(TOP_LEVEL_KEYS)}, "
                f"got {_json_type(raw)}",
            )
        )
        return CatalogDocument(), tuple(errors)
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            shown = key if isinstance(key, str) else repr(key)
            errors.append(FieldError(shown, f"unknown key; expected {', '.join(TOP_LEVEL_KEYS)}"))
    series = _read_section(raw, "series", read_series, errors)
    datasets = _read_section(raw, "datasets", read_dataset, errors)
    metrics = _read_section(raw, "metrics", read_metric, errors)
    for section, key in (
        ("series", "code"),
        ("datasets", "id"),
        ("metrics", "id"),
        ("metrics", "code"),
    ):
        _report_duplicates(_written_values(raw, section, key), key, str, errors)
    document = CatalogDocument(tuple(series), tuple(datasets), tuple(metrics))
    return document, tuple(errors)


def parse_catalog_document(raw: object) -> CatalogDocument:
    """Validate a catalog file's structure and expressions; ValidationError lists every problem.

    Pure: references between entries and to what the database holds are checked on load.
    """
    document, errors = read_catalog_document(raw)
    if errors:
        raise ValidationError(errors)
    return document


def _read_section(
    raw: Mapping[Any, object],
    key: str,
    read: Callable[[object, str, list[FieldError]], T | None],
    errors: list[FieldError],
) -> list[Located[T]]:
    items = raw.get(key)
    if items is None:
        return []
    if not isinstance(items, list | tuple):
        errors.append(FieldError(key, f"must be a list, got {_json_type(items)}"))
        return []
    located: list[Located[T]] = []
    for index, item in enumerate(items):
        path = f"{key}[{index}]"
        parsed = read(item, path, errors)
        if parsed is not None:
            located.append(Located(path, parsed))
    return located


def _written_values(raw: Mapping[Any, object], section: str, key: str) -> list[Located[str]]:
    """Each entry's `key` as written, entries with other problems included: a duplicate is
    reported with the rest of the file's errors, not once they are fixed."""
    items = raw.get(section)
    if not isinstance(items, list | tuple):
        return []
    return [
        Located(f"{section}[{index}]", item[key])
        for index, item in enumerate(items)
        if isinstance(item, Mapping) and isinstance(item.get(key), str) and item[key].strip()
    ]


def _report_duplicates(
    entries: Sequence[Located[T]],
    field_name: str,
    key: Callable[[T], str],
    errors: list[FieldError],
) -> None:
    first_seen: dict[str, str] = {}
    for entry in entries:
        value = key(entry.item)
        if value in first_seen:
            errors.append(
                FieldError(
                    _at(entry.path, field_name),
                    f"duplicate {field_name} '{value}' (first at {first_seen[value]})",
                )
            )
        else:
            first_seen[value] = entry.path


_ENTRY_PATH = re.compile(r"^(series|datasets|metrics)\[(\d+)\]")


def in_document_order(errors: Iterable[FieldError]) -> list[FieldError]:
    """Errors sorted by the entry they concern, as the file lists them (stable otherwise)."""

    def position(error: FieldError) -> tuple[int, int]:
        match = _ENTRY_PATH.match(error.path)
        if match is None:
            return (-1, 0)
        return (TOP_LEVEL_KEYS.index(match.group(1)), int(match.group(2)))

    return sorted(errors, key=position)


def _spec_mapping(spec: SeriesSpec | DatasetSpec | MetricSpec) -> dict[str, object]:
    """A typed spec as the raw mapping the readers validate (None fields left out)."""
    raw: dict[str, object] = {}
    for spec_field in fields(spec):
        value = getattr(spec, spec_field.name)
        if value is not None:
            raw[spec_field.name] = list(value) if isinstance(value, tuple) else value
    return raw


# --- planning against the database ---------------------------------------------------------


@dataclass
class _Plan:
    """Everything a registration will write, worked out before anything is written."""

    series: list[SeriesSpec] = field(default_factory=list)
    datasets: list[DatasetSpec] = field(default_factory=list)
    added_pairs: set[DatasetSeriesPair] = field(default_factory=set)
    removed_pairs: set[DatasetSeriesPair] = field(default_factory=set)
    changed_series_sets: set[str] = field(default_factory=set)
    metrics: list[MetricRow] = field(default_factory=list)
    dependencies: dict[str, tuple[MetricDependency, ...]] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)


class _Planner:
    def __init__(self, repo: CatalogRepository, default_required_days: int) -> None:
        self.repo = repo
        self.default_required_days = default_required_days

    def plan(self, document: CatalogDocument) -> _Plan:
        plan = _Plan(
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
        referenced |= {code for e in document.metrics for code in e.item.expression.series_codes()}
        return defined | self.repo.existing_series(referenced - defined)

    def _check_dataset_series(
        self, document: CatalogDocument, known_series: set[str], plan: _Plan
    ) -> None:
        for entry in document.datasets:
            for index, code in enumerate(entry.item.series):
                if code not in known_series:
                    path = _at(entry.path, f"series[{index}]")
                    plan.errors.append(FieldError(path, f"unknown series '{code}'"))

    def _plan_dataset_series(self, plan: _Plan, current: Mapping[str, Dataset]) -> None:
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
        codes = {code for e in document.metrics for code in e.item.expression.series_codes()}
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
        plan: _Plan,
    ) -> None:
        pins = {
            ref.dataset_id
            for e in document.metrics
            for ref in e.item.expression.references
            if ref.dataset_id is not None
        }
        known_datasets = {e.item.id for e in document.datasets}
        known_datasets |= self.repo.existing_datasets(pins - known_datasets)
        owners = self.repo.metric_ids_by_code([e.item.code for e in document.metrics])
        resolver = _Resolver(known_series, known_datasets, providers, plan.errors)
        for entry in sorted(document.metrics, key=lambda e: e.item.id):
            metric = entry.item
            owner = owners.get(metric.code)
            if owner is not None and owner != metric.id:
                plan.errors.append(
                    FieldError(
                        _at(entry.path, "code"),
                        f"code '{metric.code}' is already used by metric '{owner}'",
                    )
                )
            dependencies = resolver.resolve(metric.expression)
            if dependencies is not None:
                plan.dependencies[metric.id] = dependencies
            plan.metrics.append(self._row(metric))

    def _row(self, metric: MetricDefinition) -> MetricRow:
        return MetricRow(
            id=metric.id,
            code=metric.code,
            expression_type=metric.expression.expression_type.value,
            expression_json=metric.expression.canonical,
            frequency=metric.frequency,
            unit=metric.unit,
            description=metric.description,
            required_days=metric.required_days or self.default_required_days,
            trigger_policy=metric.trigger_policy,
            max_attempts=metric.max_attempts,
            enabled=metric.enabled,
        )

    def _check_removals(self, document: CatalogDocument, plan: _Plan) -> None:
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
                    _at(paths[dependent.dataset_id], "series"),
                    f"cannot stop providing series '{dependent.series_code}': "
                    f"metric '{dependent.metric_id}' depends on it through this dataset",
                )
            )


class _Resolver:
    """Resolves each series of an expression to exactly one providing dataset (§2)."""

    def __init__(
        self,
        known_series: set[str],
        known_datasets: set[str],
        providers: Mapping[str, set[str]],
        errors: list[FieldError],
    ) -> None:
        self.known_series = known_series
        self.known_datasets = known_datasets
        self.providers = providers
        self.errors = errors

    def resolve(self, expression: Expression) -> tuple[MetricDependency, ...] | None:
        """The dependency rows in first-seen series order, or None (errors recorded)."""
        resolved: list[MetricDependency] = []
        failed = False
        for code in expression.series_codes():
            refs = [ref for ref in expression.references if ref.series_code == code]
            dataset_id = self._resolve_series(code, refs)
            if dataset_id is None:
                failed = True
            else:
                resolved.append(MetricDependency(code, dataset_id))
        return None if failed else tuple(resolved)

    def _resolve_series(self, code: str, refs: list[SeriesReference]) -> str | None:
        first = refs[0]
        if code not in self.known_series:
            self.error(first, "series_code", f"unknown series '{code}'")
            return None
        candidates = sorted(self.providers.get(code, ()))
        pinned = [ref for ref in refs if ref.dataset_id is not None]
        if pinned:
            return self._check_pins(code, pinned, candidates)
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            self.error(first, "series_code", f"series '{code}' is not provided by any dataset")
        else:
            self.error(
                first,
                "series_code",
                f"series '{code}' is provided by several datasets ({', '.join(candidates)}); "
                "pin one with dataset_id",
            )
        return None

    def _check_pins(
        self, code: str, pinned: list[SeriesReference], candidates: list[str]
    ) -> str | None:
        first = pinned[0]
        for other in pinned[1:]:
            if other.dataset_id != first.dataset_id:
                self.error(
                    other,
                    "dataset_id",
                    f"series '{code}' is pinned to '{other.dataset_id}' here but to "
                    f"'{first.dataset_id}' at {first.path}; a series has one dataset per metric",
                )
                return None
        pin = first.dataset_id
        assert pin is not None
        if pin in candidates:
            return pin
        offered = f"candidates: {', '.join(candidates)}" if candidates else "no dataset provides it"
        problem = (
            f"unknown dataset '{pin}'"
            if pin not in self.known_datasets
            else f"dataset '{pin}' does not provide series '{code}'"
        )
        self.error(first, "dataset_id", f"{problem} ({offered})")
        return None

    def error(self, ref: SeriesReference, key: str, message: str) -> None:
        self.errors.append(FieldError(_at(ref.path, key), message))


# --- the service ---------------------------------------------------------------------------


class CatalogService:
    def __init__(
        self, uow_factory: UnitOfWorkFactory, clock: Clock, default_required_days: int
    ) -> None:
        if default_required_days < 1:
            raise ValueError("default_required_days must be >= 1")
        self._uow_factory = uow_factory
        self._clock = clock
        self._default_required_days = default_required_days

    # registration

    def load_catalog(self, document: object) -> CatalogLoadResult:
        """Apply a whole catalog file in one transaction; ValidationError lists every problem."""
        parsed, errors = read_catalog_document(document)
        return in_transaction(self._uow_factory, lambda uow: self._apply(uow, parsed, errors))

    def register_series(self, spec: SeriesSpec) -> Series:
        located = self._read_single(spec, read_series)
        result = self._transaction(
            lambda uow: self._apply_then(
                uow, CatalogDocument(series=(located,)), lambda repo: repo.get_series(spec.code)
            )
        )
        assert result is not None
        return result

    def register_dataset(self, spec: DatasetSpec) -> Dataset:
        """Create or update a dataset; its series list replaces the stored one."""
        located = self._read_single(spec, read_dataset)
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
        located = self._read_single(spec, read_metric)

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

    def update_metric(
        self,
        code: str,
        *,
        enabled: bool | None = None,
        required_days: int | None = None,
        max_attempts: int | None = None,
        trigger_policy: TriggerPolicy | str | None = None,
    ) -> Metric:
        """Change a metric's settings (not its expression). Disabling cancels its pending run."""
        policy = _check_settings(enabled, required_days, max_attempts, trigger_policy)

        def work(uow: UnitOfWork) -> Metric | None:
            now = self._clock.now()
            metric_id = uow.catalog.update_metric_settings(
                code,
                enabled=enabled,
                required_days=required_days,
                max_attempts=max_attempts,
                trigger_policy=policy,
                now=now,
            )
            if metric_id is None:
                return None
            if enabled is False:
                uow.catalog.cancel_pending_runs([metric_id], _CANCEL_PENDING, METRIC_DISABLED, now)
            return uow.catalog.get_metric_by_id(metric_id)

        metric = self._transaction(work)
        if metric is None:
            raise NotFound(f"unknown metric '{code}'")
        return metric

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
        return in_transaction(self._uow_factory, work)

    def _read_single(
        self,
        spec: SeriesSpec | DatasetSpec | MetricSpec,
        read: Callable[[object, str, list[FieldError]], T | None],
    ) -> Located[T]:
        errors: list[FieldError] = []
        item = read(_spec_mapping(spec), "", errors)
        if errors or item is None:
            raise ValidationError(errors)
        return Located("", item)

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
        plan = _Planner(uow.catalog, self._default_required_days).plan(document)
        errors = [*read_errors, *plan.errors]
        if errors:
            raise ValidationError(in_document_order(errors))
        return _Writer(uow.catalog, self._clock.now()).write(plan)


def _check_settings(
    enabled: bool | None,
    required_days: int | None,
    max_attempts: int | None,
    trigger_policy: TriggerPolicy | str | None,
) -> TriggerPolicy | None:
    raw = {
        "enabled": enabled,
        "required_days": required_days,
        "max_attempts": max_attempts,
        "trigger_policy": trigger_policy,
    }
    errors: list[FieldError] = []
    reader = _Fields(raw, "", tuple(raw), errors)
    reader.boolean("enabled")
    reader.positive_int("required_days", MAX_REQUIRED_DAYS)
    reader.positive_int("max_attempts", MAX_ATTEMPTS)
    policy = reader.trigger_policy("trigger_policy") if trigger_policy is not None else None
    if errors:
        raise ValidationError(errors)
    return policy


class _Writer:
    """Writes a checked plan. Order matters for the foreign keys: series, datasets and what
    they provide, metrics and their dependencies, and last the provisions no longer offered."""

    def __init__(self, repo: CatalogRepository, now: datetime) -> None:
        self.repo = repo
        self.now = now

    def write(self, plan: _Plan) -> CatalogLoadResult:
        series = self.repo.upsert_series(plan.series, self.now)
        datasets = self._write_datasets(plan)
        metrics, canceled = self._write_metrics(plan)
        self.repo.remove_dataset_series(plan.removed_pairs)
        return CatalogLoadResult(
            series=KindCounts.of(series.get(s.code, Outcome.UNCHANGED) for s in plan.series),
            datasets=KindCounts.of(datasets),
            metrics=KindCounts.of(metrics),
            canceled_runs=tuple(canceled),
        )

    def _write_datasets(self, plan: _Plan) -> list[Outcome]:
        rows = self.repo.upsert_datasets(plan.datasets, self.now)
        self.repo.add_dataset_series(plan.added_pairs, self.now)
        outcomes = []
        for dataset in plan.datasets:
            outcome = rows.get(dataset.id, Outcome.UNCHANGED)
            if outcome is Outcome.UNCHANGED and dataset.id in plan.changed_series_sets:
                outcome = Outcome.UPDATED
            outcomes.append(outcome)
        return outcomes

    def _write_metrics(self, plan: _Plan) -> tuple[list[Outcome], list[str]]:
        ids = [m.id for m in plan.metrics]
        before = self.repo.lock_metrics(ids)
        rows = self.repo.upsert_metrics(plan.metrics, self.now)
        stored = self.repo.dependencies(ids)
        changed_dependencies = {
            metric_id: deps
            for metric_id, deps in plan.dependencies.items()
            if stored.get(metric_id, ()) != deps
        }
        self.repo.replace_dependencies(changed_dependencies, self.now)
        outcomes: list[Outcome] = []
        redefined: list[str] = []
        for row in plan.metrics:
            outcome = rows.get(row.id, Outcome.UNCHANGED)
            if outcome is Outcome.UNCHANGED and row.id in changed_dependencies:
                outcome = Outcome.UPDATED
            outcomes.append(outcome)
            if _definition_changed(before.get(row.id), row, outcome, changed_dependencies):
                redefined.append(row.id)
        canceled = self.repo.cancel_pending_runs(
            redefined, _CANCEL_PENDING, DEFINITION_CHANGED, self.now
        )
        disabled = [m.id for m in plan.metrics if m.enabled is False and m.id not in redefined]
        canceled += self.repo.cancel_pending_runs(
            disabled, _CANCEL_PENDING, METRIC_DISABLED, self.now
        )
        return outcomes, sorted(canceled)


def _definition_changed(
    before: Metric | None,
    row: MetricRow,
    outcome: Outcome,
    changed_dependencies: Mapping[str, object],
) -> bool:
    """Did the expression or the dependencies of an existing metric change (§2)?"""
    if before is None:
        # Created now, or concurrently by another load we cannot compare with: be safe.
        return outcome is Outcome.UPDATED
    return before.expression_json != row.expression_json or row.id in changed_dependencies
