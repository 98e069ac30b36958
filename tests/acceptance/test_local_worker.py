"""Local mode computes for real: `serve --worker --sample-data` on the embedded AWS emulator
runs every metric of both bundled catalogs on the generated sample world, and the API returns
each output; `sample-data` writes the same world into any S3 and prints its updates."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from typer.testing import CliRunner

from metrics_orchestrator.interfaces.cli import app
from metrics_orchestrator.interfaces.sample_world import bundled_catalogs
from tests.integration.messaging_helpers import wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

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
BUNDLED_METRICS = {m["code"] for doc in bundled_catalogs() for m in doc["metrics"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _runs(api: str) -> list[dict[str, Any]]:
    try:
        response = httpx.get(f"{api}/runs", params={"limit": 100}, timeout=5)
    except httpx.HTTPError:
        return []
    if response.status_code != 200:
        return []
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_serve_with_worker_and_sample_data_computes_every_bundled_metric(
    database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    env = {**inherited, "DATABASE_URL": database_url, "HTTP_PORT": str(port)}
    err = (tmp_path / "serve.err").open("wb")
    process = subprocess.Popen(
        [str(CLI), "serve", "--worker", "--sample-data"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=err,
    )
    try:
        wait_until(
            lambda: (
                (
                    {r["metric_code"] for r in _runs(api) if r["status"] == "succeeded"}
                    == BUNDLED_METRICS
                )
                or process.poll() is not None
            ),
            timeout=120,
            what="every bundled metric to succeed",
            interval=0.5,
        )
        assert process.poll() is None, (tmp_path / "serve.err").read_text()[-3000:]
        runs = _runs(api)
        assert all(r["status"] == "succeeded" for r in runs), runs
        for run in runs:
            output = httpx.get(f"{api}/runs/{run['id']}/output", params={"limit": 1}, timeout=10)
            assert output.status_code == 200, output.text
            assert output.json()["total"] == run["row_count"] > 0
        # `runs logs` finds this serve's S3 (the emulator it recorded) with no AWS settings
        logged = subprocess.run(
            [str(CLI), "runs", "logs", runs[0]["id"]],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert logged.returncode == 0, logged.stderr.decode()
        assert "INFO    run completed status=SUCCESS" in logged.stdout.decode()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            stdout, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
            pytest.fail("serve did not stop")
        err.close()
    text = stdout.decode()
    assert "reference worker on" in text
    assert "5 projection updates processed" in text
    assert process.returncode == 0


def test_sample_data_writes_the_world_and_prints_its_updates(
    aws_endpoint_url: str, s3_client: S3Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    version = f"v{time.time_ns()}"
    result = CliRunner().invoke(
        app, ["sample-data", "--endpoint-url", aws_endpoint_url, "--version", version]
    )

    assert result.exit_code == 0, result.output
    updates = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    # a catalog of metrics over metrics only (chains_catalog.yaml) names no dataset
    datasets = [d["id"] for doc in bundled_catalogs() for d in doc.get("datasets", [])]
    assert [u["dataset_id"] for u in updates] == list(dict.fromkeys(datasets))
    for update in updates:
        manifest = json.loads(
            s3_client.get_object(Bucket=update["bucket"], Key=update["version_manifest_path"])[
                "Body"
            ].read()
        )
        assert manifest["version_id"] == version
        assert manifest["dataset_id"] == update["dataset_id"]
        assert manifest["data_points_count"] > 0
        first = f"{update['projections_path']}/{manifest['parquet_files'][0]}"
        assert s3_client.head_object(Bucket=update["bucket"], Key=first)["ContentLength"] > 0
