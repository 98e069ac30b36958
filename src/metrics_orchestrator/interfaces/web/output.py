"""A run's output values for the chart: the one place that will call `GET /runs/{id}/output`.

That endpoint (the values a succeeded run wrote, read through its output manifest) is being
built separately; until it lands, every run shows "no output". When it does, this function
calls the application service behind it and returns its points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class OutputPoint:
    at: datetime
    value: float


@dataclass(frozen=True, slots=True)
class RunOutput:
    series_label: str
    points: tuple[OutputPoint, ...]


def run_output(run_id: UUID) -> RunOutput | None:
    """The run's output as a time series, or None when there is none to show (yet)."""
    del run_id  # read through the run-output service once it exists
    return None
