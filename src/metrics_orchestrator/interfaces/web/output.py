"""A run's output values for the chart, read through the same service as `GET /runs/{id}/output`.

The chart asks for at most CHART_POINTS rows, taken evenly over the whole output (a person
reads a shape, and a million-row output must not cost a million rows per page view).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from metrics_orchestrator.application.outputs import CHART_POINTS, OutputService
from metrics_orchestrator.application.outputs import OutputUnavailable as _Unavailable
from metrics_orchestrator.domain.errors import NotFound


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
