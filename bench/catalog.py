"""Synthetic catalogs: datasets, series and metrics of 1-3 inputs, with an exact fan-out.

Metrics are "owned" by a dataset; a metric with k inputs owned by dataset i reads one series
from each of the datasets i, i+1, ..., i+k-1 (cyclically). Every owner gets the same list of
input counts, so every dataset ends up with exactly the same number of dependent metrics:
the sum of that list, which is the requested fan-out. Input counts cycle 1, 2, 3 (the last
one shortened to hit the fan-out exactly), so most metrics read several datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_INPUTS = 3


@dataclass(frozen=True, slots=True)
class CatalogShape:
    """What to generate. `fan_out`: metrics depending on each dataset."""

    datasets: int = 12
    fan_out: int = 10
    series_per_dataset: int = 3
    # every n-th metric uses `any_new` (runs on any new input), the rest `all_new`
    any_new_every: int = 2
    required_days: int = 7
    bucket: str = "bench-datasets"

    def __post_init__(self) -> None:
        if self.datasets < MAX_INPUTS:
            raise ValueError(f"datasets must be >= {MAX_INPUTS} (a metric reads up to 3)")
        if self.fan_out < 1:
            raise ValueError("fan_out must be >= 1")
        if self.series_per_dataset < 1:
            raise ValueError("series_per_dataset must be >= 1")
        if self.any_new_every < 1:
            raise ValueError("any_new_every must be >= 1")


def input_counts(fan_out: int) -> list[int]:
    """Input counts of the metrics one dataset owns; they sum to `fan_out`."""
    counts: list[int] = []
    remaining = fan_out
    step = 0
    while remaining > 0:
        k = min(step % MAX_INPUTS + 1, remaining)
        counts.append(k)
        remaining -= k
        step += 1
    return counts


def dataset_id(index: int) -> str:
    return f"bench_ds_{index:04d}"


def series_code(dataset_index: int, series_index: int) -> str:
    return f"BENCH_S_{dataset_index:04d}_{series_index}"


def metric_code(owner: int, ordinal: int) -> str:
    return f"bench.m_{owner:04d}_{ordinal:03d}"


def generate_catalog(shape: CatalogShape) -> dict[str, Any]:
    """A catalog document as `CatalogService.load_catalog` (and `catalog load`) accept it."""
    series = [
        {"code": series_code(d, s), "name": f"bench series {d}/{s}", "frequency": "daily"}
        for d in range(shape.datasets)
        for s in range(shape.series_per_dataset)
    ]
    datasets = [
        {
            "id": dataset_id(d),
            "name": f"bench dataset {d}",
            "bucket": shape.bucket,
            "series": [series_code(d, s) for s in range(shape.series_per_dataset)],
        }
        for d in range(shape.datasets)
    ]
    metrics = [
        _metric(shape, owner, ordinal, k)
        for owner in range(shape.datasets)
        for ordinal, k in enumerate(input_counts(shape.fan_out))
    ]
    return {"series": series, "datasets": datasets, "metrics": metrics}


def _metric(shape: CatalogShape, owner: int, ordinal: int, inputs: int) -> dict[str, Any]:
    refs = [
        {
            "series_code": series_code(
                (owner + i) % shape.datasets, ordinal % shape.series_per_dataset
            )
        }
        for i in range(inputs)
    ]
    expression_type, expression = _expression(refs, ordinal)
    code = metric_code(owner, ordinal)
    return {
        "id": f"metric-{code}",
        "code": code,
        "expression_type": expression_type,
        "expression": expression,
        "frequency": "daily",
        "required_days": shape.required_days,
        "trigger_policy": "any_new" if ordinal % shape.any_new_every == 0 else "all_new",
    }


def _expression(refs: list[dict[str, str]], ordinal: int) -> tuple[str, dict[str, Any]]:
    if len(refs) == 1:
        return "window_op", {"op": "sma", "series": refs[0], "window": 1 + ordinal % 30}
    if len(refs) == 2:
        return "series_math", {"op": "ratio", "left": refs[0], "right": refs[1], "scale": 100}
    return "composite", {"op": "sum", "operands": refs}


def expected_dependents(shape: CatalogShape) -> dict[str, int]:
    """How many metrics depend on each dataset (what the generator promises)."""
    return {dataset_id(d): shape.fan_out for d in range(shape.datasets)}
