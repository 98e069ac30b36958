"""Series → dataset resolution (SPEC §2): every series of a metric has exactly one dataset.

Pure: the caller loads, set-based, which series and datasets exist and which datasets provide
each series once the registration is applied (`CatalogFacts`), then asks `resolve_dependencies`
for each metric. Every problem is reported at once, located by the JSON path of the
reference it concerns, naming the series and the candidate datasets.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from metrics_orchestrator.domain.errors import FieldError
from metrics_orchestrator.domain.expressions import SeriesReference
from metrics_orchestrator.domain.metric_outputs import output_dataset_id
from metrics_orchestrator.domain.model import MetricDependency


@dataclass(frozen=True, slots=True)
class CatalogFacts:
    """What the catalog holds once the registration being checked is applied."""

    known_series: Collection[str]
    known_datasets: Collection[str]
    providers: Mapping[str, Collection[str]]  # series code -> ids of the datasets providing it
    known_metrics: Collection[str] = ()  # metric codes, for inputs on their outputs (§8)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The dependency rows in first-seen series order, or the problems that prevent them."""

    dependencies: tuple[MetricDependency, ...] = ()
    errors: tuple[FieldError, ...] = ()

    @property
    def resolved(self) -> bool:
        return not self.errors


def resolve_dependencies(references: Sequence[SeriesReference], facts: CatalogFacts) -> Resolution:
    """Resolve each distinct series of `references` (in first-seen order) to one dataset.

    A series resolves to the dataset its references pin (all pins must agree and that dataset
    must provide it), else to its only provider; unknown, unprovided or ambiguous is an error.
    """
    dependencies: list[MetricDependency] = []
    errors: list[FieldError] = []
    for code in dict.fromkeys(ref.series_code for ref in references):
        refs = [ref for ref in references if ref.series_code == code]
        if refs[0].metric_code is not None:
            dataset_id, problem = resolve_metric_output(refs[0], facts)
        else:
            dataset_id, problem = resolve_series(code, refs, facts)
        if problem is not None:
            errors.append(problem)
        elif dataset_id is not None:
            dependencies.append(MetricDependency(code, dataset_id))
    if errors:
        return Resolution(errors=tuple(errors))
    return Resolution(dependencies=tuple(dependencies))


def resolve_metric_output(
    ref: SeriesReference, facts: CatalogFacts
) -> tuple[str | None, FieldError | None]:
    """Another metric's output: its pseudo-dataset `metric:X`, if X exists (SPEC §8)."""
    code = ref.metric_code or ref.series_code
    if code not in facts.known_metrics:
        return None, _error(ref, "metric_code", f"unknown metric '{code}'")
    return output_dataset_id(code), None


def resolve_series(
    code: str, refs: Sequence[SeriesReference], facts: CatalogFacts
) -> tuple[str | None, FieldError | None]:
    """The one dataset of series `code` (referenced by `refs`, at least one), or the problem."""
    first = refs[0]
    if code not in facts.known_series:
        return None, _error(first, "series_code", f"unknown series '{code}'")
    candidates = sorted(facts.providers.get(code, ()))
    pinned = [ref for ref in refs if ref.dataset_id is not None]
    if pinned:
        return _check_pins(code, pinned, candidates, facts.known_datasets)
    if len(candidates) == 1:
        return candidates[0], None
    if not candidates:
        return None, _error(first, "series_code", f"series '{code}' is not provided by any dataset")
    return None, _error(
        first,
        "series_code",
        f"series '{code}' is provided by several datasets ({', '.join(candidates)}); "
        "pin one with dataset_id",
    )


def _check_pins(
    code: str,
    pinned: Sequence[SeriesReference],
    candidates: Sequence[str],
    known_datasets: Collection[str],
) -> tuple[str | None, FieldError | None]:
    first = pinned[0]
    for other in pinned[1:]:
        if other.dataset_id != first.dataset_id:
            return None, _error(
                other,
                "dataset_id",
                f"series '{code}' is pinned to '{other.dataset_id}' here but to "
                f"'{first.dataset_id}' at {first.path}; a series has one dataset per metric",
            )
    pin = first.dataset_id
    assert pin is not None  # `pinned` holds only references with a dataset_id
    if pin in candidates:
        return pin, None
    offered = f"candidates: {', '.join(candidates)}" if candidates else "no dataset provides it"
    problem = (
        f"unknown dataset '{pin}'"
        if pin not in known_datasets
        else f"dataset '{pin}' does not provide series '{code}'"
    )
    return None, _error(first, "dataset_id", f"{problem} ({offered})")


def _error(ref: SeriesReference, key: str, message: str) -> FieldError:
    path = f"{ref.path}.{key}" if ref.path else key
    return FieldError(path, message)
