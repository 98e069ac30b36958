"""The output reader port: what reading a run's output needs of S3, and the data it reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from metrics_orchestrator.domain.model import MetricRun


class OutputUnavailable(Exception):
    """S3 (or the object in it) could not be read; the message says which and why."""


class OutputObjectMissing(Exception):
    """The object does not exist."""


class ExportUnsupported(Exception):
    """This installation cannot write the format asked for; the message says what it lacks."""


class OutputFormat(StrEnum):
    PARQUET = "parquet"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class OutputFile:
    uri: str
    format: OutputFormat


@dataclass(frozen=True, slots=True)
class OutputPoint:
    obs_time: datetime
    value: float | None


class OutputReader(Protocol):
    def read_json(self, uri: str) -> dict[str, Any]:
        """The JSON object at an `s3://` URI. OutputObjectMissing if absent; OutputUnavailable
        if it cannot be read or is not a JSON object."""
        ...

    def row_count(self, file: OutputFile) -> int:
        """How many rows the file holds, without decoding them; errors as read_json."""
        ...

    def read_rows(self, file: OutputFile, offset: int, limit: int) -> list[OutputPoint]:
        """Rows offset .. offset + limit - 1, in file order, decoding no others."""
        ...

    def read_every(self, file: OutputFile, step: int) -> list[OutputPoint]:
        """Rows 0, step, 2 * step, ... of the file (a chart's sample)."""
        ...

    def last_present(self, file: OutputFile) -> OutputPoint | None:
        """The last row of the file that has a value, or None."""
        ...

    def read_tail(self, uri: str, max_bytes: int) -> tuple[bytes, int]:
        """At most the last `max_bytes` bytes of the object at an `s3://` URI, and the size of
        the whole object; errors as read_json."""
        ...


class RunLookup(Protocol):
    def __call__(self, run_id: UUID) -> MetricRun:
        """The run; NotFound if unknown."""
        ...


class ParquetEncoder(Protocol):
    def encode(self, chunks: Iterable[Sequence[OutputPoint]]) -> bytes:
        """One Parquet file of every point of `chunks` (columns obs_time, value), in order.
        ExportUnsupported, before reading `chunks`, when the library it needs is missing."""
        ...
