"""Reading catalog input (SPEC §2, §3): a catalog file or one typed spec, every problem at once.

Pure: each entry's structure, fields and expression are checked here and every problem is
located by its JSON path (`metrics[0].required_days: ...`); references between entries and to
what the database holds are checked when the document is planned (application/catalog_plan.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from metrics_orchestrator.application.ports.catalog import DatasetSpec, SeriesSpec
from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.expressions import Expression, parse_expression
from metrics_orchestrator.domain.identifiers import identifier_problem
from metrics_orchestrator.domain.json_values import json_type
from metrics_orchestrator.domain.model import MAX_ATTEMPTS, MAX_REQUIRED_DAYS, TriggerPolicy

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


# --- reading a catalog document (pure) -----------------------------------------------------


def at_path(path: str, key: object) -> str:
    """The JSON path of `key` inside the object at `path` ("" is the top level)."""
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
                self.error(at_path(path, shown), f"unknown key; expected {', '.join(allowed)}")

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def present(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def required_text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            self.error(at_path(self.path, key), "is required")
            return None
        if not isinstance(value, str):
            self.error(at_path(self.path, key), f"must be a string, got {_json_type(value)}")
            return None
        if not value.strip():
            self.error(at_path(self.path, key), "must not be empty")
            return None
        return value

    def identifier(self, key: str) -> str | None:
        """A required identifier (SPEC §2): the rule is domain.identifiers'."""
        value = self.required_text(key)
        problem = identifier_problem(value) if value is not None else None
        if problem is not None:
            self.error(at_path(self.path, key), problem)
            return None
        return value

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        self.error(at_path(self.path, key), f"must be a string, got {_json_type(value)}")
        return ""

    def positive_int(self, key: str, maximum: int) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= maximum:
            return value
        self.error(at_path(self.path, key), f"must be an integer between 1 and {maximum}")
        return None

    def boolean(self, key: str) -> bool | None:
        value = self.raw.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.error(at_path(self.path, key), f"must be true or false, got {_json_type(value)}")
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
            at_path(self.path, key), f"unknown trigger policy {shown}; expected one of {choices}"
        )
        return TriggerPolicy.ALL_NEW

    def code_list(self, key: str) -> tuple[str, ...] | None:
        path = at_path(self.path, key)
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
            obj.get("expression_type"), obj.get("expression"), path=at_path(path, "expression")
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
                    at_path(entry.path, field_name),
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


def check_settings(
    enabled: bool | None,
    required_days: int | None,
    max_attempts: int | None,
    trigger_policy: TriggerPolicy | str | None,
) -> TriggerPolicy | None:
    """Validate an operational change of a metric's settings (None: keep); its trigger policy."""
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


def read_single(
    spec: SeriesSpec | DatasetSpec | MetricSpec,
    read: Callable[[object, str, list[FieldError]], T | None],
) -> Located[T]:
    """One typed spec (from the API or the CLI) through the same reader as a catalog entry."""
    errors: list[FieldError] = []
    item = read(_spec_mapping(spec), "", errors)
    if errors or item is None:
        raise ValidationError(errors)
    return Located("", item)
