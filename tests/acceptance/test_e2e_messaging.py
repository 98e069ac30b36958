"""End to end over the wire: projection update → SNS run request → worker feedback → succeeded.

The service runs in-process exactly as `serve --no-http` assembles it (`build_runtime`), against a
real PostgreSQL database and the session's moto server over HTTP. The test plays the upstream
producer (SQS SendMessage) and the worker (it reads the worker queue subscribed to the topic and
answers on the feedback queue, directly or through an SNS topic as many workers do).

The helpers it shares with the other messaging acceptance suites are in messaging_helpers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from metrics_orchestrator.infrastructure.aws.provisioning import Topology
from tests.aws_fixtures import TopologyFactory, receive_messages
from tests.integration.intake_helpers import update_body
from tests.integration.messaging_helpers import (
    count_runs,
    load_catalog,
    rows,
    run_request_of,
    running_service,
    send_batch,
    service_env,
    wait_until,
)

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

OUTPUT_BASE = "s3://metrics-output/metrics/"
RUN_REQUEST_KEYS = {
    "type",
    "schema",
    "runId",
    "attempt",
    "requestedAt",
    "metricCode",
    "expressionType",
    "expressionJson",
    "inputs",
    "catalog",
    "output",
}


# --- the feedback path ---------------------------------------------------------------------


FeedbackSender = Callable[[str], None]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def feedback_sender(
    sns: SNSClient, sqs: SQSClient, topology: Topology, *, via_sns: bool
) -> FeedbackSender:
    """How the test-as-worker delivers feedback: straight to SQS, or through an SNS topic."""
    queue_url = topology.run_feedback_queue.url

    def send_to_queue(body: str) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    if not via_sns:
        return send_to_queue
    # A worker-side topic whose (non-raw) subscription wraps every event in an SNS envelope.
    topic_arn = sns.create_topic(Name=f"feedback-{uuid.uuid4().hex[:10]}")["TopicArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=topology.run_feedback_queue.arn,
        Attributes={"RawMessageDelivery": "false"},
    )

    def publish_to_topic(body: str) -> None:
        sns.publish(TopicArn=topic_arn, Message=body)

    return publish_to_topic


@dataclass(frozen=True)
class Answer:
    started_at: datetime
    last_heartbeat: datetime
    version_ts: str
    output_manifest: str
    row_count: int


def answer_run(
    send: FeedbackSender, database_url: str, request: dict[str, Any], index: int
) -> Answer:
    """Started and two heartbeats, wait until the service saw them, then completed."""
    run_id = request["runId"]
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
    send(json.dumps({"type": "metric_run_started", "runId": run_id, "startedAt": iso(started)}))
    beats = [(0.5, started + timedelta(seconds=3)), (75, started + timedelta(seconds=6))]
    for progress, ts in beats:
        event = {
            "type": "metric_run_heartbeat",
            "runId": run_id,
            "progress": progress,
            "ts": iso(ts),
        }
        send(json.dumps(event))
    wait_until(
        lambda: (
            rows(
                database_url,
                "SELECT 1 FROM metric_runs WHERE id = %s AND status = 'running'"
                " AND last_heartbeat_at = %s AND progress = 0.75",
                uuid.UUID(run_id),
                beats[-1][1],
            )
            != []
        ),
        timeout=15,
        what=f"run {run_id} running with its last heartbeat",
    )
    answer = Answer(
        started_at=started,
        last_heartbeat=beats[-1][1],
        version_ts=f"2025-11-11T00:00:{index:02d}Z",
        output_manifest=f"{request['output']['basePath']}v{index}/manifest.json",
        row_count=1000 + index,
    )
    completed = {
        "type": "metric_run_completed",
        "runId": run_id,
        "metricCode": request["metricCode"],
        "status": "SUCCESS",
        "versionTs": answer.version_ts,
        "outputManifest": answer.output_manifest,
        "rowCount": answer.row_count,
    }
    send(json.dumps(completed))
    return answer


# --- the acceptance test -------------------------------------------------------------------

# Three versions, one of each dataset the catalog's metrics read: whatever the arrival order,
# each of the five metrics ends with exactly one run (see docs/orchestration.md).
UPDATES = {"reserves_daily": "r1", "fx_daily": "f1", "prices_monthly": "p1"}
EXPECTED_INPUTS = {
    "reserves.sma_20": [("reserves_daily", "RESERVES_USD_D")],
    "fx.gap": [("fx_daily", "FX_PARALLEL_D"), ("fx_daily", "FX_OFFICIAL_D")],
    "prices.real_wages": [("prices_monthly", "WAGES_INDEX_M"), ("prices_monthly", "CPI_INDEX_M")],
    "reserves.real_pesos": [
        ("reserves_daily", "RESERVES_USD_D"),
        ("fx_daily", "FX_OFFICIAL_D"),
        ("prices_monthly", "CPI_INDEX_M"),
    ],
    "reserves.at_parallel": [("reserves_daily", "RESERVES_USD_D"), ("fx_daily", "FX_PARALLEL_D")],
}


@pytest.mark.parametrize(
    ("fifo", "raw_delivery", "feedback_via_sns"),
    [
        pytest.param(False, True, False, id="standard-raw-request-raw-feedback"),
        pytest.param(False, False, True, id="standard-enveloped-request-sns-feedback"),
        pytest.param(True, True, True, id="fifo-raw-request-sns-feedback"),
        pytest.param(True, False, False, id="fifo-enveloped-request-raw-feedback"),
    ],
)
def test_projection_updates_to_succeeded_runs_over_sns_and_sqs(
    fifo: bool,
    raw_delivery: bool,
    feedback_via_sns: bool,
    database_url: str,
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
    make_topology: TopologyFactory,
    catalog_path: Path,
) -> None:
    topology = make_topology(fifo=fifo, raw_delivery=raw_delivery)
    env = service_env(database_url, aws_endpoint_url, topology)
    load_catalog(env, catalog_path)
    send = feedback_sender(sns_client, sqs_client, topology, via_sns=feedback_via_sns)

    with running_service(env):
        send_batch(
            sqs_client,
            topology.projection_update_queue.url,
            [update_body(dataset, version) for dataset, version in UPDATES.items()],
        )
        messages = receive_messages(sqs_client, topology.worker_queue.url, 5, timeout=20)
        assert len(messages) == 5, [run_request_of(m).get("metricCode") for m in messages]
        requests = [run_request_of(m) for m in messages]
        for message, request in zip(messages, requests, strict=True):
            assert_delivery(message, request, fifo=fifo, raw_delivery=raw_delivery)
            assert_run_request_contract(request, database_url)
        answers = {r["runId"]: answer_run(send, database_url, r, i) for i, r in enumerate(requests)}
        wait_until(
            lambda: count_runs(database_url, "succeeded") == 5,
            timeout=15,
            what="five succeeded runs",
        )

    assert {r["metricCode"] for r in requests} == set(EXPECTED_INPUTS)
    for run_id, answer in answers.items():
        assert_recorded_success(database_url, run_id, answer)
    feedback_log = rows(
        database_url,
        "SELECT event_type, status, count(*) FROM event_log"
        " WHERE event_type LIKE 'metric_run_%%' GROUP BY 1, 2 ORDER BY 1",
    )
    assert feedback_log == [
        ("metric_run_completed", "processed", 5),
        ("metric_run_heartbeat", "processed", 10),
        ("metric_run_started", "processed", 5),
    ]
    assert rows(database_url, "SELECT DISTINCT status FROM event_log") == [("processed",)]
    envelopes = rows(
        database_url,
        "SELECT DISTINCT raw_body::jsonb ? 'Type' FROM event_log"
        " WHERE event_type LIKE 'metric_run_%%'",
    )
    assert envelopes == [(feedback_via_sns,)]


def assert_delivery(
    message: MessageTypeDef, request: dict[str, Any], *, fifo: bool, raw_delivery: bool
) -> None:
    """Attributes of SPEC §4.3 as the worker sees them, raw or inside the envelope."""
    body = json.loads(message["Body"])
    if raw_delivery:
        assert body.get("Type") != "Notification"
        attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    else:
        assert body["Type"] == "Notification"
        attributes = {k: v["Value"] for k, v in body["MessageAttributes"].items()}
    assert attributes == {"type": "metric_run_requested", "metricCode": request["metricCode"]}
    system = message.get("Attributes", {})
    if fifo:
        assert system["MessageGroupId"] == request["metricCode"]
        assert system["MessageDeduplicationId"] == f"{request['runId']}:{request['attempt']}"
    else:
        assert "MessageGroupId" not in system


def assert_run_request_contract(request: dict[str, Any], database_url: str) -> None:
    """Every field of SPEC §4.3, checked against what the database recorded for the run."""
    assert set(request) == RUN_REQUEST_KEYS
    code = request["metricCode"]
    assert request["type"] == "metric_run_requested"
    assert request["schema"] == "1"
    assert request["attempt"] == 1
    assert datetime.fromisoformat(request["requestedAt"]).tzinfo is not None
    assert request["output"] == {"basePath": f"{OUTPUT_BASE}{code}/"}
    assert [(i["datasetId"], i["seriesCode"]) for i in request["inputs"]] == EXPECTED_INPUTS[code]
    stored, expression_type, expression = rows(
        database_url,
        "SELECT r.request_payload, m.expression_type, m.expression_json FROM metric_runs r"
        " JOIN metrics m ON m.id = r.metric_id WHERE r.id = %s",
        uuid.UUID(request["runId"]),
    )[0]
    # The outbox payload is published verbatim, never rebuilt.
    assert stored == request
    assert request["expressionType"] == expression_type
    assert request["expressionJson"] == expression
    lineage = {
        dataset: (str(update_id), manifest, projections, bucket)
        for dataset, update_id, manifest, projections, bucket in rows(
            database_url,
            "SELECT l.dataset_id, u.id, u.version_manifest_path, u.projections_path, u.bucket"
            " FROM run_dataset_updates l JOIN dataset_updates u ON u.id = l.update_id"
            " WHERE l.run_id = %s",
            uuid.UUID(request["runId"]),
        )
    }
    datasets = request["catalog"]["datasets"]
    assert set(datasets) == {dataset for dataset, _ in EXPECTED_INPUTS[code]} == set(lineage)
    for dataset, entry in datasets.items():
        version = UPDATES[dataset]
        assert entry == {
            "manifestPath": f"datasets/{dataset}/versions/{version}/manifest.json",
            "projectionsPath": f"datasets/{dataset}/projections",
            "bucket": "ingestor-datasets",
            "updateId": lineage[dataset][0],
        }
        assert lineage[dataset][1:] == (
            entry["manifestPath"],
            entry["projectionsPath"],
            "ingestor-datasets",
        )


def assert_recorded_success(database_url: str, run_id: str, answer: Answer) -> None:
    (run,) = rows(
        database_url,
        "SELECT status, progress, version_ts, output_manifest, row_count, error, status_reason,"
        " queued_at, dispatched_at, started_at, last_heartbeat_at, completed_at, dispatch_attempts"
        " FROM metric_runs WHERE id = %s",
        uuid.UUID(run_id),
    )
    (status, progress, version_ts, manifest, row_count, error, reason, *times, attempts) = run
    queued_at, dispatched_at, started_at, last_heartbeat_at, completed_at = times
    assert (status, progress, error, reason) == ("succeeded", 1.0, None, None)
    assert (version_ts, manifest, row_count) == (
        answer.version_ts,
        answer.output_manifest,
        answer.row_count,
    )
    assert (started_at, last_heartbeat_at) == (answer.started_at, answer.last_heartbeat)
    assert queued_at <= dispatched_at <= completed_at
    assert attempts == 1
