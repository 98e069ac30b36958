"""The worker's use case: answer one run request (SPEC §4.2-§4.4, §3.1).

    marker present?  -> send its completed event again, done (a redelivery is not recomputed)
    claim the run    -> another delivery has it: drop this copy or let it wait (claims.py)
    started
    read inputs      -> FAILURE `INPUT_READ_ERROR: …` if a manifest or file cannot be read
                        (inputs.py)
    evaluate         -> FAILURE `EXPRESSION_EVAL_ERROR: …` if the expression cannot be computed
    write output     -> FAILURE `OUTPUT_WRITE_ERROR: …` if S3 refuses the output
    write the log    -> `{basePath}runs/{runId}-{attempt}.log` (run_log.py); a refusal is no failure
    completed        (SUCCESS with rowCount, versionTs, outputManifest)

A FAILURE that would fail the same way again (an input that does not exist, a series the
manifest does not have, an invalid request) says `retryable: false` (SPEC §4.2); a timeout or
an S3 outage does not.

Heartbeats with the current progress go out every `heartbeat_interval` seconds from a
background thread for as long as the run is in hand; each tick also calls `keep_alive` (the
queue adapter extends the message's visibility there) and writes the run's log so far.

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
from metrics_orchestrator.domain.messages.run_requested import InvalidRequest, RunRequest
from metrics_orchestrator.domain.messages.run_started import build_run_started
from metrics_orchestrator.domain.run_files import RUN_LOG_TYPE
from metrics_orchestrator.worker.claims import Claim, Claims, Verdict, advance_current
from metrics_orchestrator.worker.evaluator import OBS_TIME, EvaluationError, evaluate
from metrics_orchestrator.worker.failures import (
    EXPRESSION_EVAL_ERROR,
    OUTPUT_WRITE_ERROR,
    WORKER_ERROR,
    Abandon,
    RunFailed,
)
from metrics_orchestrator.worker.inputs import InputReader
from metrics_orchestrator.worker.outputs import (
    JSON_TYPE,
    PARQUET_TYPE,
    claim_location,
    current_manifest_location,
    data_location,
    failure_event,
    json_bytes,
    log_location,
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
from metrics_orchestrator.worker.run_log import RunLog

log = structlog.get_logger(__name__)

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


class _ClaimTakenOver(Exception):
    """Another delivery took the run's claim over: it writes and reports, not this one."""


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    heartbeat_interval: float = 10.0
    # Hold every run at least this long (demos, tests): progress then shows in heartbeats.
    min_run_seconds: float = 0.0


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
        self._inputs = InputReader(store)

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
        return self._run(request, claim, stop, keep_alive)

    def _run(
        self,
        request: RunRequest,
        claim: Claim,
        stop: threading.Event,
        keep_alive: Callable[[], None],
    ) -> ComputeOutcome:
        """Compute a run whose claim this delivery holds; its log goes beside its output."""
        run_log = RunLog(log, self._clock, run_id=request.run_id, attempt=request.attempt)
        self._publisher.publish(build_run_started(request.run_id, self._clock.now()))
        run_log.info(log_events.ON_RUN_STARTED, "run started", metric_code=request.metric_code)
        run_log.line(
            "INFO",
            f"expression ({request.expression.expression_type.value})",
            canonical=request.expression.canonical,
        )
        progress = _Progress()
        with self._heartbeats(request, progress, keep_alive, run_log):
            try:
                event = self._compute(request, claim, progress, stop, run_log)
            except _ClaimTakenOver:
                # Not in the run's log: the delivery that took the claim over writes that.
                log.warning(
                    log_events.ON_DUPLICATE_EVENT,
                    message="the run's claim was taken over by a redelivery of its request; "
                    "this delivery stops without writing or reporting",
                    run_id=request.run_id,
                    attempt=request.attempt,
                )
                return ComputeOutcome.DEFERRED
            except Abandon:
                run_log.warning(
                    log_events.ON_RUN_ABANDONED,
                    "stop requested: run abandoned before writing its output "
                    "(no completed event; the control plane times it out and retries)",
                )
                self._write_log(request, run_log.render())
                return ComputeOutcome.ABANDONED
            except RunFailed as failed:
                event = failure_event(
                    request.run_id, request.metric_code, failed.error, retryable=failed.retryable
                )
            except Exception as exc:  # a bug must fail the run, not loop it through the queue
                run_log.exception(
                    log_events.ON_CONSUMER_ERROR,
                    "unexpected error computing the run; reported as a FAILURE",
                )
                error = f"{WORKER_ERROR}: {type(exc).__name__}: {exc}"
                event = failure_event(request.run_id, request.metric_code, error)
        self._finish(request, event, run_log)
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
        self,
        request: RunRequest,
        claim: Claim,
        progress: _Progress,
        stop: threading.Event,
        run_log: RunLog,
    ) -> dict[str, Any]:
        series = self._inputs.read(
            request, run_log, lambda share: progress.set(_READ_DONE * share), stop
        )
        self._pace(progress, stop)
        try:
            frame = evaluate(request.expression, series)
        except (EvaluationError, pl.exceptions.PolarsError) as exc:
            raise RunFailed(EXPRESSION_EVAL_ERROR, str(exc)) from exc
        run_log.line("INFO", "expression evaluated", rows=frame.height)
        progress.set(_EVALUATED)
        if stop.is_set():
            raise Abandon
        event = self._write_output(request, claim, frame)
        run_log.line("INFO", "output written", manifest=event["outputManifest"])
        return event

    def _pace(self, progress: _Progress, stop: threading.Event) -> None:
        total = self._options.min_run_seconds
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < total:
            progress.set(_READ_DONE + (_PACED - _READ_DONE) * elapsed / total)
            if stop.wait(min(0.1, total - elapsed)):
                raise Abandon
        if stop.is_set():
            raise Abandon

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
        """A completion no log goes with (an invalid request, a redelivery, no claim)."""
        self._publisher.publish(event)
        succeeded = event.get("status") == "SUCCESS"
        # A failed run is something to look at: WARNING, not INFO (issue 19, item 10).
        (log.info if succeeded else log.warning)(
            log_events.ON_RUN_COMPLETED, run_id=run_id, **_completion(event)
        )

    def _finish(self, request: RunRequest, event: dict[str, Any], run_log: RunLog) -> None:
        """The run's last log line, its log beside its output, then its completed event: the
        control plane that hears of the completion finds the whole log."""
        fields = _completion(event)
        message = fields.pop("message")
        (run_log.info if event.get("status") == "SUCCESS" else run_log.warning)(
            log_events.ON_RUN_COMPLETED, message, **fields
        )
        self._write_log(request, run_log.render())
        self._publisher.publish(event)

    def _write_log(self, request: RunRequest, body: bytes) -> bool:
        """Write the run's log (`RunLog.render()`); False if S3 refused it (a log is not worth
        failing a run for)."""
        try:
            self._store.put(log_location(request), body, RUN_LOG_TYPE)
        except Exception as exc:
            log.warning(
                log_events.ON_CONSUMER_ERROR,
                message="could not write the run's log; the run goes on",
                run_id=request.run_id,
                attempt=request.attempt,
                error=str(exc),
            )
            return False
        return True

    @contextmanager
    def _heartbeats(
        self,
        request: RunRequest,
        progress: _Progress,
        keep_alive: Callable[[], None],
        run_log: RunLog,
    ) -> Iterator[None]:
        """Every heartbeat_interval: keep the message, report progress, and write the run's log
        so far when it has grown (a running run's page shows it)."""
        done = threading.Event()
        run_id = request.run_id

        def beat() -> None:
            written = b""
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
                body = run_log.render()
                if body != written and self._write_log(request, body):
                    written = body

        thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def _completion(event: dict[str, Any]) -> dict[str, Any]:
    """What a completed event says, as log fields (`message` included)."""
    succeeded = event.get("status") == "SUCCESS"
    return {
        "message": "run completed" if succeeded else "run failed",
        "status": event.get("status"),
        "row_count": event.get("rowCount"),
        "error": event.get("error"),
        "retryable": event.get("retryable", True) if not succeeded else None,
    }
