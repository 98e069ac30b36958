"""`serve` and `metrics-orchestrator worker` as real processes on moto (S3, SNS, SQS over HTTP)
and a real PostgreSQL: from a projection update to a succeeded run whose output the API returns;
a redelivered request that is not recomputed; SIGTERM mid-run; an unreadable (corrupt) input
that fails with a classified error and is retried by the control plane (SPEC §4, §5.6,
§6.1 `worker`).
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl
import pytest
import yaml

from metrics_orchestrator.infrastructure.aws.provisioning import (
    Topology,
    WorkerTopology,
    provision_worker,
)
from metrics_orchestrator.worker.sample_world import SampleSeries, sample_points, write_sample_world
from tests.integration.messaging_helpers import (
    load_catalog,
    queue_depth,
    rows,
    service_env,
    wait_until,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

CLI = Path(sys.executable).with_name("metrics-orchestrator")
_SERVICE_PREFIXES = (
    "DATABASE_",
    "AWS_",
    "SNS_",
    "SQS_",
    "HTTP_",
    "API_TOKEN",
    "LOG_",
    "RUN_",
    "WORKER_",
    "OUTPUT_",
)
METRIC = "sample.ratio"
DATASET = "sample_ds"


def catalog(bucket: str) -> dict[str, Any]:
    return {
        "series": [
            {"code": "SAMPLE_A_D", "frequency": "daily"},
            {"code": "SAMPLE_B_D", "frequency": "daily"},
        ],
        "datasets": [{"id": DATASET, "bucket": bucket, "series": ["SAMPLE_A_D", "SAMPLE_B_D"]}],
        "metrics": [
            {
                "id": "m-sample-ratio",
                "code": METRIC,
                "expression_type": "series_math",
                "max_attempts": 2,
                "expression": {
                    "op": "ratio",
                    "left": {"series_code": "SAMPLE_A_D"},
                    "right": {"series_code": "SAMPLE_B_D"},
                    "scale": 100,
                },
            }
        ],
    }


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def text(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    def count(self, event: str) -> int:
        return sum(1 for line in self.log_events() if line.get("event") == event)

    def describe(self) -> str:
        out = self.stdout.read_text(encoding="utf-8", errors="replace")
        return f"exit={self.process.poll()} stdout={out!r}\nstderr:\n{self.text()[-4000:]}"

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            pytest.fail(f"process did not stop within {timeout} s of SIGTERM\n{self.describe()}")


@dataclass
class World:
    env: dict[str, str]
    worker_env: dict[str, str]
    topology: Topology
    worker_topology: WorkerTopology
    input_bucket: str
    output_bucket: str
    update: dict[str, Any]
    api: str
    tmp_path: Path
    started: list[Process]

    def spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> Process:
        stdout, stderr = self.tmp_path / f"{name}.out", self.tmp_path / f"{name}.err"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [str(CLI), *args],
                env={**inherited, **env, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"},
                cwd=self.tmp_path,
                stdout=out,
                stderr=err,
            )
        started = Process(process, stdout, stderr)
        self.started.append(started)
        return started

    def serve(self) -> Process:
        serve = self.spawn("serve", ["serve"], self.env)
        wait_until(
            lambda: _ready(self.api) or serve.process.poll() is not None,
            timeout=30,
            what="serve to answer",
        )
        assert serve.process.poll() is None, serve.describe()
        return serve

    def worker(self, name: str = "worker", **overrides: str) -> Process:
        worker = self.spawn(name, ["worker"], {**self.worker_env, **overrides})
        wait_until(
            lambda: "running" in worker.stdout.read_text() or worker.process.poll() is not None,
            timeout=30,
            what="the worker to start",
        )
        assert worker.process.poll() is None, worker.describe()
        return worker

    def send_update(self, sqs: SQSClient) -> None:
        sqs.send_message(
            QueueUrl=self.topology.projection_update_queue.url, MessageBody=json.dumps(self.update)
        )

    def runs(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.api}/runs", params={"metric": METRIC}, timeout=10)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def wait_for_status(self, status: str, *, attempt: int = 1, timeout: float = 30) -> str:
        found: dict[str, str] = {}

        def reached() -> bool:
            for run in self.runs():
                if run["attempt"] == attempt and run["status"] == status:
                    found["id"] = run["id"]
                    return True
            return False

        wait_until(reached, timeout=timeout, what=f"attempt {attempt} to be {status}")
        return found["id"]

    def output_keys(self, s3: S3Client) -> list[str]:
        listed = s3.list_objects_v2(Bucket=self.output_bucket)
        return sorted(o["Key"] for o in listed.get("Contents", []) if "Key" in o)


def _ready(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def world(
    database_url: str,
    aws_endpoint_url: str,
    sns_client: SNSClient,
    sqs_client: SQSClient,
    s3_client: S3Client,
    topology: Topology,
    aws_prefix: str,
    tmp_path: Path,
) -> Iterator[World]:
    input_bucket, output_bucket = f"{aws_prefix}-in", f"{aws_prefix}-out"
    worker_topology = provision_worker(
        sns_client, s3_client, sqs_client, topology, output_bucket=output_bucket
    )
    document = catalog(input_bucket)
    (update,) = write_sample_world(s3_client, document)
    port = _free_port()
    env = service_env(
        database_url,
        aws_endpoint_url,
        topology,
        HTTP_PORT=str(port),
        OUTPUT_BUCKET=output_bucket,
        RETRY_BASE_DELAY="2",
        RUN_HEARTBEAT_TIMEOUT="60",
    )
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    load_catalog(env, catalog_file)
    worker_env = {
        "AWS_ENDPOINT_URL": aws_endpoint_url,
        "AWS_REGION": env["AWS_REGION"],
        "SQS_RUN_REQUEST_QUEUE_URL": topology.worker_queue.url,
        "SNS_RUN_FEEDBACK_TOPIC_ARN": worker_topology.feedback_topic_arn,
        "WORKER_HEARTBEAT_INTERVAL": "0.5",
        "WORKER_VISIBILITY_TIMEOUT": "30",
        "SQS_WAIT_SECONDS": "1",
    }
    started: list[Process] = []
    yield World(
        env=env,
        worker_env=worker_env,
        topology=topology,
        worker_topology=worker_topology,
        input_bucket=input_bucket,
        output_bucket=output_bucket,
        update=update,
        api=f"http://127.0.0.1:{port}",
        tmp_path=tmp_path,
        started=started,
    )
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(10)


def expected_ratio() -> dict[Any, float | None]:
    """What the metric must be, computed here point by point from the sample series."""
    a = dict(sample_points(SampleSeries("SAMPLE_A_D", monthly=False)).iter_rows())
    b = dict(sample_points(SampleSeries("SAMPLE_B_D", monthly=False)).iter_rows())
    expected: dict[Any, float | None] = {}
    for t in sorted(set(a) | set(b)):
        left, right = a.get(t), b.get(t)
        ok = left is not None and right is not None and right != 0
        expected[t] = left / right * 100 if ok else None  # type: ignore[operator]
    return expected


def read_all_output(api: str, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = httpx.get(f"{api}/runs/{run_id}/output", params=params, timeout=10)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return page, items


def test_an_update_becomes_a_computed_output_the_api_returns_and_redelivery_is_not_recomputed(
    world: World, sqs_client: SQSClient, s3_client: S3Client
) -> None:
    world.serve()
    worker = world.worker()
    world.send_update(sqs_client)

    run_id = world.wait_for_status("succeeded")

    detail = httpx.get(f"{world.api}/runs/{run_id}", timeout=10).json()
    page, items = read_all_output(world.api, run_id)
    expected = expected_ratio()
    assert page["total"] == len(expected) == detail["row_count"] == len(items)
    metadata = page["metadata"]
    assert metadata["run_id"] == run_id
    assert metadata["metric_code"] == METRIC
    assert metadata["row_count"] == len(expected)
    assert page["manifest_uri"] == detail["output_manifest"]
    assert page["manifest_uri"].startswith(f"s3://{world.output_bucket}/metrics/{METRIC}/")
    assert set(metadata["inputs"]["datasets"]) == {DATASET}
    for item, (obs_time, value) in zip(items, expected.items(), strict=True):
        assert item["obs_time"].startswith(obs_time.strftime("%Y-%m-%dT00:00:00"))
        if value is None:
            assert item["value"] is None
        else:
            assert math.isclose(item["value"], value, rel_tol=1e-12)
    assert any(item["value"] is None for item in items), "the sample has missing points"
    # Layout of §4.4: one version's data and manifest, the current copy and the marker.
    keys = world.output_keys(s3_client)
    version = detail["version_ts"]
    base = f"metrics/{METRIC}/"
    assert keys == sorted(
        [
            f"{base}{version}/data/part-0.parquet",
            f"{base}{version}/manifest.json",
            f"{base}current/manifest.json",
            f"{base}runs/{run_id}-1.claim",
            f"{base}runs/{run_id}-1.log",
            f"{base}runs/{run_id}-1.ok",
        ]
    )
    # The run's log beside its output, as the control plane reads it (issue 25).
    log = httpx.get(f"{world.api}/runs/{run_id}/logs", timeout=10).json()
    assert log["location"] == f"s3://{world.output_bucket}/{base}runs/{run_id}-1.log"
    assert log["text"].splitlines()[0].endswith(f"INFO    run started metric_code={METRIC}")
    assert f"read s3://{world.input_bucket}/" in log["text"]
    assert (
        log["text"]
        .splitlines()[-1]
        .endswith(f"INFO    run completed status=SUCCESS row_count={len(expected)}")
    )
    data = s3_client.get_object(
        Bucket=world.output_bucket, Key=f"{base}{version}/data/part-0.parquet"
    )
    frame = pl.read_parquet(io.BytesIO(data["Body"].read()))
    assert frame.columns == ["obs_time", "value"]
    assert frame.height == len(expected)

    # A redelivered request (say the dispatcher crashed between publish and mark) is answered
    # again from the marker: the same completed event, nothing recomputed or rewritten.
    (payload,) = rows(
        world.env["DATABASE_URL"], "SELECT request_payload FROM metric_runs WHERE id = %s", run_id
    )[0]
    sqs_client.send_message(
        QueueUrl=world.topology.worker_queue.url, MessageBody=json.dumps(payload)
    )
    wait_until(
        lambda: worker.count("ON_DUPLICATE_EVENT") == 1,
        timeout=20,
        what="the worker to answer the redelivery from its marker",
    )
    wait_until(
        lambda: queue_depth(sqs_client, world.topology.worker_queue.url) == (0, 0),
        timeout=10,
        what="the redelivered request to be deleted",
    )
    assert world.output_keys(s3_client) == keys
    assert worker.count("ON_RUN_STARTED") == 1
    completed = [e for e in worker.log_events() if e.get("event") == "ON_RUN_COMPLETED"]
    assert len(completed) == 2
    assert all(e["status"] == "SUCCESS" for e in completed)
    assert httpx.get(f"{world.api}/runs/{run_id}", timeout=10).json()["status"] == "succeeded"
    assert worker.terminate() == 0, worker.describe()


def test_sigterm_mid_run_abandons_it_and_another_worker_completes_it(
    world: World, sqs_client: SQSClient, s3_client: S3Client
) -> None:
    world.serve()
    slow = world.worker("slow-worker", WORKER_MIN_RUN_SECONDS="60")
    world.send_update(sqs_client)
    run_id = world.wait_for_status("running")
    wait_until(
        lambda: httpx.get(f"{world.api}/runs/{run_id}", timeout=10).json()["progress"] is not None,
        timeout=10,
        what="a heartbeat with progress",
    )

    started = time.monotonic()
    assert slow.terminate() == 0, slow.describe()

    assert time.monotonic() - started < 10
    assert slow.count("ON_RUN_ABANDONED") == 1, slow.describe()
    assert slow.count("ON_RUN_COMPLETED") == 0
    # Nothing written but the run's claim, which the second worker takes over (it receives
    # the same message, same MessageId, so it is a redelivery, not a duplicate), and its log.
    base = f"metrics/{METRIC}/runs/{run_id}-1"
    assert world.output_keys(s3_client) == [f"{base}.claim", f"{base}.log"]
    abandoned = httpx.get(f"{world.api}/runs/{run_id}/logs", timeout=10).json()["text"]
    assert "WARNING stop requested: run abandoned" in abandoned
    # The request went back to the queue at once, for any worker to take.
    assert queue_depth(sqs_client, world.topology.worker_queue.url) == (1, 0)
    assert httpx.get(f"{world.api}/runs/{run_id}", timeout=10).json()["status"] == "running"

    world.worker("second-worker")
    assert world.wait_for_status("succeeded") == run_id
    # The log is the attempt's latest story: the second worker's, which completed it.
    log = httpx.get(f"{world.api}/runs/{run_id}/logs", timeout=10).json()["text"]
    assert "run completed status=SUCCESS" in log
    assert "abandoned" not in log


def test_an_unreadable_input_fails_with_a_classified_error_and_the_retry_succeeds(
    world: World, sqs_client: SQSClient, s3_client: S3Client
) -> None:
    projections = world.update["projections_path"]
    manifest = json.loads(
        s3_client.get_object(Bucket=world.input_bucket, Key=world.update["version_manifest_path"])[
            "Body"
        ].read()
    )
    victim = f"{projections}/{manifest['parquet_files'][3]}"
    saved = s3_client.get_object(Bucket=world.input_bucket, Key=victim)["Body"].read()
    # Unreadable, not missing: a file that does not exist fails with `retryable: false`.
    s3_client.put_object(Bucket=world.input_bucket, Key=victim, Body=b"not parquet")
    world.serve()
    world.worker()
    world.send_update(sqs_client)

    failed_id = world.wait_for_status("failed")
    # Put the file back while the control plane waits RETRY_BASE_DELAY before the retry.
    s3_client.put_object(Bucket=world.input_bucket, Key=victim, Body=saved)

    failed = httpx.get(f"{world.api}/runs/{failed_id}", timeout=10).json()
    assert failed["error"].startswith(f"INPUT_READ_ERROR: s3://{world.input_bucket}/{victim}")
    assert "is not a readable projection file" in failed["error"]
    failed_log = httpx.get(f"{world.api}/runs/{failed_id}/logs", timeout=10).json()["text"]
    assert failed_log.splitlines()[-1].endswith("retryable=True")
    assert "WARNING run failed status=FAILURE error=INPUT_READ_ERROR: s3://" in failed_log
    retry_id = world.wait_for_status("succeeded", attempt=2)
    retry = httpx.get(f"{world.api}/runs/{retry_id}", timeout=10).json()
    assert retry["retry_of"] == failed_id
    assert retry["trigger"] == "retry"
    assert httpx.get(f"{world.api}/runs/{failed_id}/output", timeout=10).status_code == 404
    assert httpx.get(f"{world.api}/runs/{retry_id}/output", timeout=10).status_code == 200
    retry_log = httpx.get(f"{world.api}/runs/{retry_id}/logs", timeout=10).json()
    assert retry_log["location"].endswith(f"runs/{retry_id}-2.log")
    assert "run completed status=SUCCESS" in retry_log["text"]
