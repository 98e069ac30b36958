"""`make bench` with no BENCH_DATABASE_URL: bench databases on the embedded PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from bench.environment import bench_databases

from tests.support import running_postmaster_pid


@pytest.mark.slow
def test_without_bench_database_url_the_embedded_server_is_used_then_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("EMBEDDED_DATA_DIR", str(tmp_path / "pg"))
    monkeypatch.chdir(tmp_path)  # no .env

    with bench_databases() as databases:
        assert running_postmaster_pid(tmp_path / "pg") is not None
        url = databases.migrated()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM metric_runs").fetchone() == (0,)

    assert running_postmaster_pid(tmp_path / "pg") is None
