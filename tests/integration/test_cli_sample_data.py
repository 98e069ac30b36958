"""`sample-data` (SPEC §4.4, §6.1) against real moto: it finds the local `serve` the way
`send-update` does, and every expected failure is one line on stderr with exit 2 (usage) or
1 (unavailable), never a traceback."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner, Result

from metrics_orchestrator.infrastructure.local_state import LocalServe, write_local_serve
from metrics_orchestrator.interfaces.cli import app

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_aws_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Like a fresh shell beside `serve`: no AWS settings, no .env, no credentials."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "SQS_", "SNS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("EMBEDDED_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)


def _sample_data(*args: str) -> Result:
    return runner.invoke(app, ["sample-data", "--version", f"v{time.time_ns()}", *args])


def _one_line_error(result: Result, code: int, contains: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert contains in errors[0]


def _record_serve(tmp_path: Path, endpoint: str, queue_url: str | None) -> None:
    write_local_serve(
        tmp_path / "data",
        LocalServe(
            pid=os.getpid(),
            aws_endpoint_url=endpoint,
            topic_arn=None,
            projection_update_queue_url=queue_url,
            run_feedback_queue_urls=(),
            worker_queue_url=None,
            http_url=None,
        ),
    )


def test_with_no_options_it_writes_to_the_running_local_serve_and_sends_there(
    aws_endpoint_url: str,
    s3_client: S3Client,
    sqs_client: SQSClient,
    aws_prefix: str,
    tmp_path: Path,
) -> None:
    queue_url = sqs_client.create_queue(QueueName=f"{aws_prefix}-updates")["QueueUrl"]
    _record_serve(tmp_path, aws_endpoint_url, queue_url)

    result = _sample_data("--send")

    assert result.exit_code == 0, result.output
    updates = [json.loads(line) for line in result.stdout.splitlines()]
    assert updates
    for update in updates:
        s3_client.head_object(Bucket=update["bucket"], Key=update["version_manifest_path"])
    received = sqs_client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    assert len(received.get("Messages", [])) == min(len(updates), 10)


def test_an_endpoint_that_is_no_url_is_a_usage_error() -> None:
    _one_line_error(
        _sample_data("--endpoint-url", "localhost:4566"), 2, "did you mean http://localhost:4566?"
    )


def test_an_endpoint_that_is_down_is_one_line_and_exit_1() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = f"http://127.0.0.1:{port}"

    _one_line_error(_sample_data("--endpoint-url", down), 1, "cannot write the sample world")


def test_without_serve_or_credentials_it_says_so_in_one_line() -> None:
    _one_line_error(_sample_data(), 1, "no AWS credentials")


def test_send_without_any_queue_is_a_usage_error(aws_endpoint_url: str) -> None:
    _one_line_error(
        _sample_data("--endpoint-url", aws_endpoint_url, "--send"), 2, "--send: no queue"
    )


def test_send_update_warns_about_a_dataset_the_catalog_lacks_and_still_sends(
    database_url: str,
    catalogs_dir: Path,
    aws_endpoint_url: str,
    sqs_client: SQSClient,
    aws_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue_url = sqs_client.create_queue(QueueName=f"{aws_prefix}-sent")["QueueUrl"]
    for name, value in {
        "DATABASE_URL": database_url,
        "AWS_ENDPOINT_URL": aws_endpoint_url,
        "SQS_PROJECTION_UPDATE_QUEUE_URL": queue_url,
    }.items():
        monkeypatch.setenv(name, value)
    loaded = runner.invoke(app, ["catalog", "load", str(catalogs_dir / "bcra_catalog.yaml")])
    assert loaded.exit_code == 0, loaded.output

    unknown = runner.invoke(app, ["send-update", "-d", "nope"])
    known = runner.invoke(app, ["send-update", "-d", "bcra_infomondia_series"])

    assert unknown.exit_code == 0, unknown.output
    assert "warning: dataset 'nope' is not in the catalog" in unknown.stderr
    assert known.exit_code == 0, known.output
    assert "warning" not in known.stderr
    received = sqs_client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    sent = [json.loads(m["Body"])["dataset_id"] for m in received.get("Messages", [])]
    assert sorted(sent) == ["bcra_infomondia_series", "nope"]
