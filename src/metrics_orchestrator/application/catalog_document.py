"""Reading catalog input (SPEC §2, §3): a catalog file or one typed spec, every problem at once.

Pure: each entry's structure, fields and expression are checked here and every problem is
located by its JSON path (`metrics[0].required_days: ...`); references between entries and to
what the database holds are checked when the document is planned (application/catalog_plan.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from metrics_orchestrator.application.catalog_spec import (
    GRACE_NEEDS_OBJECTIVE,
    ChannelSpec,
    DatasetSpec,
    MetricSpec,
    S,
    SeriesSpec,
    Spec,
    at_path,
    validate_spec,
)
from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.expressions import Expression, parse_expression
from metrics_orchestrator.domain.identifiers import identifier_problem
from metrics_orchestrator.domain.json_values import json_type

TOP_LEVEL_KEYS = ("series", "datasets", "metrics", "notifications")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Located(Generic[T]):
    """An input item and the JSON path it came from ("" for a single item from the API)."""

    path: str
    item: T


@dataclass(frozen=True, slots=True)
class CatalogDocument:
    series: tuple[Located[SeriesSpec], ...] = ()
    datasets: tuple[Located[DatasetSpec], ...] = ()
    metrics: tuple[Located[MetricSpec], ...] = ()  # each with its expression parsed
    # SPEC §9: the notification channels the file declares (upserted by name)
    channels: tuple[Located[ChannelSpec], ...] = ()


# --- reading one entry (pure): the spec, then what pydantic cannot check -------------------


def _json_type(value: object) -> str:
    return json_type(value, array="a list")


def _read_object(raw: object, path: str, errors: list[FieldError]) -> Mapping[Any, object] | None:
    if isinstance(raw, Mapping):
        return raw
    errors.append(FieldError(path, f"must be an object, got {_json_type(raw)}"))
    return None


def _check_identifiers(
    spec: Spec | None, keys: tuple[str, ...], path: str, errors: list[FieldError]
) -> bool:
    """SPEC §2 identifiers (the rule is domain.identifiers'); False if one is not."""
    if spec is None:
        return False
    valid = True
    for key in keys:
        value = getattr(spec, key)
        problem = "must not be empty" if not value.strip() else identifier_problem(value)
        if problem is not None:
            errors.append(FieldError(at_path(path, key), problem))
            valid = False
    return valid


# A catalog entry is read from raw JSON (`read_*`: pydantic, then the checks below); one spec
# from the API or the CLI, validated by pydantic where it was built, gets only the checks below
# (`check_*`), never a second validation.


def read_channel(raw: object, path: str, errors: list[FieldError]) -> ChannelSpec | None:
    obj = _read_object(raw, path, errors)
    return validate_spec(ChannelSpec, obj, path, errors) if obj is not None else None


def read_series(raw: object, path: str, errors: list[FieldError]) -> SeriesSpec | None:
    obj = _read_object(raw, path, errors)
    spec = validate_spec(SeriesSpec, obj, path, errors) if obj is not None else None
    return _checked_series(spec, path, errors)


def _checked_series(
    spec: SeriesSpec | None, path: str, errors: list[FieldError]
) -> SeriesSpec | None:
    return spec if _check_identifiers(spec, ("code",), path, errors) else None


def check_series(spec: SeriesSpec) -> Located[SeriesSpec]:
    """One series from the API or the CLI, checked as a catalog entry would be."""
    return _single(lambda errors: _checked_series(spec, "", errors))


def read_dataset(raw: object, path: str, errors: list[FieldError]) -> DatasetSpec | None:
    obj = _read_object(raw, path, errors)
    if obj is None:
        return None
    spec = validate_spec(DatasetSpec, obj, path, errors)
    # An objective written but invalid has its own error: its grace is not alone.
    return _checked_dataset(spec, path, errors, objective_given=_given(obj, "expected_every"))


def _given(obj: Mapping[Any, object], key: str) -> bool:
    return obj.get(key) is not None


def _checked_dataset(
    spec: DatasetSpec | None, path: str, errors: list[FieldError], *, objective_given: bool
) -> DatasetSpec | None:
    if not _check_identifiers(spec, ("id",), path, errors) or spec is None:
        return None
    if spec.grace is not None and not objective_given:
        errors.append(FieldError(at_path(path, "grace"), GRACE_NEEDS_OBJECTIVE))
    codes: list[str] = []
    for index, code in enumerate(spec.series):
        item_path = at_path(at_path(path, "series"), index)
        if not code.strip():
            errors.append(FieldError(item_path, f"must be a series code, got {_json_type(code)}"))
        elif code in codes:
            errors.append(FieldError(item_path, f"duplicate series '{code}'"))
        else:
            codes.append(code)
    return spec.model_copy(update={"series": codes})


def check_dataset(spec: DatasetSpec) -> Located[DatasetSpec]:
    return _single(
        lambda errors: _checked_dataset(
            spec, "", errors, objective_given=spec.expected_every is not None
        )
    )


def read_metric(raw: object, path: str, errors: list[FieldError]) -> MetricSpec | None:
    """Validate one metric, its expression included (§3); None when it cannot be used."""
    obj = _read_object(raw, path, errors)
    if obj is None:
        return None
    spec = validate_spec(MetricSpec, obj, path, errors)
    # The expression is parsed from the raw entry even when the spec is unusable, so that its
    # problems are reported with the rest.
    return _checked_metric(spec, obj.get("expression_type"), obj.get("expression"), path, errors)


def _checked_metric(
    spec: MetricSpec | None,
    expression_type: object,
    expression: object,
    path: str,
    errors: list[FieldError],
) -> MetricSpec | None:
    identified = _check_identifiers(spec, ("id", "code"), path, errors)
    parsed = _read_expression(expression_type, expression, path, errors)
    if not identified or spec is None or parsed is None:
        return None
    return spec.with_expression(parsed)


def check_metric(spec: MetricSpec) -> Located[MetricSpec]:
    return _single(
        lambda errors: _checked_metric(spec, spec.expression_type, spec.expression, "", errors)
    )


def _read_expression(
    expression_type: object, expression: object, path: str, errors: list[FieldError]
) -> Expression | None:
    try:
        return parse_expression(expression_type, expression, path=at_path(path, "expression"))
    except ValidationError as exc:
        errors.extend(exc.errors)
        return None


def _single(read: Callable[[list[FieldError]], S | None]) -> Located[S]:
    errors: list[FieldError] = []
    item = read(errors)
    if errors or item is None:
        raise ValidationError(errors)
    return Located("", item)


# --- reading a catalog document (pure) -----------------------------------------------------


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
    channels = _read_section(raw, "notifications", read_channel, errors)
    for section, key in (
        ("series", "code"),
        ("datasets", "id"),
        ("metrics", "id"),
        ("metrics", "code"),
        ("notifications", "name"),
    ):
        _report_duplicates(_written_values(raw, section, key), key, str, errors)
    document = CatalogDocument(tuple(series), tuple(datasets), tuple(metrics), tuple(channels))
    return document, tuple(errors)


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


_ENTRY_PATH = re.compile(rf"^({'|'.join(TOP_LEVEL_KEYS)})\[(\d+)\]")


def in_document_order(errors: Iterable[FieldError]) -> list[FieldError]:
    """Errors sorted by the entry they concern, as the file lists them (stable otherwise)."""

    def position(error: FieldError) -> tuple[int, int]:
        match = _ENTRY_PATH.match(error.path)
        if match is None:
            return (-1, 0)
        return (TOP_LEVEL_KEYS.index(match.group(1)), int(match.group(2)))

    return sorted(errors, key=position)
