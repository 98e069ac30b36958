"""Reading what a succeeded run wrote (SPEC §4.4, §6.3 `GET /runs/{id}/output`).

The run's `outputManifest` (reported in its completed event) names the manifest in S3; the
manifest's `files` name the Parquet data. The values are returned a page at a time, with the
manifest's metadata. A run that did not succeed, or whose worker reported no manifest, has no
output (NotFound); a manifest that does not exist is no output either (a simulated worker
reports one that was never written). Any other failure to read S3 is OutputUnavailable, which
the API reports as 502: the fault is upstream, not the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from metrics_orchestrator.application.pagination import check_page_size
from metrics_orchestrator.domain.errors import FieldError, NotFound, ValidationError
from metrics_orchestrator.domain.model import MetricRun, RunStatus

MAX_OUTPUT_PAGE = 5_000


class OutputUnavailable(Exception):
    """S3 (or the object in it) could not be read; the message says which and why."""


class OutputObjectMissing(Exception):
    """The object does not exist."""


@dataclass(frozen=True, slots=True)
class OutputPoint:
    obs_time: datetime
    value: float | None


class OutputReader(Protocol):
    def read_json(self, uri: str) -> dict[str, Any]:
        """The JSON object at an `s3://` URI. OutputObjectMissing if absent; OutputUnavailable
        if it cannot be read or is not a JSON object."""
        ...

    def read_points(self, uri: str) -> list[OutputPoint]:
        """The (obs_time, value) rows of a Parquet file, in file order; errors as read_json."""
        ...


class RunLookup(Protocol):
    def __call__(self, run_id: UUID) -> MetricRun:
        """The run; NotFound if unknown."""
        ...


@dataclass(frozen=True, slots=True)
class RunOutput:
    run_id: UUID
    manifest_uri: str
    manifest: Mapping[str, Any]
    total: int
    offset: int
    points: Sequence[OutputPoint]

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.points)
        return end if end < self.total else None


class OutputService:
    def __init__(self, find_run: RunLookup, reader: OutputReader, default_bucket: str) -> None:
        """`default_bucket` resolves a manifest path a worker reported without `s3://`."""
        self._find_run = find_run
        self._reader = reader
        self._default_bucket = default_bucket

    def read(self, run_id: UUID, *, offset: int = 0, limit: int = 500) -> RunOutput:
        if offset < 0:
            raise ValidationError([FieldError("cursor", "must not point before the start")])
        check_page_size(limit, MAX_OUTPUT_PAGE)
        run = self._find_run(run_id)
        if run.status is not RunStatus.SUCCEEDED or not run.output_manifest:
            raise NotFound(
                f"run {run_id} has no output (status {run.status}"
                + ("" if run.output_manifest else ", no output manifest reported")
                + ")"
            )
        uri = self.manifest_uri(run.output_manifest)
        try:
            manifest = self._reader.read_json(uri)
            points = [p for file in _files(manifest, uri) for p in self._reader.read_points(file)]
        except OutputObjectMissing as exc:
            raise NotFound(f"run {run_id} has no output: {exc} does not exist") from exc
        return RunOutput(
            run_id=run_id,
            manifest_uri=uri,
            manifest=manifest,
            total=len(points),
            offset=offset,
            points=points[offset : offset + limit],
        )

    def latest(self, run_id: UUID) -> tuple[int, OutputPoint | None]:
        """(row count, the latest point that has a value) of a run's output, for summaries."""
        output = self.read(run_id, limit=MAX_OUTPUT_PAGE)
        points = list(output.points)
        while output.next_offset is not None:
            output = self.read(run_id, offset=output.next_offset, limit=MAX_OUTPUT_PAGE)
            points += output.points
        present = [p for p in points if p.value is not None]
        return output.total, max(present, key=lambda p: p.obs_time) if present else None

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

    def manifest_uri(self, reported: str) -> str:
        if reported.startswith("s3://"):
            return reported
        return f"s3://{self._default_bucket}/{reported.lstrip('/')}"


def _files(manifest: Mapping[str, Any], uri: str) -> list[str]:
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, str) and f.startswith("s3://") for f in files
    ):
        raise OutputUnavailable(f"manifest {uri}: `files` is not a list of s3:// URIs")
    return files
