"""Where the local `serve` can be reached: a small JSON file next to the embedded database.

`serve` in local mode (embedded AWS emulator) starts moto on a new free port every time, so the
queue URLs it prints are good only for that run. It records them here, and the CLI's other
commands (`send-update`, the read commands) look here when no AWS settings are given. The file
names its writer's pid: a file left by a serve that died is recognised as stale and ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from metrics_orchestrator.infrastructure.embedded_postgres import default_data_dir
from metrics_orchestrator.infrastructure.settings import Settings, SettingsError

STATE_FILE = "local-serve.json"


@dataclass(frozen=True)
class LocalServe:
    """The endpoints of one running local `serve`."""

    pid: int
    aws_endpoint_url: str
    topic_arn: str | None
    projection_update_queue_url: str | None
    run_feedback_queue_urls: tuple[str, ...]
    worker_queue_url: str | None
    http_url: str | None


class LocalStateError(Exception):
    """The state file exists but cannot be read."""


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def write_local_serve(data_dir: Path, state: LocalServe) -> Path:
    """Write atomically (a reader never sees half a file); returns the file's path."""
    path = state_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def remove_local_serve(data_dir: Path, pid: int | None = None) -> None:
    """Remove the file, if it is still the one written by `pid` (default: this process)."""
    path = state_path(data_dir)
    try:
        current = read_local_serve(data_dir, include_stale=True)
    except LocalStateError:
        current = None
    if current is None or current.pid == (pid or os.getpid()):
        path.unlink(missing_ok=True)


def read_local_serve(data_dir: Path, *, include_stale: bool = False) -> LocalServe | None:
    """The running local serve, or None (no file, or its writer is gone)."""
    path = state_path(data_dir)
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
        state = LocalServe(
            pid=int(raw["pid"]),
            aws_endpoint_url=str(raw["aws_endpoint_url"]),
            topic_arn=raw.get("topic_arn"),
            projection_update_queue_url=raw.get("projection_update_queue_url"),
            run_feedback_queue_urls=tuple(raw.get("run_feedback_queue_urls") or ()),
            worker_queue_url=raw.get("worker_queue_url"),
            http_url=raw.get("http_url"),
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalStateError(f"{path} is unreadable ({exc}); delete it") from None
    if include_stale or psutil.pid_exists(state.pid):
        return state
    return None


def embedded_data_dir(settings: Settings) -> Path:
    """The embedded data directory (EMBEDDED_DATA_DIR, else the per-user default)."""
    return (settings.embedded_data_dir or default_data_dir()).expanduser().resolve()


def find_local_serve(settings: Settings) -> LocalServe | None:
    """The running local serve, when no AWS settings point elsewhere."""
    if not settings.uses_embedded_aws:
        return None
    try:
        return read_local_serve(embedded_data_dir(settings))
    except LocalStateError as exc:
        raise SettingsError(str(exc)) from None
