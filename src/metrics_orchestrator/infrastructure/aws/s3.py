"""The control plane's S3 reader: run output manifests and their data (boto3).

Parquet is decoded with polars, which comes with the `[worker]` extra; it is imported only when
an output is read, so a control plane installed without it still starts, and reading an output
then reports what is missing instead of failing at import.

What a page costs (docs/api.md, "A run's output"): a Parquet row count is read from the file's
footer (one ranged GET of its tail); a page fetches the footer and only the row groups holding
its rows, and decodes only its rows. JSON lines have no index: the file is fetched whole, its
lines counted, and only the page's lines parsed. `stats` counts what was fetched and decoded,
so tests can check that a page's work does not grow with the output.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from metrics_orchestrator.application.ports.outputs import (
    OutputFile,
    OutputFormat,
    OutputObjectMissing,
    OutputPoint,
    OutputUnavailable,
)
from metrics_orchestrator.infrastructure.aws.parquet_footer import (
    MAGIC,
    TAIL,
    FooterError,
    RowGroup,
    footer_length,
    row_groups,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
# One ranged GET of a file's tail usually holds its whole footer.
TAIL_GUESS = 64 * 1024
COLUMNS = ["obs_time", "value"]


class _EmptyObject(OutputUnavailable):
    """A range of an object that has no bytes (S3 answers 416 InvalidRange)."""


@dataclass(slots=True)
class ReadStats:
    """What the reader fetched and decoded since it was built (for tests and logs)."""

    requests: int = 0
    bytes_fetched: int = 0
    rows_decoded: int = 0


@dataclass(frozen=True, slots=True)
class _Footer:
    size: int
    tail: bytes  # the file's last bytes, the whole footer included
    groups: tuple[RowGroup, ...]

    @property
    def rows(self) -> int:
        return sum(group.rows for group in self.groups)


class S3OutputReader:
    """`client` is built on first use: most processes (CLI commands, tests) never read one."""

    def __init__(self, client: Callable[[], S3Client]) -> None:
        self._factory = client
        self._client: S3Client | None = None
        self._lock = threading.Lock()
        self.stats = ReadStats()

    def _s3(self) -> S3Client:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def read_json(self, uri: str) -> dict[str, Any]:
        raw = self._get(uri)
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise OutputUnavailable(f"{uri} is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise OutputUnavailable(f"{uri} is not a JSON object")
        return document

    def read_tail(self, uri: str, max_bytes: int) -> tuple[bytes, int]:
        try:
            return self._get_tail(uri, max_bytes)
        except _EmptyObject:
            return b"", 0

    # --- the OutputReader port ------------------------------------------------------------

    def row_count(self, file: OutputFile) -> int:
        if file.format is OutputFormat.JSONL:
            return sum(1 for _ in _lines(self._get(file.uri)))
        return self._footer(file.uri).rows

    def read_rows(self, file: OutputFile, offset: int, limit: int) -> list[OutputPoint]:
        if file.format is OutputFormat.JSONL:
            lines = _lines(self._get(file.uri))
            page = [line for index, line in enumerate(lines) if offset <= index < offset + limit]
            return self._decoded([_jsonl_point(file.uri, n, text) for n, text in page])
        footer = self._footer(file.uri)
        needed = [g for g in footer.groups if g.first_row < offset + limit]
        needed = [g for g in needed if g.first_row + g.rows > offset]
        return self._parquet(file.uri, footer, needed, lambda frame: frame.slice(offset, limit))

    def read_every(self, file: OutputFile, step: int) -> list[OutputPoint]:
        if file.format is OutputFormat.JSONL:
            lines = _lines(self._get(file.uri))
            sample = [(n, text) for index, (n, text) in enumerate(lines) if index % step == 0]
            return self._decoded([_jsonl_point(file.uri, n, text) for n, text in sample])
        footer = self._footer(file.uri)
        return self._parquet(
            file.uri, footer, list(footer.groups), lambda frame: frame.gather_every(step)
        )

    def last_present(self, file: OutputFile) -> OutputPoint | None:
        if file.format is OutputFormat.JSONL:
            for n, text in reversed(list(_lines(self._get(file.uri)))):
                point = self._decoded([_jsonl_point(file.uri, n, text)])[0]
                if point.value is not None:
                    return point
            return None
        footer = self._footer(file.uri)
        for group in reversed(footer.groups):  # the output is in time order: look from its end
            found = self._parquet(file.uri, footer, [group], _last_present_in(group))
            if found:
                return found[0]
        return None

    # --- Parquet --------------------------------------------------------------------------

    def _footer(self, uri: str) -> _Footer:
        """The file's size, tail and row groups, from one or two ranged GETs of its end."""
        tail, size = self._get_tail(uri, TAIL_GUESS)
        try:
            length = footer_length(tail)
            if length + TAIL > len(tail) and len(tail) < size:
                tail, size = self._get_tail(uri, length + TAIL)
            groups = row_groups(tail[len(tail) - TAIL - length : len(tail) - TAIL])
        except FooterError as exc:
            raise OutputUnavailable(f"{uri} is not a readable output file: {exc}") from exc
        return _Footer(size, tail, tuple(groups))

    def _parquet(
        self, uri: str, footer: _Footer, groups: list[RowGroup], query: Callable[[Any], Any]
    ) -> list[OutputPoint]:
        """`query` over the file, of which only `groups` (and the footer) are fetched.

        polars skips the row groups a slice does not touch, so the bytes left empty are never
        read; if polars needs more (a layout this reader did not foresee), the whole file is
        fetched once and the query run on it.
        """
        pl = _polars()
        buffer = bytearray(footer.size)
        buffer[: len(MAGIC)] = MAGIC
        buffer[footer.size - len(footer.tail) :] = footer.tail
        for group in groups:
            buffer[group.start : group.end] = self._get(uri, (group.start, group.end))
        try:
            frame = query(pl.scan_parquet(io.BytesIO(bytes(buffer))).select(COLUMNS)).collect()
        except Exception:  # polars raises several families; the full file settles it
            try:
                frame = query(pl.scan_parquet(io.BytesIO(self._get(uri))).select(COLUMNS)).collect()
            except Exception as exc:
                raise OutputUnavailable(f"{uri} is not a readable output file: {exc}") from exc
        return self._decoded([OutputPoint(t, v) for t, v in frame.iter_rows()])

    # --- S3 -------------------------------------------------------------------------------

    def _decoded(self, points: list[OutputPoint]) -> list[OutputPoint]:
        self.stats.rows_decoded += len(points)
        return points

    def _get_tail(self, uri: str, length: int) -> tuple[bytes, int]:
        body, content_range = self._get_object(uri, f"bytes=-{length}")
        size = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else len(body)
        return body, size

    def _get(self, uri: str, byte_range: tuple[int, int] | None = None) -> bytes:
        if byte_range is None:
            return self._get_object(uri)[0]
        # an HTTP range is inclusive
        return self._get_object(uri, f"bytes={byte_range[0]}-{byte_range[1] - 1}")[0]

    def _get_object(self, uri: str, span: str | None = None) -> tuple[bytes, str]:
        """The object's bytes (all, or the HTTP `span`) and its ContentRange ("" if none)."""
        bucket, key = _split(uri)
        try:
            if span is None:
                response = self._s3().get_object(Bucket=bucket, Key=key)
            else:
                response = self._s3().get_object(Bucket=bucket, Key=key, Range=span)
            body = response["Body"].read()
        except ClientError as exc:
            raise self._client_error(uri, exc) from exc
        except BotoCoreError as exc:
            raise OutputUnavailable(f"S3 could not be reached to read {uri}: {exc}") from exc
        self._count(body)
        return body, str(response.get("ContentRange", ""))

    def _count(self, body: bytes) -> None:
        self.stats.requests += 1
        self.stats.bytes_fetched += len(body)

    @staticmethod
    def _client_error(uri: str, exc: ClientError) -> Exception:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _NOT_FOUND:
            return OutputObjectMissing(uri)
        if code == "InvalidRange":
            return _EmptyObject(uri)
        return OutputUnavailable(f"S3 refused to read {uri}: {code or exc}")


def _polars() -> Any:
    try:
        import polars as pl
    except ImportError as exc:
        raise OutputUnavailable(
            "reading Parquet outputs needs polars: pip install 'metrics-orchestrator[worker]'"
        ) from exc
    return pl


def _last_present_in(group: RowGroup) -> Callable[[Any], Any]:
    """The query of the last row of `group` that has a value."""

    def query(frame: Any) -> Any:
        rows = frame.slice(group.first_row, group.rows)
        return rows.filter(_polars().col("value").is_not_null()).tail(1)

    return query


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


# --- JSON lines -----------------------------------------------------------------------------


def _lines(raw: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, text) of every non-blank line."""
    for number, line in enumerate(raw.splitlines(), start=1):
        if line.strip():
            yield number, line


def _jsonl_point(uri: str, number: int, text: bytes) -> OutputPoint:
    """One `{"obs_time": ISO 8601, "value": number | null}` line."""
    where = f"{uri} line {number}"
    try:
        row = json.loads(text)
    except ValueError as exc:
        raise OutputUnavailable(f"{where} is not JSON: {exc}") from exc
    if not isinstance(row, dict) or "obs_time" not in row or "value" not in row:
        raise OutputUnavailable(f"{where} is not an object with obs_time and value")
    return OutputPoint(_obs_time(row["obs_time"], where), _value(row["value"], where))


def _obs_time(raw: object, where: str) -> datetime:
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    raise OutputUnavailable(f"{where}: obs_time {raw!r} is not an ISO 8601 date and time")


def _value(raw: object, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
        return value if math.isfinite(value) else None
    raise OutputUnavailable(f"{where}: value {raw!r} is not a number or null")
