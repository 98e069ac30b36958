"""A run's output as a file to download: CSV text, and the names and types of the files.

CSV (RFC 4180): a header `obs_time,value`, then a line per row in output order; obs_time in
ISO 8601 UTC (`2024-01-01T00:00:00+00:00`), value as the shortest text that reads back as the
same float (`1.5`, `1e+20`), empty where the metric is missing (SPEC §3.1's null).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC
from uuid import UUID

from metrics_orchestrator.application.outputs import OutputPoint

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# IANA registered application/vnd.apache.parquet in 2024
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
CSV_HEADER = "obs_time,value\r\n"


def csv_lines(chunks: Iterable[Sequence[OutputPoint]]) -> Iterator[str]:
    """The CSV text of every point, a chunk of lines at a time (what a response streams)."""
    yield CSV_HEADER
    for chunk in chunks:
        yield "".join(_csv_line(point) for point in chunk)


def _csv_line(point: OutputPoint) -> str:
    moment = point.obs_time
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    value = "" if point.value is None else repr(point.value)
    return f"{moment.isoformat()},{value}\r\n"


def attachment(run_id: UUID, extension: str) -> dict[str, str]:
    """The header that makes a browser save the response as `output-<run id>.<extension>`."""
    return {"Content-Disposition": f'attachment; filename="output-{run_id}.{extension}"'}
