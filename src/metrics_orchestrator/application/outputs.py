"""Reading what a succeeded run wrote (SPEC §4.4, §6.3 `GET /runs/{id}/output`).

The run's `outputManifest` (reported in its completed event) names the manifest in S3; the
manifest names the data. Two layouts are read (docs/api.md, "A run's output"):
- SPEC §4.4 (the reference worker): `files`, the full `s3://` URIs of Parquet files;
- other workers (the public dp-worker): `outputs.files`, names relative to the manifest's
  folder, JSON lines (`.jsonl`, `.ndjson`: one `{"obs_time", "value"}` object a line) or
  Parquet (`.parquet`).
Anything else is OutputUnavailable, which the API reports as 502: the fault is upstream, not
the caller's. A run that did not succeed, or whose worker reported no manifest, has no output
(NotFound); a manifest that does not exist is no output either (a simulated worker reports one
that was never written).

A page costs the rows it shows, not the whole output: the reader counts rows without decoding
them and decodes only the rows asked for; a chart asks for at most CHART_POINTS rows, spread
evenly over the output. A download (`export`, `parquet`) reads the whole output a chunk of
EXPORT_CHUNK rows at a time, so what it holds decoded at once is bounded by a chunk, whatever
the output's size (docs/api.md "Downloading a run's output").
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from metrics_orchestrator.application.pagination import check_page_size
from metrics_orchestrator.application.ports.outputs import (
    ExportUnsupported,
    OutputFile,
    OutputFormat,
    OutputObjectMissing,
    OutputPoint,
    OutputReader,
    OutputUnavailable,
    ParquetEncoder,
    RunLookup,
)
from metrics_orchestrator.domain.errors import FieldError, NotFound, ValidationError
from metrics_orchestrator.domain.model import RunStatus

__all__ = [
    "CHART_POINTS",
    "EXPORT_CHUNK",
    "MAX_OUTPUT_PAGE",
    "ExportUnsupported",
    "OutputExport",
    "OutputFile",
    "OutputFormat",
    "OutputObjectMissing",
    "OutputPoint",
    "OutputReader",
    "OutputService",
    "OutputUnavailable",
    "ParquetEncoder",
    "RunLookup",
    "RunOutput",
    "data_files",
    "manifest_candidates",
]

T = TypeVar("T")

MAX_OUTPUT_PAGE = 5_000
# A chart is drawn from at most this many points, taken evenly over the whole output.
CHART_POINTS = 2_000
# A download decodes the output this many rows at a time (a few MB of points at most).
EXPORT_CHUNK = 50_000


_EXTENSIONS: Mapping[str, OutputFormat] = {
    ".parquet": OutputFormat.PARQUET,
    ".jsonl": OutputFormat.JSONL,
    ".ndjson": OutputFormat.JSONL,
}


@dataclass(frozen=True, slots=True)
class RunOutput:
    run_id: UUID
    manifest_uri: str
    manifest: Mapping[str, Any]
    format: OutputFormat
    total: int
    offset: int
    points: Sequence[OutputPoint]

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.points)
        return end if end < self.total else None


@dataclass(frozen=True, slots=True)
class OutputExport:
    """A whole output to download: found (its manifest read) before any row is, so a missing
    or unreadable output is an error before the first byte is sent; `chunks` then reads it."""

    run_id: UUID
    manifest_uri: str
    format: OutputFormat
    total: int
    chunks: Callable[[], Iterator[Sequence[OutputPoint]]]


@dataclass(frozen=True, slots=True)
class _Located:
    """A run's manifest and the data files it names, each with its row count."""

    uri: str
    manifest: dict[str, Any]
    format: OutputFormat
    files: tuple[tuple[OutputFile, int], ...]

    @property
    def total(self) -> int:
        return sum(count for _, count in self.files)


class OutputService:
    def __init__(
        self,
        find_run: RunLookup,
        reader: OutputReader,
        default_bucket: str,
        parquet: ParquetEncoder | None = None,
    ) -> None:
        """`default_bucket` resolves a manifest path a worker reported without `s3://`;
        without `parquet`, Parquet downloads are ExportUnsupported."""
        self._find_run = find_run
        self._reader = reader
        self._default_bucket = default_bucket
        self._parquet = parquet

    def read(self, run_id: UUID, *, offset: int = 0, limit: int = 500) -> RunOutput:
        """One page of the output's rows, decoding only those rows."""
        if offset < 0:
            raise ValidationError([FieldError("cursor", "must not point before the start")])
        check_page_size(limit, MAX_OUTPUT_PAGE)
        located = self._locate(run_id)
        points: list[OutputPoint] = []
        start = offset  # the page's first row, counted from the current file's first row
        for file, count in located.files:
            if len(points) >= limit:
                break
            if start >= count:
                start -= count
                continue
            wanted = limit - len(points)
            points += self._read(partial(self._reader.read_rows, file, start, wanted))
            start = 0
        return self._output(run_id, located, offset, points[:limit])

    def chart(self, run_id: UUID, *, max_points: int = CHART_POINTS) -> RunOutput:
        """At most `max_points` rows spread evenly over the whole output, in time order."""
        located = self._locate(run_id)
        step = max(1, math.ceil(located.total / max_points))
        points: list[OutputPoint] = []
        for file, count in located.files:
            if count:
                points += self._read(partial(self._reader.read_every, file, step))
        return self._output(run_id, located, 0, points[:max_points])

    def latest(self, run_id: UUID) -> tuple[int, OutputPoint | None]:
        """(row count, the latest point that has a value) of a run's output, for summaries."""
        located = self._locate(run_id)
        for file, count in reversed(located.files):
            point = self._read(partial(self._reader.last_present, file)) if count else None
            if point is not None:
                return located.total, point
        return located.total, None

    def export(self, run_id: UUID, *, chunk: int = EXPORT_CHUNK) -> OutputExport:
        """The whole output, read `chunk` rows at a time when its `chunks` are iterated."""
        located = self._locate(run_id)

        def chunks() -> Iterator[Sequence[OutputPoint]]:
            for file, count in located.files:
                for start in range(0, count, chunk):
                    yield self._read(partial(self._reader.read_rows, file, start, chunk))

        return OutputExport(run_id, located.uri, located.format, located.total, chunks)

    def parquet(self, run_id: UUID) -> bytes:
        """The whole output as one Parquet file (obs_time, value), whatever the worker wrote;
        ExportUnsupported when this installation has no Parquet encoder (polars)."""
        if self._parquet is None:
            raise ExportUnsupported("this installation writes no Parquet")
        return self._parquet.encode(self.export(run_id).chunks())

    def _locate(self, run_id: UUID) -> _Located:
        run = self._find_run(run_id)
        if run.status is not RunStatus.SUCCEEDED or not run.output_manifest:
            raise NotFound(
                f"run {run_id} has no output (status {run.status}"
                + ("" if run.output_manifest else ", no output manifest reported")
                + ")"
            )
        candidates = manifest_candidates(run.output_manifest, self._default_bucket)
        for uri in candidates:
            try:
                manifest = self._reader.read_json(uri)
            except OutputObjectMissing:
                continue
            files = data_files(manifest, uri)
            counts = tuple((f, self._read(partial(self._reader.row_count, f))) for f in files)
            return _Located(uri, manifest, _format_of(files), counts)
        raise NotFound(f"run {run_id} has no output: {candidates[0]} does not exist")

    def _read(self, read: Callable[[], T]) -> T:
        """A data file named by a manifest that exists must exist too: missing is a 502."""
        try:
            return read()
        except OutputObjectMissing as exc:
            raise OutputUnavailable(f"{exc} is named by the manifest but does not exist") from exc

    @staticmethod
    def _output(
        run_id: UUID, located: _Located, offset: int, points: list[OutputPoint]
    ) -> RunOutput:
        return RunOutput(
            run_id=run_id,
            manifest_uri=located.uri,
            manifest=located.manifest,
            format=located.format,
            total=located.total,
            offset=offset,
            points=points,
        )

    def input_files(self, request_payload: Mapping[str, Any]) -> frozenset[str] | None:
        """The data files a run request's inputs name: each dataset version's manifest's
        `parquet_files` under its projections path (SPEC §4.4). None when a manifest cannot be
        read: two versions are then not known to share files."""
        datasets = request_payload.get("catalog", {}).get("datasets", {})
        files: set[str] = set()
        try:
            for entry in datasets.values():
                uri = f"s3://{entry['bucket']}/{str(entry['manifestPath']).lstrip('/')}"
                listed = self._reader.read_json(uri).get("parquet_files")
                if not isinstance(listed, list):
                    return None
                files |= {f"{entry['projectionsPath']}/{name}" for name in listed}
        except (OutputObjectMissing, OutputUnavailable, KeyError, AttributeError):
            return None
        return frozenset(files)


def manifest_candidates(reported: str, default_bucket: str) -> list[str]:
    """The `s3://` URIs a reported manifest path may mean, the likelier first.

    `s3://…` is itself. A path without a scheme is read from the output bucket; when its first
    segment names a bucket (`bucket/prefix/…/manifest.json`, as the dp-worker reports it) it is
    read from that bucket too, first if it is the output bucket, else as a second guess.
    """
    if reported.startswith("s3://"):
        return [reported]
    path = reported.lstrip("/")
    first, slash, rest = path.partition("/")
    in_default = f"s3://{default_bucket}/{path}"
    if not slash or not rest:
        return [in_default]
    if first == default_bucket:
        return [f"s3://{path}"]
    return [in_default, f"s3://{path}"]


def data_files(manifest: Mapping[str, Any], uri: str) -> list[OutputFile]:
    """The data files a manifest names, in order, each with its format; OutputUnavailable if
    the manifest follows neither layout."""
    files = manifest.get("files")
    if files is not None:
        if not isinstance(files, list) or not all(
            isinstance(f, str) and f.startswith("s3://") for f in files
        ):
            raise OutputUnavailable(f"manifest {uri}: `files` is not a list of s3:// URIs")
        return [OutputFile(f, _EXTENSIONS.get(_extension(f), OutputFormat.PARQUET)) for f in files]
    outputs = manifest.get("outputs")
    names = outputs.get("files") if isinstance(outputs, Mapping) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise OutputUnavailable(
            f"manifest {uri}: names no data: neither `files` (s3:// URIs, SPEC §4.4) "
            "nor `outputs.files` (names relative to the manifest)"
        )
    folder = uri.rsplit("/", 1)[0]
    return [_relative_file(folder, name, uri) for name in names]


def _relative_file(folder: str, name: str, uri: str) -> OutputFile:
    target = name if name.startswith("s3://") else f"{folder}/{name.lstrip('/')}"
    fmt = _EXTENSIONS.get(_extension(name))
    if fmt is None:
        known = ", ".join(_EXTENSIONS)
        raise OutputUnavailable(f"manifest {uri}: {name!r} is not a known format ({known})")
    return OutputFile(target, fmt)


def _extension(name: str) -> str:
    return posixpath.splitext(name.split("?", 1)[0])[1].lower()


def _format_of(files: list[OutputFile]) -> OutputFormat:
    """The output's format; a manifest mixing formats is shown as its first file's."""
    return files[0].format if files else OutputFormat.PARQUET
