"""The worker's use case: answer one run request (SPEC §4.2-§4.4, §3.1).

    marker present?  -> send its completed event again, done (a redelivery is not recomputed)
    claim the run    -> another delivery has it: drop this copy or let it wait (claims.py)
    started
    read inputs      -> FAILURE `INPUT_READ_ERROR: …` if a manifest or file cannot be read
    evaluate         -> FAILURE `EXPRESSION_EVAL_ERROR: …` if the expression cannot be computed
    write output     -> FAILURE `OUTPUT_WRITE_ERROR: …` if S3 refuses the output
    completed        (SUCCESS with rowCount, versionTs, outputManifest)

A FAILURE that would fail the same way again (an input that does not exist, a series the
manifest does not have, an invalid request) says `retryable: false` (SPEC §4.2); a timeout or
an S3 outage does not.

Heartbeats with the current progress go out every `heartbeat_interval` seconds from a
background thread for as long as the run is in hand; each tick also calls `keep_alive` (the
queue adapter extends the message's visibility there).

A stop request (SIGTERM) abandons a run at the next checkpoint before its output is written:
no completed event is sent, so the control plane's timeout and retry take over (or another
worker receives the message again). Once writing has begun the run is finished, since writing
and reporting take moments and an abandoned, half-written output would only be overwritten.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import polars as pl
import structlog

from metrics_orchestrator.domain import log_events
from metrics_orchestrator.domain.messages.run_completed import build_run_succeeded
from metrics_orchestrator.domain.messages.run_heartbeat import build_run_heartbeat
from metrics_orchestrator.domain.messages.run_requested import (
    DatasetVersion,
    InvalidRequest,
    RunRequest,
)
from metrics_orchestrator.domain.messages.run_started import build_run_started
from metrics_orchestrator.domain.s3_locations import S3Location, parse_s3_uri
from metrics_orchestrator.worker.claims import Claim, Claims, Verdict, advance_current
from metrics_orchestrator.worker.evaluator import (
    OBS_TIME,
    VALUE,
    EvaluationError,
    empty_series,
    evaluate,
)
from metrics_orchestrator.worker.outputs import (
    JSON_TYPE,
    PARQUET_TYPE,
    claim_location,
    current_manifest_location,
    data_location,
    failure_event,
    json_bytes,
    manifest_location,
    marker_location,
    output_manifest,
    version_ts,
)
from metrics_orchestrator.worker.ports import (
    Clock,
    FeedbackPublisher,
    ObjectNotFound,
    ObjectStore,
    WriteConflict,
)

log = structlog.get_logger(__name__)

INPUT_READ_ERROR = "INPUT_READ_ERROR"
EXPRESSION_EVAL_ERROR = "EXPRESSION_EVAL_ERROR"
OUTPUT_WRITE_ERROR = "OUTPUT_WRITE_ERROR"
WORKER_ERROR = "WORKER_ERROR"

# Progress milestones reported in heartbeats.
_READ_DONE = 0.6
_PACED = 0.8
_EVALUATED = 0.9


class ComputeOutcome(StrEnum):
    """What became of a delivery; the queue adapter deletes, keeps or releases its message."""

    COMPLETED = "completed"
    RESENT = "resent"  # a redelivery: the earlier completed event was sent again
    DUPLICATE = "duplicate"  # another delivery of the run has it: this copy is dropped
    DEFERRED = "deferred"  # the run's claim is another's: the message comes back later
    ABANDONED = "abandoned"


class _Abandon(Exception):
    """A stop was requested before the output was written."""


class _ClaimTakenOver(Exception):
    """Another delivery took the run's claim over: it writes and reports, not this one."""


class RunFailed(Exception):
    def __init__(self, kind: str, detail: str, *, retryable: bool = True) -> None:
        self.error = f"{kind}: {detail}"
        self.retryable = retryable
        super().__init__(self.error)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    heartbeat_interval: float = 10.0
    # Hold every run at least this long (demos, tests): progress then shows in heartbeats.
    min_run_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _InputFile:
    """A file to read, the series (code) its points belong to, and how errors name it."""

    series: str
    location: S3Location
    what: str = "projection file"


class _Progress:
    def __init__(self) -> None:
        self._value = 0.0
        self._lock = threading.Lock()

    def set(self, value: float) -> None:
        with self._lock:
            self._value = max(self._value, value)

    def get(self) -> float:
        with self._lock:
            return self._value


class RunRequestHandler:
    def __init__(
        self,
        store: ObjectStore,
        publisher: FeedbackPublisher,
        clock: Clock,
        options: WorkerOptions | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._options = options or WorkerOptions()
        self._claims = Claims(store, clock)

    def handle(
        self,
        request: RunRequest | InvalidRequest,
        stop: threading.Event,
        keep_alive: Callable[[], None] = lambda: None,
        delivery: str | None = None,
    ) -> ComputeOutcome:
        """Answer the request. Raises if a feedback event could not be published (the message
        must then stay in the queue). `delivery` identifies the queue message (its SQS
        MessageId, the same on every redelivery); without it this delivery is unique."""
        if isinstance(request, InvalidRequest):
            event = failure_event(
                request.run_id, request.metric_code, request.error, retryable=False
            )
            self._publish_completed(request.run_id, event)
            return ComputeOutcome.COMPLETED
        earlier = self._completed_before(request)
        if earlier is not None:
            log.info(
                log_events.ON_DUPLICATE_EVENT,
                message="run already completed (redelivery): completed event sent again",
                run_id=request.run_id,
                attempt=request.attempt,
            )
            self._publish_completed(request.run_id, earlier)
            return ComputeOutcome.RESENT
        try:
            claim = self._claims.acquire(request, delivery or f"unique-{uuid.uuid4()}")
        except Exception as exc:  # S3 unavailable: fail now (retried) rather than loop
            error = f"{OUTPUT_WRITE_ERROR}: cannot claim the run at {claim_location(request).uri}"
            event = failure_event(request.run_id, request.metric_code, f"{error}: {exc}")
            self._publish_completed(request.run_id, event)
            return ComputeOutcome.COMPLETED
        if not isinstance(claim, Claim):
            return self._claimed_elsewhere(request, claim)
        self._publisher.publish(build_run_started(request.run_id, self._clock.now()))
        log.info(
            log_events.ON_RUN_STARTED,
            message="run started",
            run_id=request.run_id,
            attempt=request.attempt,
            metric_code=request.metric_code,
        )
        progress = _Progress()
        with self._heartbeats(request.run_id, progress, keep_alive):
            try:
                event = self._compute(request, claim, progress, stop)
            except _ClaimTakenOver:
                log.warning(
                    log_events.ON_DUPLICATE_EVENT,
                    message="the run's claim was taken over by a redelivery of its request; "
                    "this delivery stops without writing or reporting",
                    run_id=request.run_id,
                    attempt=request.attempt,
                )
                return ComputeOutcome.DEFERRED
            except _Abandon:
                log.warning(
                    log_events.ON_RUN_ABANDONED,
                    message="stop requested: run abandoned before writing its output "
                    "(no completed event; the control plane times it out and retries)",
                    run_id=request.run_id,
                    attempt=request.attempt,
                )
                return ComputeOutcome.ABANDONED
            except RunFailed as failed:
                event = failure_event(
                    request.run_id, request.metric_code, failed.error, retryable=failed.retryable
                )
            except Exception as exc:  # a bug must fail the run, not loop it through the queue
                log.exception(
                    log_events.ON_CONSUMER_ERROR,
                    message="unexpected error computing the run; reported as a FAILURE",
                    run_id=request.run_id,
                )
                error = f"{WORKER_ERROR}: {type(exc).__name__}: {exc}"
                event = failure_event(request.run_id, request.metric_code, error)
        self._publish_completed(request.run_id, event)
        return ComputeOutcome.COMPLETED

    def _claimed_elsewhere(self, request: RunRequest, verdict: Verdict) -> ComputeOutcome:
        log.info(
            log_events.ON_DUPLICATE_EVENT,
            message="another delivery of this run request holds its claim; "
            + (
                "this copy is dropped"
                if verdict is Verdict.IN_HAND_ELSEWHERE
                else "this message comes back after its visibility timeout"
            ),
            run_id=request.run_id,
            attempt=request.attempt,
        )
        return (
            ComputeOutcome.DUPLICATE
            if verdict is Verdict.IN_HAND_ELSEWHERE
            else ComputeOutcome.DEFERRED
        )

    # -- the computation --------------------------------------------------------------------

    def _compute(
        self, request: RunRequest, claim: Claim, progress: _Progress, stop: threading.Event
    ) -> dict[str, Any]:
        series = self._read_inputs(request, progress, stop)
        self._pace(progress, stop)
        try:
            frame = evaluate(request.expression, series)
        except (EvaluationError, pl.exceptions.PolarsError) as exc:
            raise RunFailed(EXPRESSION_EVAL_ERROR, str(exc)) from exc
        progress.set(_EVALUATED)
        if stop.is_set():
            raise _Abandon
        return self._write_output(request, claim, frame)

    def _read_inputs(
        self, request: RunRequest, progress: _Progress, stop: threading.Event
    ) -> dict[str, pl.LazyFrame]:
        plan = [
            file
            for dataset in request.datasets.values()
            if request.series_of(dataset.dataset_id)
            for file in self._files_to_read(request, dataset)
        ]
        parts: dict[str, list[pl.DataFrame]] = {
            code: [] for code in request.expression.series_codes()
        }
        for done, file in enumerate(plan, 1):
            if stop.is_set():
                raise _Abandon
            parts[file.series].append(self._read_parquet(file))
            progress.set(_READ_DONE * done / len(plan))
        progress.set(_READ_DONE)
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

    def _pace(self, progress: _Progress, stop: threading.Event) -> None:
        total = self._options.min_run_seconds
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < total:
            progress.set(_READ_DONE + (_PACED - _READ_DONE) * elapsed / total)
            if stop.wait(min(0.1, total - elapsed)):
                raise _Abandon
        if stop.is_set():
            raise _Abandon

    def _write_output(
        self, request: RunRequest, claim: Claim, frame: pl.DataFrame
    ) -> dict[str, Any]:
        now = self._clock.now()
        version = version_ts(now)
        times = frame[OBS_TIME]
        manifest = output_manifest(
            request,
            version=version,
            row_count=frame.height,
            created_at=now,
            date_range=(times.min(), times.max()) if frame.height else (None, None),  # type: ignore[arg-type]
        )
        location = manifest_location(request, version)
        event = build_run_succeeded(
            request.run_id,
            request.metric_code,
            version_ts=version,
            output_manifest=location.uri,
            row_count=frame.height,
        )
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        try:
            self._claims.begin_writing(request, claim)
        except WriteConflict as exc:
            raise _ClaimTakenOver from exc
        except Exception as exc:
            raise RunFailed(OUTPUT_WRITE_ERROR, f"{request.output_base.uri}: {exc}") from exc
        try:
            self._store.put(data_location(request, version), buffer.getvalue(), PARQUET_TYPE)
            self._store.put(location, json_bytes(manifest), JSON_TYPE)
            advance_current(
                self._store, current_manifest_location(request), json_bytes(manifest), version
            )
            # Last: the marker exists only once the whole output does.
            self._store.put(marker_location(request), json_bytes(event), JSON_TYPE)
        except Exception as exc:
            raise RunFailed(OUTPUT_WRITE_ERROR, f"{request.output_base.uri}: {exc}") from exc
        return event

    # -- feedback ---------------------------------------------------------------------------

    def _completed_before(self, request: RunRequest) -> dict[str, Any] | None:
        try:
            raw = self._store.get(marker_location(request))
        except ObjectNotFound:
            return None
        except Exception as exc:
            # Unknown: compute again; the output is rewritten under a new version.
            log.warning(
                log_events.ON_CONSUMER_ERROR,
                message="could not read the run's marker; computing",
                run_id=request.run_id,
                error=str(exc),
            )
            return None
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        return event if isinstance(event, dict) else None

    def _publish_completed(self, run_id: str, event: dict[str, Any]) -> None:
        self._publisher.publish(event)
        succeeded = event.get("status") == "SUCCESS"
        # A failed run is something to look at: WARNING, not INFO (issue 19, item 10).
        (log.info if succeeded else log.warning)(
            log_events.ON_RUN_COMPLETED,
            message="run completed" if succeeded else "run failed",
            run_id=run_id,
            status=event.get("status"),
            row_count=event.get("rowCount"),
            error=event.get("error"),
            retryable=event.get("retryable", True) if not succeeded else None,
        )

    @contextmanager
    def _heartbeats(
        self, run_id: str, progress: _Progress, keep_alive: Callable[[], None]
    ) -> Iterator[None]:
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self._options.heartbeat_interval):
                try:
                    keep_alive()
                    self._publisher.publish(
                        build_run_heartbeat(run_id, progress.get(), self._clock.now())
                    )
                except Exception as exc:  # a lost heartbeat is not worth losing the run
                    log.warning(
                        log_events.ON_CONSUMER_ERROR,
                        message="heartbeat failed; the run goes on",
                        run_id=run_id,
                        error=str(exc),
                    )

        thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


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
