"""A run's output values for the chart, read through the same service as `GET /runs/{id}/output`.

The chart asks for at most CHART_POINTS rows, taken evenly over the whole output (a person
reads a shape, and a million-row output must not cost a million rows per page view). On a run's
page it also marks, with a vertical line, the effective time of each input version the run
consumed (its lineage), so a jump in the values can be read against the data that arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from metrics_orchestrator.application.outputs import CHART_POINTS, OutputService
from metrics_orchestrator.application.outputs import OutputUnavailable as _Unavailable
from metrics_orchestrator.domain.errors import NotFound
from metrics_orchestrator.domain.model import DatasetUpdate


@dataclass(frozen=True, slots=True)
class OutputPoint:
    at: datetime
    value: float

    def chart_xy(self) -> dict[str, float]:
        """The point for the chart's linear time axis: x in epoch milliseconds (docs/ui.md)."""
        return {"x": self.at.timestamp() * 1000, "y": self.value}


@dataclass(frozen=True, slots=True)
class RunOutput:
    series_label: str
    points: tuple[OutputPoint, ...]
    format: str = "parquet"  # "parquet" | "jsonl": how the worker wrote it
    total: int = 0  # rows in the whole output
    sampled: bool = False  # the chart shows rows taken evenly, not every row

    def chart_points(self) -> list[dict[str, float]]:
        return [point.chart_xy() for point in self.points]


def run_output(outputs: OutputService, run_id: UUID, label: str) -> RunOutput | None:
    """The run's output as a time series, or None when it has none (or S3 cannot be read)."""
    try:
        output = outputs.chart(run_id, max_points=CHART_POINTS)
    except (NotFound, _Unavailable):
        return None
    points = tuple(OutputPoint(p.obs_time, p.value) for p in output.points if p.value is not None)
    sampled = output.total > len(output.points)
    return RunOutput(label, points, str(output.format), output.total, sampled) if points else None


@dataclass(frozen=True, slots=True)
class InputMarker:
    """An input version a run consumed, drawn on its chart at the version's effective time."""

    dataset_id: str
    at: datetime

    @property
    def chart_point(self) -> dict[str, Any]:
        """On the chart's time axis: x in epoch milliseconds, as the points."""
        return {"x": self.at.timestamp() * 1000, "label": self.dataset_id}


def input_markers(lineage: Iterable[DatasetUpdate]) -> list[InputMarker]:
    """A marker per consumed version (SPEC §5.2's effective time), oldest first."""
    markers = [InputMarker(update.dataset_id, update.effective_at) for update in lineage]
    return sorted(markers, key=lambda m: (m.at, m.dataset_id))
