"""A run's output values for the chart, read through the same service as `GET /runs/{id}/output`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from metrics_orchestrator.application.outputs import MAX_OUTPUT_PAGE, OutputService
from metrics_orchestrator.application.outputs import OutputUnavailable as _Unavailable
from metrics_orchestrator.domain.errors import NotFound

# A chart of more points than this is drawn from the first ones (a person reads a shape).
CHART_POINTS = MAX_OUTPUT_PAGE


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

    def chart_points(self) -> list[dict[str, float]]:
        return [point.chart_xy() for point in self.points]


def run_output(outputs: OutputService, run_id: UUID, label: str) -> RunOutput | None:
    """The run's output as a time series, or None when it has none (or S3 cannot be read)."""
    try:
        output = outputs.read(run_id, limit=CHART_POINTS)
    except (NotFound, _Unavailable):
        return None
    points = tuple(OutputPoint(p.obs_time, p.value) for p in output.points if p.value is not None)
    return RunOutput(label, points) if points else None
