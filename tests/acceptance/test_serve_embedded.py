"""`serve` with no configuration at all: embedded PostgreSQL and AWS, data kept across restarts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from metrics_orchestrator.infrastructure.local_state import STATE_FILE

CLI = Path(sys.executable).with_name("metrics-orchestrator")
_SERVICE_PREFIXES = ("DATABASE_", "AWS_", "SNS_", "SQS_", "HTTP_", "API_TOKEN", "LOG_", "RUN_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())


def _wait_ready(port: int, process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited early with {process.returncode}")
        try:
            if _get(port, "/health/ready")["status"] == "ready":
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail("serve did not become ready")


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _wait_for_runs(port: int, path: str, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items: list[Any] = _get(port, path)["items"]
        if items:
            return items
        time.sleep(0.3)
    pytest.fail(f"no runs at {path}")


def _start(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CLI), "serve"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return out


@pytest.mark.slow
def test_serve_without_configuration_keeps_its_data_across_restarts(
    tmp_path: Path, catalogs_dir: Path
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    env |= {"EMBEDDED_DATA_DIR": str(tmp_path / "pg"), "HTTP_PORT": str(port)}

    first = _start(env, tmp_path)
    try:
        _wait_ready(port, first)
        subprocess.run(
            [str(CLI), "catalog", "load", str(catalogs_dir / "multi_dataset_catalog.yaml")],
            env=env,
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=120,
        )
        state = json.loads((tmp_path / "pg" / STATE_FILE).read_text())
        assert state["http_url"] == f"http://127.0.0.1:{port}"
        # No settings at all: the CLI finds the local queue on its own.
        sent = _cli(
            env, tmp_path, "send-update", "--dataset-id", "reserves_daily", "--version", "r1"
        )
        assert sent.returncode == 0, sent.stderr
        assert f"sent to {state['projection_update_queue_url']}" in sent.stdout
        runs = _wait_for_runs(port, "/runs?metric=reserves.sma_20")
        assert len(runs) == 1
        run_id = runs[0]["id"]
        assert runs[0]["status"] in {"queued", "dispatched"}
        # The queue URL serve printed, alone (no endpoint, no credentials), works too.
        printed = env | {"SQS_PROJECTION_UPDATE_QUEUE_URL": state["projection_update_queue_url"]}
        again = _cli(printed, tmp_path, "send-update", "-d", "reserves_daily", "--version", "r2")
        assert again.returncode == 0, again.stderr
        invalid = _cli(env, tmp_path, "send-update", "-d", "fx_daily", "--occurred-at", "yesterday")
        assert invalid.returncode == 2
        assert invalid.stderr.strip().count("\n") == 0
        assert "--occurred-at 'yesterday' is not an ISO-8601 time" in invalid.stderr
    finally:
        out = _stop(first)
    assert "embedded PostgreSQL" in out
    assert "embedded AWS emulator" in out
    assert "stopped" in out
    assert not (tmp_path / "pg" / STATE_FILE).exists()
    unreachable = _cli(env | {"HTTP_PORT": str(_free_port())}, tmp_path, "send-update", "-d", "x")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot reach the API")
    assert unreachable.stderr.strip().count("\n") == 0

    second = _start(env, tmp_path)
    try:
        _wait_ready(port, second)
        again = _get(port, f"/runs/{run_id}")
        assert again["metric_code"] == "reserves.sma_20"
        assert [e["version_manifest_path"] for e in again["lineage"]] == [
            "datasets/reserves_daily/versions/r1/manifest.json"
        ]
    finally:
        _stop(second)
