"""What a run reads (SPEC §4.3, §8): exactly the files its request's catalog names for the series
its expression needs, decoded to (obs_time, value) frames per series.

A projection dataset's version manifest lists `parquet_files` under `{SERIES_CODE}/`; a metric's
output lists `files`, the full `s3://` URIs of its data, each under the output's base path. A
file or manifest that does not exist fails the run for good (`retryable: false`); one that
cannot be read now (S3 unavailable) fails it for a retry.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from metrics_orchestrator.domain.messages.run_requested import DatasetVersion, RunRequest
from metrics_orchestrator.domain.s3_locations import S3Location, parse_s3_uri
from metrics_orchestrator.worker.evaluator import OBS_TIME, VALUE, empty_series
from metrics_orchestrator.worker.failures import INPUT_READ_ERROR, Abandon, RunFailed
from metrics_orchestrator.worker.ports import ObjectNotFound, ObjectStore
from metrics_orchestrator.worker.run_log import RunLog


@dataclass(frozen=True, slots=True)
class _InputFile:
    """A file to read, the series (code) its points belong to, and how errors name it."""

    series: str
    location: S3Location
    what: str = "projection file"


class InputReader:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def read(
        self,
        request: RunRequest,
        run_log: RunLog,
        progress: Callable[[float], None],
        stop: threading.Event,
    ) -> dict[str, pl.LazyFrame]:
        """Every series the expression names, as a frame; `progress` is told the share of the
        files read; Abandon when `stop` is set between two files."""
        plan = []
        for dataset in request.datasets.values():
            if request.series_of(dataset.dataset_id):
                files = self._files_to_read(request, dataset)
                plural = "" if len(files) == 1 else "s"
                run_log.line(
                    "INFO",
                    f"input {dataset.dataset_id}: {len(files)} file{plural} to read",
                    manifest=dataset.manifest.uri,
                )
                plan += files
        parts: dict[str, list[pl.DataFrame]] = {
            code: [] for code in request.expression.series_codes()
        }
        for done, file in enumerate(plan, 1):
            if stop.is_set():
                raise Abandon
            frame = self._read_parquet(file)
            run_log.line("INFO", f"read {file.location.uri}", series=file.series, rows=frame.height)
            parts[file.series].append(frame)
            progress(done / len(plan))
        progress(1.0)
        return {
            code: pl.concat(frames, how="vertical_relaxed").lazy() if frames else empty_series()
            for code, frames in parts.items()
        }

    def _files_to_read(self, request: RunRequest, dataset: DatasetVersion) -> list[_InputFile]:
        """Exactly the files the request's catalog names for the series this run needs."""
        needed = [
            code
            for code in request.series_of(dataset.dataset_id)
            if code in request.expression.series_codes()
        ]
        if dataset.is_metric_output:
            files = self._output_files(dataset)
            what = f"output file of {dataset.dataset_id}"
            return [_InputFile(code, file, what) for code in needed for file in files]
        return self._projection_files(dataset, needed)

    def _projection_files(self, dataset: DatasetVersion, needed: list[str]) -> list[_InputFile]:
        """The version manifest's `parquet_files` under `{SERIES_CODE}/` of each needed series."""
        manifest = self._read_manifest(dataset)
        files = manifest.get("parquet_files")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise RunFailed(
                INPUT_READ_ERROR, f"manifest {dataset.manifest.uri}: parquet_files is not a list"
            )
        listed = manifest.get("series_codes")
        wanted = []
        for code in needed:
            mine = [f for f in files if _relative(f, dataset).split("/", 1)[0] == code]
            # No file: an empty series only if the manifest lists it; otherwise it is missing.
            if not mine and not (isinstance(listed, list) and code in listed):
                raise RunFailed(
                    INPUT_READ_ERROR,
                    f"manifest {dataset.manifest.uri} (dataset {dataset.dataset_id}) "
                    f"has no series {code}",
                    retryable=False,
                )
            wanted += [
                _InputFile(code, dataset.projections.child(_relative(f, dataset))) for f in mine
            ]
        return wanted

    def _output_files(self, dataset: DatasetVersion) -> list[S3Location]:
        """Every file an upstream run's output manifest lists (SPEC §8): its series is their
        union. Each must lie under that output's base path (`projectionsPath`)."""
        manifest = self._read_manifest(dataset)
        files = manifest.get("files")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise RunFailed(
                INPUT_READ_ERROR,
                f"output manifest of {dataset.dataset_id} {dataset.manifest.uri}: "
                "files is not a list of s3:// URIs",
                retryable=False,
            )
        return [_output_file(file, dataset) for file in files]

    def _read_manifest(self, dataset: DatasetVersion) -> dict[str, Any]:
        output = dataset.is_metric_output
        kind = "output manifest of" if output else "manifest of dataset"
        raw = self._get(dataset.manifest, what=f"{kind} {dataset.dataset_id}")
        named = (
            f"{kind} {dataset.dataset_id} {dataset.manifest.uri}"
            if output
            else (f"manifest {dataset.manifest.uri}")
        )
        # An upstream run's output is written once and never changes, so a bad one stays bad;
        # a corrupt projection manifest stays retryable, as it always was.
        retryable = not output
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # a manifest may be larger than any event
            raise RunFailed(
                INPUT_READ_ERROR, f"{named} is not JSON: {exc}", retryable=retryable
            ) from exc
        if not isinstance(document, dict):
            raise RunFailed(INPUT_READ_ERROR, f"{named} is not an object", retryable=retryable)
        return document

    def _read_parquet(self, file: _InputFile) -> pl.DataFrame:
        raw = self._get(file.location, what=file.what)
        try:
            # Column pruning: only the two columns §3.1 uses are decoded.
            return pl.read_parquet(io.BytesIO(raw), columns=[OBS_TIME, VALUE])
        except Exception as exc:  # polars raises several families for a bad file
            raise RunFailed(
                INPUT_READ_ERROR, f"{file.location.uri} is not a readable {file.what}: {exc}"
            ) from exc

    def _get(self, location: S3Location, *, what: str) -> bytes:
        try:
            return self._store.get(location)
        except ObjectNotFound as exc:
            raise RunFailed(
                INPUT_READ_ERROR, f"{what} {location.uri} does not exist", retryable=False
            ) from exc
        except Exception as exc:
            raise RunFailed(INPUT_READ_ERROR, f"{what} {location.uri}: {exc}") from exc


def _output_file(file: str, dataset: DatasetVersion) -> S3Location:
    """An output manifest's file as a location, refused (not retryable) unless it is a full
    `s3://` URI under the output's base path: a run reads only the output the request names."""
    base = dataset.projections.child("")
    try:
        location = parse_s3_uri(file)
    except ValueError:
        location = None
    inside = (
        location is not None
        and location.bucket == base.bucket
        and location.key.startswith(base.key)
        and len(location.key) > len(base.key)
        # S3 keeps `..` literally but HTTP clients may resolve it: refused either way.
        and not {".", ".."} & set(location.key.split("/"))
    )
    if location is None or not inside:
        raise RunFailed(
            INPUT_READ_ERROR,
            f"output manifest of {dataset.dataset_id} {dataset.manifest.uri} lists "
            f"{_shown(file)}, which is not under the output's base path {base.uri}",
            retryable=False,
        )
    return location


def _shown(text: str, limit: int = 200) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"


def _relative(file: str, dataset: DatasetVersion) -> str:
    """A manifest's file path relative to `projectionsPath` (also accepting full keys/URIs)."""
    path = file
    full = dataset.projections.uri.rstrip("/") + "/"
    if path.startswith(full):
        return path[len(full) :]
    key_prefix = dataset.projections.key.rstrip("/") + "/"
    if path.startswith(key_prefix):
        return path[len(key_prefix) :]
    return path.lstrip("/")
