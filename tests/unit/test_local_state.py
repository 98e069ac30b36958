"""The local serve's state file: written whole, read back, stale when its writer is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metrics_orchestrator.infrastructure.local_state import (
    STATE_FILE,
    LocalServe,
    LocalStateError,
    read_local_serve,
    remove_local_serve,
    write_local_serve,
)


def _state(pid: int) -> LocalServe:
    return LocalServe(
        pid=pid,
        aws_endpoint_url="http://127.0.0.1:5999",
        topic_arn="arn:aws:sns:us-east-1:123456789012:t",
        projection_update_queue_url="http://127.0.0.1:5999/123456789012/updates",
        run_feedback_queue_urls=("http://127.0.0.1:5999/123456789012/feedback",),
        worker_queue_url=None,
        http_url="http://127.0.0.1:8000",
    )


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_a_written_state_reads_back_equal(tmp_path: Path) -> None:
    write_local_serve(tmp_path, _state(os.getpid()))
    assert read_local_serve(tmp_path) == _state(os.getpid())
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]


def test_no_file_means_no_local_serve(tmp_path: Path) -> None:
    assert read_local_serve(tmp_path) is None


def test_the_state_of_a_dead_serve_is_ignored(tmp_path: Path) -> None:
    pid = _dead_pid()
    write_local_serve(tmp_path, _state(pid))
    assert read_local_serve(tmp_path) is None
    assert read_local_serve(tmp_path, include_stale=True) == _state(pid)


def test_remove_leaves_a_file_written_by_another_serve(tmp_path: Path) -> None:
    write_local_serve(tmp_path, _state(os.getpid()))
    remove_local_serve(tmp_path, pid=os.getpid() + 1)
    assert read_local_serve(tmp_path) is not None
    remove_local_serve(tmp_path)
    assert read_local_serve(tmp_path) is None


def test_an_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{")
    with pytest.raises(LocalStateError, match="unreadable"):
        read_local_serve(tmp_path)
