"""The embedded PostgreSQL never outlives `serve`: each stop signal, and a SIGKILL then restart.

Real processes of the installed entry point with no configuration (embedded PostgreSQL and AWS),
each on its own data directory; "no server left" means no `postgres` process serves that
directory once serve has exited.
"""

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

import psutil
import pytest

from metrics_orchestrator.infrastructure.embedded_postgres import (
    HANDLES_FILE,
    prune_dead_handles,
)
from tests.support import running_postmaster_pid

CLI = Path(sys.executable).with_name("metrics-orchestrator")
_SERVICE_PREFIXES = ("DATABASE_", "AWS_", "SNS_", "SQS_", "HTTP_", "API_TOKEN", "LOG_", "RUN_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    return env | {"EMBEDDED_DATA_DIR": str(data_dir), "HTTP_PORT": str(port)}


def _start_ready(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    stderr = cwd / f"serve-{time.monotonic_ns()}.err"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [str(CLI), "serve", "--no-consumers", "--no-dispatcher", "--no-sweeper"],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = stderr.read_text(errors="replace")[-2000:]
            pytest.fail(f"serve exited early with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5):
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    pytest.fail("serve did not become ready")


def _postgres_serving(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(data_dir.resolve()) in cmdline:
            found.append(proc)
    return found


def _wait_no_postgres(data_dir: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _postgres_serving(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _postgres_serving(data_dir) == []


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_each_stop_signal_stops_serve_and_its_postgres(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    data_dir, port = tmp_path / "pg", _free_port()
    serve = _start_ready(_env(data_dir, port), tmp_path, port)
    assert running_postmaster_pid(data_dir) is not None
    serve.send_signal(stop_signal)
    assert serve.wait(60) == 0
    _wait_no_postgres(data_dir)
    assert json.loads((data_dir / HANDLES_FILE).read_text()) == []


@pytest.mark.slow
def test_a_server_left_by_a_killed_serve_is_reused_then_stopped(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "pg", _free_port()
    env = _env(data_dir, port)
    killed = _start_ready(env, tmp_path, port)
    left_behind = running_postmaster_pid(data_dir)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    # SIGKILL runs no cleanup: the server and the dead owner's pid stay, as they must.
    assert running_postmaster_pid(data_dir) == left_behind
    assert json.loads((data_dir / HANDLES_FILE).read_text()) == [killed.pid]

    again = _start_ready(env, tmp_path, port)
    assert running_postmaster_pid(data_dir) == left_behind  # reused, not a second server
    again.send_signal(signal.SIGINT)
    assert again.wait(60) == 0
    _wait_no_postgres(data_dir)


def test_pruning_drops_dead_owners_and_keeps_live_ones(tmp_path: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    (tmp_path / HANDLES_FILE).write_text(json.dumps([finished.pid, os.getpid()]))

    assert prune_dead_handles(tmp_path) == [finished.pid]
    assert json.loads((tmp_path / HANDLES_FILE).read_text()) == [os.getpid()]


def test_a_pid_recycled_after_the_file_was_written_is_not_an_owner(tmp_path: Path) -> None:
    handles = tmp_path / HANDLES_FILE
    handles.write_text(json.dumps([os.getpid()]))
    long_ago = psutil.Process().create_time() - 3600
    os.utime(handles, (long_ago, long_ago))

    assert prune_dead_handles(tmp_path) == [os.getpid()]
    assert json.loads(handles.read_text()) == []


def test_an_unreadable_handles_file_is_reset(tmp_path: Path) -> None:
    (tmp_path / HANDLES_FILE).write_text("{not json")

    assert prune_dead_handles(tmp_path) == []
    assert json.loads((tmp_path / HANDLES_FILE).read_text()) == []


@pytest.mark.slow
def test_a_plain_migrate_after_a_dead_owner_leaves_no_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    env = _env(data_dir, _free_port())
    first = subprocess.run([str(CLI), "migrate"], env=env, cwd=tmp_path, capture_output=True)
    assert first.returncode == 0, first.stderr
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    # What a serve killed by SIGHUP used to leave behind: its pid, listed as an owner.
    (data_dir / HANDLES_FILE).write_text(json.dumps([finished.pid]))

    again = subprocess.run([str(CLI), "migrate"], env=env, cwd=tmp_path, capture_output=True)

    assert again.returncode == 0, again.stderr
    _wait_no_postgres(data_dir)
    assert json.loads((data_dir / HANDLES_FILE).read_text()) == []
