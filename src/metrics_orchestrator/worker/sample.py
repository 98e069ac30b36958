"""A bundled *sample worker* for demos and tests. It SIMULATES metric computations.

It plays the external worker of SPEC §1: it consumes `metric_run_requested` messages (SPEC §4.3,
raw or in an SNS envelope) from a worker queue and answers on the feedback queue with the events
of SPEC §4.2 — `metric_run_started`, a few `metric_run_heartbeat` with rising progress, then
`metric_run_completed`. Nothing is computed and nothing is written to S3: the version, output
manifest (always under `.../simulated/...`) and row count it reports are made up.

A `behaviour` callback chooses, per request, whether the simulated run succeeds, fails, goes
silent after `started` (a worker that died: the service's sweeper will time the run out), or is
passed on untouched to another queue (`pass_on`): the demo puts the sample worker in front of
the reference worker as a fault injector, so the runs it does not spoil are really computed.

The messages of one received batch advance in lockstep (all started, then each heartbeat round,
then all completed), so a batch of ten runs takes as long as one. A request already answered
(same `runId` and `attempt`, e.g. republished after a dispatcher crash) is acknowledged again
without a second answer: this is how workers absorb at-least-once delivery.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog

from metrics_orchestrator.domain import log_events
from metrics_orchestrator.domain.messages.run_completed import (
    RUN_COMPLETED,
    build_run_failed,
    build_run_succeeded,
)
from metrics_orchestrator.domain.messages.run_heartbeat import RUN_HEARTBEAT, build_run_heartbeat
from metrics_orchestrator.domain.messages.run_requested import (
    Unanswerable,
    read_request_document,
)
from metrics_orchestrator.domain.messages.run_started import RUN_STARTED, build_run_started
from metrics_orchestrator.domain.messages.shared import utc_text
from metrics_orchestrator.infrastructure.aws.sqs import SqsConsumer

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = structlog.get_logger(__name__)

SIMULATED_FAILURE = "simulated failure (the sample worker was told to fail this run)"
# How many answered (runId, attempt) pairs are remembered to absorb redeliveries.
REMEMBERED_REQUESTS = 10_000


class SimulatedOutcome(StrEnum):
    SUCCEED = "succeed"
    FAIL = "fail"
    GO_SILENT = "go_silent"
    PASS_ON = "pass_on"


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What the simulated run of one request does."""

    outcome: SimulatedOutcome = SimulatedOutcome.SUCCEED
    error: str = SIMULATED_FAILURE

    @classmethod
    def succeed(cls) -> WorkerPlan:
        return cls(SimulatedOutcome.SUCCEED)

    @classmethod
    def fail(cls, error: str = SIMULATED_FAILURE) -> WorkerPlan:
        return cls(SimulatedOutcome.FAIL, error)

    @classmethod
    def go_silent(cls) -> WorkerPlan:
        """Send `started`, then nothing: the run looks like its worker died."""
        return cls(SimulatedOutcome.GO_SILENT)

    @classmethod
    def pass_on(cls) -> WorkerPlan:
        """Answer nothing; hand the request, as received, to the `pass_on` sender."""
        return cls(SimulatedOutcome.PASS_ON)


Behaviour = Callable[[dict[str, Any]], WorkerPlan]
FeedbackSender = Callable[[str], None]
FeedbackObserver = Callable[[dict[str, Any]], None]


def always_succeed(_request: dict[str, Any]) -> WorkerPlan:
    return WorkerPlan.succeed()


@dataclass
class _Job:
    request: dict[str, Any]
    plan: WorkerPlan

    @property
    def run_id(self) -> str:
        return str(self.request["runId"])

    @property
    def key(self) -> tuple[str, int]:
        attempt = self.request.get("attempt")
        return (self.run_id, attempt if isinstance(attempt, int) else 1)


class SampleWorker:
    """Answers run requests with simulated feedback. See the module docstring."""

    def __init__(
        self,
        sqs_client: SQSClient,
        worker_queue_url: str,
        feedback_queue_url: str,
        *,
        behaviour: Behaviour | None = None,
        heartbeats: int = 2,
        step_seconds: float = 0.05,
        wait_seconds: int = 1,
        send: FeedbackSender | None = None,
        on_feedback: FeedbackObserver | None = None,
        now: Callable[[], datetime] | None = None,
        pass_on: FeedbackSender | None = None,
    ) -> None:
        """`send` replaces SendMessage to `feedback_queue_url` (e.g. to publish to an SNS
        topic); `on_feedback` sees every feedback event sent (e.g. to show progress);
        `pass_on` receives the body of every request whose plan is `WorkerPlan.pass_on()`."""
        if heartbeats < 0:
            raise ValueError("heartbeats must be >= 0")
        # The package's one consumer loop: a receive is answered together, then deleted.
        self._consumer = SqsConsumer(
            sqs_client,
            worker_queue_url,
            batch_handler=self._answer,
            wait_seconds=wait_seconds,
            name="sample-worker",
        )
        self._answered_count = 0
        self._sqs = sqs_client
        self._worker_queue_url = worker_queue_url
        self._feedback_queue_url = feedback_queue_url
        self._behaviour = behaviour or always_succeed
        self._heartbeats = heartbeats
        self._step_seconds = step_seconds
        self._send = send or self._send_to_feedback_queue
        self._on_feedback = on_feedback
        self._now = now or (lambda: datetime.now(UTC))
        self._pass_on = pass_on
        self._answered: OrderedDict[tuple[str, int], None] = OrderedDict()

    def run_forever(self, stop: threading.Event) -> None:
        """Answer requests until `stop` is set; a received batch is always finished first."""
        log.info(
            log_events.ON_STARTUP,
            message="sample worker started: it SIMULATES metric computations (no real output)",
            worker_queue_url=self._worker_queue_url,
        )
        self._consumer.run_forever(stop)

    def poll_once(self) -> int:
        """Receive one batch and answer it; the number of run requests answered."""
        before = self._answered_count
        self._consumer.poll_once()
        return self._answered_count - before

    def _answer(self, messages: Sequence[tuple[str, str]]) -> None:
        """Answer one receive; raises to leave all of it for redelivery."""
        jobs: dict[tuple[str, int], _Job] = {}
        for body, message_id in messages:
            job = self._job_for(body, message_id)
            if job is not None:
                jobs.setdefault(job.key, job)
        self._simulate(list(jobs.values()))
        # Remembered only once answered: a batch that failed half-way is answered again.
        for key in jobs:
            self._remember(key)
        self._answered_count += len(jobs)

    def _job_for(self, body: str, message_id: str) -> _Job | None:
        request = read_run_request(body)
        if request is None:
            log.warning(
                log_events.ON_CONSUMER_ERROR,
                message="sample worker: not a run request; dropped",
                message_id=message_id,
            )
            return None
        job = _Job(request, WorkerPlan.succeed())
        if job.key in self._answered:
            log.info(
                log_events.ON_DUPLICATE_EVENT,
                message="sample worker: request already answered (redelivery); acknowledged",
                run_id=job.run_id,
                attempt=job.key[1],
            )
            return None
        return _Job(request, self._behaviour(request))

    def _remember(self, key: tuple[str, int]) -> None:
        self._answered[key] = None
        while len(self._answered) > REMEMBERED_REQUESTS:
            self._answered.popitem(last=False)

    def _simulate(self, jobs: list[_Job]) -> None:
        passed = [job for job in jobs if job.plan.outcome is SimulatedOutcome.PASS_ON]
        for job in passed:
            self._hand_over(job)
        jobs = [job for job in jobs if job.plan.outcome is not SimulatedOutcome.PASS_ON]
        if not jobs:
            return
        for job in jobs:
            self._emit(job, build_run_started(job.run_id, self._now()))
        for beat in range(1, self._heartbeats + 1):
            self._pause()
            progress = round(beat / (self._heartbeats + 1), 4)
            for job in jobs:
                if job.plan.outcome is not SimulatedOutcome.GO_SILENT:
                    self._emit(job, build_run_heartbeat(job.run_id, progress, self._now()))
        self._pause()
        for job in jobs:
            if job.plan.outcome is SimulatedOutcome.GO_SILENT:
                log.info(
                    log_events.ON_RUN_HEARTBEAT,
                    message="sample worker: going silent on this run, as told (simulated)",
                    run_id=job.run_id,
                )
            else:
                self._emit(job, completed_event(job.request, job.plan, self._now()))

    def _hand_over(self, job: _Job) -> None:
        if self._pass_on is None:
            raise ValueError("a plan passes a request on, but the worker has no pass_on sender")
        self._pass_on(json.dumps(job.request))
        log.info(
            log_events.ON_RUN_DISPATCHED,
            message="sample worker: request passed on untouched, as told",
            run_id=job.run_id,
            metric_code=job.request.get("metricCode"),
        )

    def _pause(self) -> None:
        if self._step_seconds > 0:
            time.sleep(self._step_seconds)

    def _emit(self, job: _Job, event: dict[str, Any]) -> None:
        self._send(json.dumps(event))
        log.info(
            _LOG_EVENT_BY_TYPE[event["type"]],
            message=f"sample worker (simulated): sent {event['type']}",
            run_id=job.run_id,
            metric_code=job.request.get("metricCode"),
            progress=event.get("progress"),
            status=event.get("status"),
        )
        if self._on_feedback is not None:
            self._on_feedback(event)

    def _send_to_feedback_queue(self, body: str) -> None:
        self._sqs.send_message(QueueUrl=self._feedback_queue_url, MessageBody=body)


_LOG_EVENT_BY_TYPE = {
    RUN_STARTED: log_events.ON_RUN_STARTED,
    RUN_HEARTBEAT: log_events.ON_RUN_HEARTBEAT,
    RUN_COMPLETED: log_events.ON_RUN_COMPLETED,
}


def read_run_request(body: str) -> dict[str, Any] | None:
    """The run request in a message body, raw or SNS-enveloped; None if it is not one
    (the domain's reading: `domain/messages/run_requested.py`)."""
    found = read_request_document(body)
    return None if isinstance(found, Unanswerable) else found.document


def completed_event(request: dict[str, Any], plan: WorkerPlan, now: datetime) -> dict[str, Any]:
    """What the simulated run reports: the plan's FAILURE, or a made-up SUCCESS."""
    run_id = str(request["runId"])
    code = request.get("metricCode")
    metric_code = code if isinstance(code, str) else None
    if plan.outcome is SimulatedOutcome.FAIL:
        return build_run_failed(run_id, metric_code, plan.error)
    version = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return build_run_succeeded(
        run_id,
        metric_code,
        version_ts=utc_text(now),
        output_manifest=f"{_output_base(request)}simulated/v{version}/manifest.json",
        row_count=simulated_row_count(run_id),
    )


def _output_base(request: dict[str, Any]) -> str:
    output = request.get("output")
    base = output.get("basePath") if isinstance(output, dict) else None
    if not isinstance(base, str) or not base:
        return f"s3://simulated-output/{request.get('metricCode', 'unknown')}/"
    return base if base.endswith("/") else f"{base}/"


def simulated_row_count(run_id: str) -> int:
    """A made-up but stable row count, so a re-run of the same request reports the same."""
    return 100 + sum(run_id.encode()) % 900
