"""Writing a run's output as Parquet for download (`GET /runs/{id}/output.parquet`), with polars.

polars comes with the `[worker]` extra (docs/decisions.md "polars"); it is imported when a
download is asked for, so a control plane installed without it still starts, and the download
says what is missing (ExportUnsupported: a 501) instead of failing at import. pyarrow is not
used: polars stays the only columnar library. Each chunk of points becomes a small frame
(columnar, 16 bytes a row), so the Python objects of one chunk at most are alive at a time.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from metrics_orchestrator.application.ports.outputs import ExportUnsupported, OutputPoint

NO_POLARS = "writing Parquet needs polars: pip install 'metrics-orchestrator[worker]'"


class PolarsParquetEncoder:
    def encode(self, chunks: Iterable[Sequence[OutputPoint]]) -> bytes:
        pl = _polars()
        schema = {"obs_time": pl.Datetime("us", "UTC"), "value": pl.Float64}
        frames = [
            pl.DataFrame(
                {"obs_time": [_utc(p.obs_time) for p in chunk], "value": [p.value for p in chunk]},
                schema=schema,
            )
            for chunk in chunks
        ]
        whole = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
        buffer = io.BytesIO()
        whole.write_parquet(buffer)
        return buffer.getvalue()


def _polars() -> Any:
    try:
        import polars as pl
    except ImportError as exc:
        raise ExportUnsupported(NO_POLARS) from exc
    return pl


def _utc(moment: datetime) -> datetime:
    """An output's obs_time without a zone is UTC (as the JSON-lines reader reads it)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
